#include "core/models/image_encoder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/models/internal/embedding_output.h"
#include "core/models/internal/image_batch.h"
#include "core/models/internal/require_methods.h"

namespace retrace::models {

absl::StatusOr<std::unique_ptr<ImageEncoder>> ImageEncoder::Create(
    ModelManifest manifest, std::unique_ptr<ModelModule> module) {
  RETRACE_RETURN_IF_ERROR(internal::RequireMethods(*module, {"encode_image"}, "an image encoder"));
  if (manifest.embedding_dim < 1 || manifest.embedding_dim > 65536) {
    return absl::InvalidArgumentError(absl::StrCat(manifest.folder, ": embedding_dim ",
                                                   manifest.embedding_dim, " is not in 1..65536"));
  }
  RETRACE_RETURN_IF_ERROR(image::ValidatePreprocessSpec(manifest.image));
  return std::unique_ptr<ImageEncoder>(new ImageEncoder(std::move(manifest), std::move(module)));
}

ImageEncoder::ImageEncoder(ModelManifest manifest, std::unique_ptr<ModelModule> module)
    : manifest_(std::move(manifest)), module_(std::move(module)) {}

absl::StatusOr<EmbeddingMatrix> ImageEncoder::EncodeImages(
    const std::vector<const image::Image*>& images) const {
  return EncodePreprocessed(internal::ImageBatch(images, manifest_.image));
}

absl::StatusOr<EmbeddingMatrix> ImageEncoder::EncodePreprocessed(Tensor pixels) const {
  const size_t rows = pixels.shape.empty() ? 0 : static_cast<size_t>(pixels.shape[0]);
  RETRACE_ASSIGN_OR_RETURN(Tensor out, module_->Call("encode_image", {std::move(pixels)}));
  return internal::EmbeddingsFromOutput(out, rows, manifest_.embedding_dim, module_->Source(),
                                        "encode_image");
}

}  // namespace retrace::models
