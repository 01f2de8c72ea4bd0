// captioner.h — BLIP-2-style image captioning: an image prefix and a token-by-token decoder.
//
// Wraps a ModelModule with `encode_image(f32[B,3,S,S]) -> f32[B,Q,H]` and
// `logits(f32[B,Q,H] prefix, i64[B,T] tokens) -> f32[B,V]`, and optionally the cached pair
// `prefill`/`step` (model_manifest.proto, CAPTIONER), which is then used instead of recomputing
// the whole sequence every step; the captions are the same either way. Decoding runs here, in C++
// (core/models/decoding/): every sequence starts with the manifest's BOS id and the prompt's
// tokens, then greedy (num_beams 1) or beam search, with the logits rules (repetition penalty,
// no-repeat n-grams, minimum length) and EOS at any of the manifest's EOS ids. All images of a
// call decode as one batch (B images x K beams); finished sequences leave the batch. Token ids
// become text with the GPT-2 byte-level BPE (OPT ids for BLIP-2 OPT), which also encodes prompts
// when the manifest names a merges file.
//
// Thread-safety: const methods are safe for concurrent use.
//
//   CaptionOptions options;  options.num_beams = 3;  options.no_repeat_ngram_size = 2;
//   RETRACE_ASSIGN_OR_RETURN(std::vector<std::string> captions, captioner.Caption({&img}, options));
#ifndef RETRACE_CORE_MODELS_CAPTIONER_H_
#define RETRACE_CORE_MODELS_CAPTIONER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/image/image.h"
#include "core/models/model_manifest.h"
#include "core/models/model_module.h"
#include "core/text/byte_level_bpe.h"

namespace retrace::models {

// CaptionOptions: how to decode. The defaults are greedy decoding with no rules, as BLIP-2's
// generate() with its defaults. Caption() validates every field (see ValidateOptions).
struct CaptionOptions {
  // max_new_tokens caps generated tokens per caption; 0 means the manifest's default. 0..128.
  int max_new_tokens = 0;
  // min_new_tokens: EOS cannot end a caption before this many tokens. 0..max_new_tokens.
  int min_new_tokens = 0;
  // num_beams: 1 is greedy decoding; more is beam search with that width. 1..8.
  int num_beams = 1;
  // length_penalty (beam search): a hypothesis scores sum log-prob / length^length_penalty;
  // > 0 favours longer captions, < 0 shorter ones. Finite, -4..4.
  float length_penalty = 1.0f;
  // no_repeat_ngram_size: a token that would repeat an n-gram of the sequence (prompt included)
  // is banned; 0 is off. 0..16.
  int no_repeat_ngram_size = 0;
  // repetition_penalty (CTRL): tokens already in the sequence have positive logits divided by it
  // and negative ones multiplied; 1 is off. Finite, 1..10.
  float repetition_penalty = 1.0f;
  // prompt: text the caption continues (BLIP-2 OPT: BOS, then the prompt's tokens); the caption
  // returned is only the continuation. Empty is none. At most 512 bytes; needs a merges file.
  std::string prompt;
};

inline constexpr int kMaxNewTokensLimit = 128;
inline constexpr int kMaxBeams = 8;
inline constexpr float kMaxAbsLengthPenalty = 4.0f;
inline constexpr int kMaxNoRepeatNgramSize = 16;
inline constexpr float kMaxRepetitionPenalty = 10.0f;
inline constexpr size_t kMaxPromptBytes = 512;

class Captioner {
 public:
  // Create checks the contract: FAILED_PRECONDITION naming the model file and the method if
  // encode_image or logits is missing, or if only one of prefill and step is; INVALID_ARGUMENT for a manifest without vocab_size,
  // prefix_length, prefix_dim or EOS ids, or with invalid preprocessing.
  static absl::StatusOr<std::unique_ptr<Captioner>> Create(ModelManifest manifest,
                                                           std::unique_ptr<ModelModule> module,
                                                           text::ByteLevelBpe decoder);

  // ValidateOptions: INVALID_ARGUMENT naming the first bad field, e.g. "options.num_beams: 9 is not
  // in 1..8", or "options.prompt" when a prompt is given but the captioner has no merges file.
  absl::Status ValidateOptions(const CaptionOptions& options) const;

  // Caption returns one caption per image, in order (whitespace-trimmed; may be empty if the model
  // ends at once). INVALID_ARGUMENT as ValidateOptions; INTERNAL if the model fails or returns
  // shapes other than the manifest's [B,Q,H], [B,V] and a [B,...] cache, or a token the decoder
  // lacks.
  absl::StatusOr<std::vector<std::string>> Caption(const std::vector<const image::Image*>& images,
                                                   const CaptionOptions& options) const;

  // cached_decoding says whether the model has prefill/step (and Caption uses them).
  bool cached_decoding() const;

  const ModelManifest& manifest() const { return manifest_; }

 private:
  Captioner(ModelManifest manifest, std::unique_ptr<ModelModule> module,
            text::ByteLevelBpe decoder);

  ModelManifest manifest_;
  std::unique_ptr<ModelModule> module_;
  text::ByteLevelBpe decoder_;
};

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_CAPTIONER_H_
