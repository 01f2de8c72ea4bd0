// preprocess.h — turns a decoded RGB Image into the normalised CHW float tensor a model eats.
//
// A model's manifest gives its input size, resize mode, interpolation and mean/std; the
// matching PreprocessSpec makes the tensor here, one image at a time, written straight into
// the caller's batch buffer (PreprocessInto) so a batch needs no extra copy.
//
// Resize modes:
//   kShortestSideCenterCrop — CLIP's torchvision `Resize(size, BICUBIC)` + `CenterCrop(size)`:
//     the shorter side becomes `size`, the longer `int(size * long / short)` (truncated), then
//     a size x size window is cut at offsets `int(round((h - size) / 2.0))` (Python's round,
//     halves to even). Crop offsets therefore match torchvision exactly. When that means
//     upscaling an image longer than 4:1, only the kept window is computed (cv::remap at the
//     positions cv::resize would sample; values within one level of resize-then-crop), so a
//     1 x 16384 image costs a 224 x 224 window, not a 224 x 3.7M intermediate.
//   kLetterbox — the longer side becomes `size`, aspect ratio kept, the image centred and the
//     rest filled with `letterbox_fill` (stretching distorts shapes, which hurts retrieval
//     across domains; cropping can cut off the object).
//   kStretch — both sides become `size`, aspect ratio ignored.
//
// Interpolation is OpenCV's, so values are close to but not bit-identical with PIL's (PIL's
// bicubic uses a = -0.5, OpenCV's a = -0.75). PIL also widens its filter when shrinking
// (antialiasing); cv::INTER_CUBIC does not and aliases badly on large reductions. So when
// an axis shrinks below 1/2, the image is first reduced with cv::INTER_AREA (a box filter,
// alias-free) to twice the target size, and the requested interpolation does the last 2x.
//
// Thread-safety: free functions with no shared state; safe to call concurrently. cv::resize
// may use OpenCV's worker threads; how many is the caller's decision (cv::setNumThreads).
//
//   RETRACE_RETURN_IF_ERROR(ValidatePreprocessSpec(spec));          // once, at model load
//   PreprocessInto(image, spec, batch.data() + i * 3 * spec.size * spec.size);
#ifndef RETRACE_CORE_IMAGE_PREPROCESS_H_
#define RETRACE_CORE_IMAGE_PREPROCESS_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/image/image.h"

namespace retrace::image {

// ResizeMode: how the image is brought to a square (see the banner).
enum class ResizeMode { kShortestSideCenterCrop, kLetterbox, kStretch };

// Interpolation: the filter for the final resize step (see the banner for large reductions).
enum class Interpolation { kBicubic, kBilinear };

// PreprocessSpec describes one model's input. Defaults: 224, centre crop, bicubic, no
// normalisation (mean 0, std 1: values pixel / 255), black letterbox fill.
struct PreprocessSpec {
  // size: the side of the square output, in pixels. Valid: 1..4096.
  int size = 224;
  ResizeMode resize_mode = ResizeMode::kShortestSideCenterCrop;
  Interpolation interpolation = Interpolation::kBicubic;
  // mean, std: per RGB channel on the 0..1 scale; value = (pixel / 255 - mean[c]) / std[c].
  // std must be > 0. CLIP uses mean {0.48145466, 0.4578275, 0.40821073},
  // std {0.26862954, 0.26130258, 0.27577711}.
  std::array<float, 3> mean{0, 0, 0};
  std::array<float, 3> std{1, 1, 1};
  // letterbox_fill: the RGB colour of the padding in kLetterbox (normalised like pixels).
  std::array<uint8_t, 3> letterbox_fill{0, 0, 0};
};

// ValidatePreprocessSpec returns OK, or INVALID_ARGUMENT naming the field when size is not in
// 1..4096, a mean is not finite, a std is not finite and > 0, or an enum is out of range.
absl::Status ValidatePreprocessSpec(const PreprocessSpec& spec);

// PreprocessInto writes the CHW float tensor for one image to `out`: 3 planes (R, G, B) of
// size x size values, row-major, value = (pixel / 255 - mean[c]) / std[c].
// REQUIRES: ValidatePreprocessSpec(spec).ok(); image.width, image.height >= 1 and
// image.rgb.size() == width * height * 3; `out` has room for 3 * size * size floats.
// A violated REQUIRES aborts the process with a message (a programming error, not bad input:
// DecodeImage never returns an empty image).
void PreprocessInto(const Image& image, const PreprocessSpec& spec, float* out);

// Preprocess is PreprocessInto into a new vector of 3 * size * size floats. Same REQUIRES.
std::vector<float> Preprocess(const Image& image, const PreprocessSpec& spec);

// SameGeometry: whether two specs make the same tensor from every image. A spec is an input
// geometry as a whole — size, resize mode, interpolation, mean, std and letterbox fill all
// change the values — so this compares every field, exactly. Two models
// whose manifests share one can share one preprocessed tensor of an image (the engine's
// Batchers preprocess once per geometry, not once per model).
bool SameGeometry(const PreprocessSpec& a, const PreprocessSpec& b);

}  // namespace retrace::image

#endif  // RETRACE_CORE_IMAGE_PREPROCESS_H_
