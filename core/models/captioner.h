// captioner.h — BLIP-2-style image captioning: an image prefix and a token-by-token decoder.
//
// Wraps a ModelModule with `encode_image(f32[B,3,S,S]) -> f32[B,Q,H]` and
// `logits(f32[B,Q,H] prefix, i64[B,T] tokens) -> f32[B,V]`. Decoding runs here, in C++: every
// sequence starts with the manifest's BOS id, takes the arg-max token each step (greedy), and
// stops at any EOS id or after max_new_tokens. All images of a call decode as one batch; finished
// sequences leave the batch. Token ids become text with the GPT-2 byte-level BPE decoder (OPT ids
// for BLIP-2 OPT). Each step recomputes the whole sequence (no KV cache yet).
//
// Thread-safety: const methods are safe for concurrent use.
//
//   CaptionOptions options;  options.max_new_tokens = 20;
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

struct CaptionOptions {
  // max_new_tokens caps generated tokens per caption; 0 means the manifest's default. 1..128.
  int max_new_tokens = 0;
};

inline constexpr int kMaxNewTokensLimit = 128;

class Captioner {
 public:
  // Create checks the contract: FAILED_PRECONDITION naming the model file and the method if
  // encode_image or logits is missing; INVALID_ARGUMENT for a manifest without vocab_size,
  // prefix_length, prefix_dim or EOS ids, or with invalid preprocessing.
  static absl::StatusOr<std::unique_ptr<Captioner>> Create(ModelManifest manifest,
                                                           std::unique_ptr<ModelModule> module,
                                                           text::ByteLevelBpe decoder);

  // Caption returns one caption per image, in order (whitespace-trimmed; may be empty if the model
  // ends at once). INVALID_ARGUMENT for max_new_tokens outside 0..128; INTERNAL if the model fails
  // or returns shapes other than the manifest's [B,Q,H] and [B,V], or a token the decoder lacks.
  absl::StatusOr<std::vector<std::string>> Caption(const std::vector<const image::Image*>& images,
                                                   const CaptionOptions& options) const;

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
