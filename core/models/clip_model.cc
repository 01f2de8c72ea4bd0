#include "core/models/clip_model.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/models/internal/embedding_output.h"
#include "core/models/internal/image_batch.h"
#include "core/models/internal/require_methods.h"

namespace retrace::models {

absl::StatusOr<std::unique_ptr<ClipModel>> ClipModel::Create(ModelManifest manifest,
                                                             std::unique_ptr<ModelModule> module,
                                                             text::ClipTokenizer tokenizer) {
  RETRACE_RETURN_IF_ERROR(
      internal::RequireMethods(*module, {"encode_image", "encode_text"}, "a CLIP model"));
  if (manifest.embedding_dim < 1 || manifest.embedding_dim > 65536) {
    return absl::InvalidArgumentError(absl::StrCat(manifest.folder, ": embedding_dim ",
                                                   manifest.embedding_dim, " is not in 1..65536"));
  }
  RETRACE_RETURN_IF_ERROR(image::ValidatePreprocessSpec(manifest.image));
  return std::unique_ptr<ClipModel>(
      new ClipModel(std::move(manifest), std::move(module), std::move(tokenizer)));
}

ClipModel::ClipModel(ModelManifest manifest, std::unique_ptr<ModelModule> module,
                     text::ClipTokenizer tokenizer)
    : manifest_(std::move(manifest)), module_(std::move(module)), tokenizer_(std::move(tokenizer)) {}

absl::StatusOr<EmbeddingMatrix> ClipModel::EncodeImages(
    const std::vector<const image::Image*>& images) const {
  return EncodePreprocessed(internal::ImageBatch(images, manifest_.image));
}

absl::StatusOr<EmbeddingMatrix> ClipModel::EncodePreprocessed(Tensor pixels) const {
  const size_t rows = pixels.shape.empty() ? 0 : static_cast<size_t>(pixels.shape[0]);
  RETRACE_ASSIGN_OR_RETURN(Tensor out, module_->Call("encode_image", {std::move(pixels)}));
  return ToEmbeddings(out, rows, "encode_image");
}

absl::StatusOr<EmbeddingMatrix> ClipModel::EncodeTexts(const std::vector<std::string>& texts) const {
  const int context = manifest_.tokenizer.context_length;
  std::vector<int64_t> ids;
  ids.reserve(texts.size() * context);
  for (const std::string& text : texts) {
    std::vector<int64_t> row = tokenizer_.Tokenize(text, context);
    ids.insert(ids.end(), row.begin(), row.end());
  }
  RETRACE_ASSIGN_OR_RETURN(
      Tensor out,
      module_->Call("encode_text", {Tensor::Int64({static_cast<int64_t>(texts.size()), context},
                                                  std::move(ids))}));
  return ToEmbeddings(out, texts.size(), "encode_text");
}

absl::StatusOr<EmbeddingMatrix> ClipModel::ToEmbeddings(const Tensor& out, size_t rows,
                                                        const char* method) const {
  return internal::EmbeddingsFromOutput(out, rows, manifest_.embedding_dim, module_->Source(),
                                        method);
}

}  // namespace retrace::models
