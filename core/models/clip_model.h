// clip_model.h — a CLIP model: images and texts into one embedding space.
//
// Wraps a ModelModule with `encode_image(f32[B,3,S,S]) -> f32[B,D]` and
// `encode_text(i64[B,L]) -> f32[B,D]`, the manifest's preprocessing and the CLIP BPE tokenizer.
// Every returned embedding is L2-normalised.
//
// Thread-safety: const methods are safe for concurrent use.
//
//   RETRACE_ASSIGN_OR_RETURN(EmbeddingMatrix q, clip.EncodeImages({&image}));
//   RETRACE_ASSIGN_OR_RETURN(EmbeddingMatrix t, clip.EncodeTexts({"a sketch of a horse"}));
#ifndef RETRACE_CORE_MODELS_CLIP_MODEL_H_
#define RETRACE_CORE_MODELS_CLIP_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/image/image.h"
#include "core/models/embeddings.h"
#include "core/models/model_manifest.h"
#include "core/models/model_module.h"
#include "core/models/tensor.h"
#include "core/text/clip_tokenizer.h"

namespace retrace::models {

class ClipModel {
 public:
  // Create checks the contract: FAILED_PRECONDITION naming the model file and the method if
  // encode_image or encode_text is missing, INVALID_ARGUMENT if the manifest's embedding_dim or
  // preprocessing is invalid.
  static absl::StatusOr<std::unique_ptr<ClipModel>> Create(ModelManifest manifest,
                                                           std::unique_ptr<ModelModule> module,
                                                           text::ClipTokenizer tokenizer);

  // EncodeImages returns one normalised row per image. INTERNAL if the model fails or returns a
  // shape other than [B, embedding_dim]. REQUIRES: images non-empty and decoded.
  absl::StatusOr<EmbeddingMatrix> EncodeImages(const std::vector<const image::Image*>& images) const;

  // EncodePreprocessed is EncodeImages on images already preprocessed with manifest().image:
  // `pixels` is f32[B,3,S,S], S = manifest().image.size, each image as image::PreprocessInto
  // writes it. The engine preprocesses an image once for every model of the same geometry
  // (image::SameGeometry) and hands each the same tensor. INTERNAL as for EncodeImages; a
  // tensor of another shape is the model's error (INTERNAL), not checked here.
  absl::StatusOr<EmbeddingMatrix> EncodePreprocessed(Tensor pixels) const;

  // EncodeTexts tokenizes (truncating to the context length) and returns one normalised row per
  // text. INTERNAL as for EncodeImages.
  absl::StatusOr<EmbeddingMatrix> EncodeTexts(const std::vector<std::string>& texts) const;

  int dim() const { return manifest_.embedding_dim; }
  const ModelManifest& manifest() const { return manifest_; }

 private:
  ClipModel(ModelManifest manifest, std::unique_ptr<ModelModule> module,
            text::ClipTokenizer tokenizer);
  absl::StatusOr<EmbeddingMatrix> ToEmbeddings(const Tensor& out, size_t rows,
                                               const char* method) const;

  ModelManifest manifest_;
  std::unique_ptr<ModelModule> module_;
  text::ClipTokenizer tokenizer_;
};

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_CLIP_MODEL_H_
