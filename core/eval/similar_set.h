// similar_set.h — the CS-SLIP paper's "hand-crafted-similar" query set, built in the style of
// the 2021 Image Similarity Challenge (ISC 2021, Douze et al.): every reference image yields
// `per_ref` transformed copies (the queries), and a ground-truth file says which reference
// each query came from and exactly what was done to it.
//
// Following ISC 2021, the transforms are the AugLy-style edits: crop, scale, rotation, flip,
// colour jitter, blur, Gaussian noise, JPEG re-encoding, text overlay, emoji overlay, padding,
// and chains of 2-3 of these. What differs:
//   - The emoji is a drawn smiley (circles and an arc), not a glyph from an emoji font, and the
//     text uses OpenCV's Hershey font, so no font files are needed; ISC overlays real emoji and
//     TrueType text.
//   - ISC also pastes the reference into other images ("overlay onto screenshot", meme
//     templates) and applies perspective transforms and pixel shuffles; these are not built.
//   - Queries are never "distractors" (images with no reference): every query has a reference.
//   - A chain never repeats a kind, and JPEG is always its last step (the query file is then
//     that JPEG); ISC draws orders freely.
//
// Determinism: the transforms of a reference are drawn from a std::mt19937_64 seeded by the
// seed and a stable hash of the reference's id, so they do not depend on which other
// references exist or their order; query ids are derived the same way. Values are drawn from
// the generator's raw 64-bit output (not the implementation-defined std distributions) and
// rounded before use, so the ground truth states exactly the parameters applied. The same
// seed, references and build of OpenCV give byte-identical files.
//
// Thread-safety: functions only; no shared state.
//
//   SimilarSetOptions options;  // seed 0, 5 queries per reference
//   RETRACE_ASSIGN_OR_RETURN(SimilarSetReport report, BuildSimilarSet("refs", "out", options));
#ifndef RETRACE_CORE_EVAL_SIMILAR_SET_H_
#define RETRACE_CORE_EVAL_SIMILAR_SET_H_

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/image/image.h"

namespace retrace::eval {

// TransformKind: the single edits. A query's TransformSpec chains one or more of them.
enum class TransformKind {
  kCrop,          // keep a rectangle: x, y, w, h as fractions of the width and height
  kScale,         // resize by factor s (0.3..0.9)
  kRotate,        // turn by deg degrees: 90/180/270 turn the whole image, others keep the size
  kFlip,          // mirror: vertical=0 left-right, vertical=1 top-bottom
  kColourJitter,  // brightness b (additive, of 255), contrast c, saturation s
  kBlur,          // Gaussian blur of sigma (pixels)
  kNoise,         // additive Gaussian noise of std (of 255), from cv::RNG(seed)
  kJpeg,          // JPEG re-encoding at quality q
  kTextOverlay,   // text at (x, y) (fractions), height size (fraction of the height), colour
  kEmojiOverlay,  // a smiley at centre (x, y) (fractions), radius r (fraction of the shorter side)
  kPad,           // borders top, bottom, left, right (fractions of the height/width), grey v
};

// kAllTransformKinds: every kind, in enum order.
inline constexpr TransformKind kAllTransformKinds[] = {
    TransformKind::kCrop,         TransformKind::kScale,        TransformKind::kRotate,
    TransformKind::kFlip,         TransformKind::kColourJitter, TransformKind::kBlur,
    TransformKind::kNoise,        TransformKind::kJpeg,         TransformKind::kTextOverlay,
    TransformKind::kEmojiOverlay, TransformKind::kPad};

// TransformKindName: "crop", "scale", "rotate", "flip", "colour_jitter", "blur", "noise",
// "jpeg", "text_overlay", "emoji_overlay", "pad".
const char* TransformKindName(TransformKind kind);

// TransformStep: one edit with the parameters drawn for it, in the order they are printed.
struct TransformStep {
  TransformKind kind = TransformKind::kFlip;
  std::vector<std::pair<std::string, double>> params;
  std::string text;  // kTextOverlay only: the text drawn ([A-Z0-9], 3..10 characters)

  // Param: the value of parameter `name`; 0 when the step has none of that name.
  double Param(const std::string& name) const;
};

// TransformSpec: the edits of one query, applied in order.
using TransformSpec = std::vector<TransformStep>;

// TransformSpecString: the compact form written to the ground truth, e.g.
// "crop(x=0.12,y=0.05,w=0.7,h=0.7)+jpeg(q=35)"; text is written as text=ABC.
std::string TransformSpecString(const TransformSpec& spec);

// DrawTransformStep: a step of `kind` with parameters drawn from `rng`.
TransformStep DrawTransformStep(TransformKind kind, std::mt19937_64& rng);

// DrawQueryTransforms: the TransformSpecs of the `per_ref` queries of reference
// `reference_id` under `seed`: each of the 11 single kinds and one chain of 2-3 kinds, in an
// order shuffled per reference (a fresh shuffle for each further 12). Depends only on the
// three arguments, and a larger per_ref only appends: the first n specs never change.
std::vector<TransformSpec> DrawQueryTransforms(uint64_t seed, const std::string& reference_id,
                                               int per_ref);

// ApplyTransforms: `image` with `spec` applied. Sizes are rounded to whole pixels and never
// below 1. INVALID_ARGUMENT for an empty image or an image whose rgb size does not match;
// INTERNAL if OpenCV fails (with its message); RESOURCE_EXHAUSTED when memory runs out. No
// exception escapes.
absl::StatusOr<image::Image> ApplyTransforms(const image::Image& image, const TransformSpec& spec);

// kMaxSimilarReferences bounds the references of one build.
inline constexpr size_t kMaxSimilarReferences = 100'000;
// kMaxPerRef bounds SimilarSetOptions::per_ref.
inline constexpr int kMaxPerRef = 20;

struct SimilarSetOptions {
  // seed: picks the transforms. Default 0.
  uint64_t seed = 0;
  // per_ref: queries per reference, 1..kMaxPerRef. Default 5.
  int per_ref = 5;
  // progress: when set, called after each reference with (references done, total).
  std::function<void(size_t done, size_t total)> progress;
};

// SkippedFile: a reference that could not be used, and why.
struct SkippedFile {
  std::string path;
  std::string reason;
};

struct SimilarSetReport {
  size_t references = 0;  // references that produced queries
  size_t queries = 0;
  std::vector<SkippedFile> skipped;  // folders that could not be read, then files in id order
};

// BuildSimilarSet reads every image file (.jpg .jpeg .png .webp .bmp, any case) under
// `refs_dir`, recursively in id order (symlinks to files followed, to folders not; `out_dir`
// is left out when it lies inside), and writes:
//   out_dir/queries/<query_id>.jpg   (.png when the last step is not jpeg)
//   out_dir/ground_truth.csv         header query_id,reference_id,transforms (RFC 4180)
//   out_dir/manifest.json            seed, per_ref and the counts
// reference_id is the path relative to refs_dir with '/' separators, the item id that
// `retrace index refs_dir` gives it. A reference is decoded with image::DecodeImage under
// limits of 32 MiB, 8192 pixels a side and 40 Mpixels; one that fails to read or decode is
// reported in `skipped` and left out. A previous build in `out_dir` (its manifest.json) is
// replaced: its queries/ folder, ground truth and manifest are deleted first.
// Errors: INVALID_ARGUMENT naming per_ref when out of range, when refs_dir holds no image or
// more than kMaxSimilarReferences, and when out_dir is non-empty and not a previous build;
// NOT_FOUND when refs_dir is not a directory; others (from errno) when writing fails.
absl::StatusOr<SimilarSetReport> BuildSimilarSet(const std::string& refs_dir,
                                                 const std::string& out_dir,
                                                 const SimilarSetOptions& options);

}  // namespace retrace::eval

#endif  // RETRACE_CORE_EVAL_SIMILAR_SET_H_
