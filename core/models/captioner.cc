#include "core/models/captioner.h"

#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/models/decoding/beam_search.h"
#include "core/models/decoding/greedy_search.h"
#include "core/models/decoding/next_token_model.h"
#include "core/models/internal/image_batch.h"
#include "core/models/internal/require_methods.h"

namespace retrace::models {
namespace {

absl::Status OutOfRange(const char* field, double value, double lo, double hi) {
  return absl::InvalidArgumentError(
      absl::StrCat("options.", field, ": ", value, " is not in ", lo, "..", hi));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Captioner>> Captioner::Create(ModelManifest manifest,
                                                             std::unique_ptr<ModelModule> module,
                                                             text::ByteLevelBpe decoder) {
  RETRACE_RETURN_IF_ERROR(
      internal::RequireMethods(*module, {"encode_image", "logits"}, "a captioner"));
  if (module->HasMethod("prefill") != module->HasMethod("step")) {
    // Half a cache contract is an exporter bug; recomputing silently would hide it.
    return absl::FailedPreconditionError(absl::StrCat(
        module->Source(), ": a captioner has both prefill() and step() or neither; this one has only ",
        module->HasMethod("prefill") ? "prefill()" : "step()"));
  }
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

bool Captioner::cached_decoding() const { return decoding::HasCachedDecoding(*module_); }

absl::Status Captioner::ValidateOptions(const CaptionOptions& o) const {
  if (o.max_new_tokens < 0 || o.max_new_tokens > kMaxNewTokensLimit) {
    return OutOfRange("max_new_tokens", o.max_new_tokens, 0, kMaxNewTokensLimit);
  }
  const int max_new = o.max_new_tokens > 0 ? o.max_new_tokens : manifest_.captioner.max_new_tokens;
  if (o.min_new_tokens < 0 || o.min_new_tokens > max_new) {
    return absl::InvalidArgumentError(absl::StrCat("options.min_new_tokens: ", o.min_new_tokens,
                                                   " is not in 0..", max_new,
                                                   " (max_new_tokens)"));
  }
  if (o.num_beams < 1 || o.num_beams > kMaxBeams) {
    return OutOfRange("num_beams", o.num_beams, 1, kMaxBeams);
  }
  // !(a <= x && x <= b) also catches NaN.
  if (!(std::abs(o.length_penalty) <= kMaxAbsLengthPenalty)) {
    return OutOfRange("length_penalty", o.length_penalty, -kMaxAbsLengthPenalty,
                      kMaxAbsLengthPenalty);
  }
  if (o.no_repeat_ngram_size < 0 || o.no_repeat_ngram_size > kMaxNoRepeatNgramSize) {
    return OutOfRange("no_repeat_ngram_size", o.no_repeat_ngram_size, 0, kMaxNoRepeatNgramSize);
  }
  if (!(o.repetition_penalty >= 1.0f && o.repetition_penalty <= kMaxRepetitionPenalty)) {
    return OutOfRange("repetition_penalty", o.repetition_penalty, 1, kMaxRepetitionPenalty);
  }
  if (o.prompt.size() > kMaxPromptBytes) {
    return absl::InvalidArgumentError(absl::StrCat("options.prompt: ", o.prompt.size(),
                                                   " bytes; at most ", kMaxPromptBytes));
  }
  if (!o.prompt.empty() && manifest_.tokenizer.merges_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.prompt: the captioner '", manifest_.name,
        "' has no tokenizer.merges_file in its manifest, so it cannot encode a prompt"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Captioner::Caption(
    const std::vector<const image::Image*>& images, const CaptionOptions& options) const {
  RETRACE_RETURN_IF_ERROR(ValidateOptions(options));
  const CaptionerSpec& spec = manifest_.captioner;
  const size_t batch = images.size();
  if (batch == 0) return std::vector<std::string>{};

  std::vector<int64_t> start = {spec.bos_token_id};
  if (!options.prompt.empty()) {
    auto prompt = decoder_.Encode(options.prompt);
    if (!prompt.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.prompt: cannot encode: ", prompt.status().message()));
    }
    start.insert(start.end(), prompt->begin(), prompt->end());
  }

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

  decoding::SearchParams params;
  params.max_new_tokens = options.max_new_tokens > 0 ? options.max_new_tokens : spec.max_new_tokens;
  params.num_beams = options.num_beams;
  params.length_penalty = options.length_penalty;
  params.rules.repetition_penalty = options.repetition_penalty;
  params.rules.no_repeat_ngram_size = options.no_repeat_ngram_size;
  params.rules.min_new_tokens = options.min_new_tokens;
  params.rules.eos_token_ids = spec.eos_token_ids;
  std::unique_ptr<decoding::NextTokenModel> model =
      decoding::MakeNextTokenModel(*module_, spec, std::move(prefix));
  RETRACE_ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> generated,
                           params.num_beams == 1
                               ? decoding::GreedySearch(*model, batch, start, params)
                               : decoding::BeamSearch(*model, batch, start, params));

  std::vector<std::string> captions;
  captions.reserve(batch);
  for (const std::vector<int64_t>& tokens : generated) {
    auto text = decoder_.Decode(tokens, /*skip_special=*/true);
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
