// image_encoder.h — an image-only encoder (CS-SLIP) for the provenance image space.
//
// Wraps a ModelModule with `encode_image(f32[B,3,S,S]) -> f32[B,D]` and the manifest's
// preprocessing. Every returned embedding is L2-normalised. The engine concatenates it with
// CLIP's image embedding to form a collection's image space (CS-SLIP paper, Fig. 2).
//
// Thread-safety: const methods are safe for concurrent use.
//
//   RETRACE_ASSIGN_OR_RETURN(EmbeddingMatrix e, encoder.EncodeImages({&image}));
#ifndef RETRACE_CORE_MODELS_IMAGE_ENCODER_H_
#define RETRACE_CORE_MODELS_IMAGE_ENCODER_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/image/image.h"
#include "core/models/embeddings.h"
#include "core/models/model_manifest.h"
#include "core/models/model_module.h"
#include "core/models/tensor.h"

namespace retrace::models {

class ImageEncoder {
 public:
  // Create checks the contract: FAILED_PRECONDITION naming the model file if encode_image is
  // missing, INVALID_ARGUMENT if the manifest's embedding_dim or preprocessing is invalid.
  static absl::StatusOr<std::unique_ptr<ImageEncoder>> Create(ModelManifest manifest,
                                                              std::unique_ptr<ModelModule> module);

  // EncodeImages returns one normalised row per image. INTERNAL if the model fails or returns a
  // shape other than [B, embedding_dim]. REQUIRES: images non-empty and decoded.
  absl::StatusOr<EmbeddingMatrix> EncodeImages(const std::vector<const image::Image*>& images) const;

  // EncodePreprocessed is EncodeImages on images already preprocessed with manifest().image:
  // `pixels` is f32[B,3,S,S], S = manifest().image.size, each image as image::PreprocessInto
  // writes it. The engine preprocesses an image once for every model of the same geometry
  // (image::SameGeometry) and hands each the same tensor. INTERNAL as for EncodeImages; a
  // tensor of another shape is the model's error (INTERNAL), not checked here.
  absl::StatusOr<EmbeddingMatrix> EncodePreprocessed(Tensor pixels) const;

  int dim() const { return manifest_.embedding_dim; }
  const ModelManifest& manifest() const { return manifest_; }

 private:
  ImageEncoder(ModelManifest manifest, std::unique_ptr<ModelModule> module);

  ModelManifest manifest_;
  std::unique_ptr<ModelModule> module_;
};

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_IMAGE_ENCODER_H_
