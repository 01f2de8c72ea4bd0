#include "core/models/captioner.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/models/internal/image_batch.h"
#include "core/models/internal/require_methods.h"

namespace retrace::models {
namespace {

// Rows keeps the rows of a [B, ...] float tensor whose batch index is in `keep`.
Tensor Rows(const Tensor& t, const std::vector<size_t>& keep) {
  int64_t per_row = 1;
  for (size_t d = 1; d < t.shape.size(); ++d) per_row *= t.shape[d];
  std::vector<float> data;
  data.reserve(keep.size() * per_row);
  for (size_t row : keep) {
    data.insert(data.end(), t.f32.begin() + row * per_row, t.f32.begin() + (row + 1) * per_row);
  }
  std::vector<int64_t> shape = t.shape;
  shape[0] = static_cast<int64_t>(keep.size());
  return Tensor::Float(std::move(shape), std::move(data));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Captioner>> Captioner::Create(ModelManifest manifest,
                                                             std::unique_ptr<ModelModule> module,
                                                             text::ByteLevelBpe decoder) {
  RETRACE_RETURN_IF_ERROR(
      internal::RequireMethods(*module, {"encode_image", "logits"}, "a captioner"));
  const CaptionerSpec& spec = manifest.captioner;
  if (spec.vocab_size < 1 || spec.prefix_length < 1 || spec.prefix_dim < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        manifest.folder, ": captioner.vocab_size, prefix_length and prefix_dim must be positive"));
  }
  if (spec.eos_token_ids.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(manifest.folder, ": captioner.eos_token_ids is empty"));
  }
  if (spec.max_new_tokens < 1 || spec.max_new_tokens > kMaxNewTokensLimit) {
    return absl::InvalidArgumentError(absl::StrCat(manifest.folder, ": captioner.max_new_tokens ",
                                                   spec.max_new_tokens, " is not in 1..",
                                                   kMaxNewTokensLimit));
  }
  RETRACE_RETURN_IF_ERROR(image::ValidatePreprocessSpec(manifest.image));
  return std::unique_ptr<Captioner>(
      new Captioner(std::move(manifest), std::move(module), std::move(decoder)));
}

Captioner::Captioner(ModelManifest manifest, std::unique_ptr<ModelModule> module,
                     text::ByteLevelBpe decoder)
    : manifest_(std::move(manifest)), module_(std::move(module)), decoder_(std::move(decoder)) {}

absl::StatusOr<std::vector<std::string>> Captioner::Caption(
    const std::vector<const image::Image*>& images, const CaptionOptions& options) const {
  const CaptionerSpec& spec = manifest_.captioner;
  if (options.max_new_tokens < 0 || options.max_new_tokens > kMaxNewTokensLimit) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens ", options.max_new_tokens,
                                                   " is not in 0..", kMaxNewTokensLimit));
  }
  const int max_new = options.max_new_tokens > 0 ? options.max_new_tokens : spec.max_new_tokens;
  const size_t batch = images.size();
  if (batch == 0) return std::vector<std::string>{};

  RETRACE_ASSIGN_OR_RETURN(
      Tensor prefix, module_->Call("encode_image", {internal::ImageBatch(images, manifest_.image)}));
  if (prefix.dtype != DType::kFloat32 || prefix.shape.size() != 3 ||
      prefix.shape[0] != static_cast<int64_t>(batch) || prefix.shape[1] != spec.prefix_length ||
      prefix.shape[2] != spec.prefix_dim) {
    return absl::InternalError(absl::StrCat(module_->Source(), ": encode_image() returned ",
                                            prefix.ShapeString(), "; the manifest promises [",
                                            batch, ", ", spec.prefix_length, ", ",
                                            spec.prefix_dim, "] float"));
  }

  // sequences[i] holds BOS then the tokens generated for image i; `active` lists the images
  // still decoding, and `prefix` holds exactly their rows.
  std::vector<std::vector<int64_t>> sequences(batch, {spec.bos_token_id});
  std::vector<size_t> active(batch);
  for (size_t i = 0; i < batch; ++i) active[i] = i;

  for (int step = 0; step < max_new && !active.empty(); ++step) {
    const int64_t length = static_cast<int64_t>(sequences[active[0]].size());
    std::vector<int64_t> tokens;
    tokens.reserve(active.size() * length);
    for (size_t i : active) tokens.insert(tokens.end(), sequences[i].begin(), sequences[i].end());
    RETRACE_ASSIGN_OR_RETURN(
        Tensor logits,
        module_->Call("logits", {prefix, Tensor::Int64({static_cast<int64_t>(active.size()), length},
                                                       std::move(tokens))}));
    if (logits.dtype != DType::kFloat32 || logits.shape.size() != 2 ||
        logits.shape[0] != static_cast<int64_t>(active.size()) ||
        logits.shape[1] != spec.vocab_size) {
      return absl::InternalError(absl::StrCat(module_->Source(), ": logits() returned ",
                                              logits.ShapeString(), "; the manifest promises [",
                                              active.size(), ", ", spec.vocab_size, "] float"));
    }
    std::vector<size_t> still_active;
    std::vector<size_t> kept_rows;
    for (size_t row = 0; row < active.size(); ++row) {
      const float* scores = logits.f32.data() + row * spec.vocab_size;
      const int64_t next = std::max_element(scores, scores + spec.vocab_size) - scores;
      const bool eos = std::find(spec.eos_token_ids.begin(), spec.eos_token_ids.end(), next) !=
                       spec.eos_token_ids.end();
      if (eos) continue;
      sequences[active[row]].push_back(next);
      still_active.push_back(active[row]);
      kept_rows.push_back(row);
    }
    if (still_active.size() != active.size() && !still_active.empty()) {
      prefix = Rows(prefix, kept_rows);
    }
    active = std::move(still_active);
  }

  std::vector<std::string> captions;
  captions.reserve(batch);
  for (std::vector<int64_t>& sequence : sequences) {
    sequence.erase(sequence.begin());  // BOS
    auto text = decoder_.Decode(sequence, /*skip_special=*/true);
    if (!text.ok()) {
      return absl::InternalError(absl::StrCat(module_->Source(), ": generated a token the ",
                                              "captioner's vocabulary cannot decode: ",
                                              text.status().message()));
    }
    captions.emplace_back(absl::StripAsciiWhitespace(*text));
  }
  return captions;
}

}  // namespace retrace::models
