// next_token_model.h — next-token logits for a batch of growing sequences, with or without a cache.
//
// Search loops (greedy, beam) see a set of rows: each row is one sequence over one image prefix.
// Start() opens the rows (one per image, all with the same start tokens: BOS and the prompt);
// each Advance() says which earlier row every new row continues (`parents`, so rows may be
// dropped, reordered or duplicated — finished sequences leave, beams fork) and the token it
// appends. Both return logits f32[rows, V].
//
// Two implementations over a captioner ModelModule (the contract in model_manifest.proto):
//   - recompute: `logits(prefix, tokens)` on the whole sequence every step;
//   - cached: `prefill(prefix, tokens) -> (logits, cache)` once, then
//     `step(cache, token) -> (logits, cache)`. The cache is one float tensor with the batch in
//     dim 0 and is otherwise opaque: it stays a ModelValue on the module's device (CallTupleKeep)
//     and Advance() selects its dim-0 rows by `parents` there (ModelModule::SelectRows); only
//     the logits come to the host.
// MakeNextTokenModel picks the cached one when the model has both prefill and step. Both give the
// same logits up to floating-point rounding. The cache makes a step cost O(length) model work
// instead of O(length^2).
//
// Thread-safety: an instance serves one decoding loop (not thread-safe); the module is shared.
//
//   std::unique_ptr<NextTokenModel> model = MakeNextTokenModel(module, spec, std::move(prefix));
//   RETRACE_ASSIGN_OR_RETURN(Tensor logits, model->Start({bos}));
//   RETRACE_ASSIGN_OR_RETURN(logits, model->Advance({0, 0}, {next_a, next_b}));
#ifndef RETRACE_CORE_MODELS_DECODING_NEXT_TOKEN_MODEL_H_
#define RETRACE_CORE_MODELS_DECODING_NEXT_TOKEN_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/models/model_manifest.h"
#include "core/models/model_module.h"
#include "core/models/tensor.h"

namespace retrace::models::decoding {

class NextTokenModel {
 public:
  virtual ~NextTokenModel() = default;

  // Start opens one row per prefix row, each holding `start_tokens` (REQUIRES: not empty), and
  // returns their next-token logits [B, V]. INTERNAL if the model fails or breaks the contract.
  virtual absl::StatusOr<Tensor> Start(const std::vector<int64_t>& start_tokens) = 0;

  // Advance makes row r of the new set continue old row parents[r] with tokens[r], and returns
  // the new rows' logits. REQUIRES: parents.size() == tokens.size() > 0, each parent < the
  // current row count. INTERNAL if the model fails or breaks the contract.
  virtual absl::StatusOr<Tensor> Advance(const std::vector<size_t>& parents,
                                         const std::vector<int64_t>& tokens) = 0;
};

// HasCachedDecoding says whether `module` has both prefill and step.
bool HasCachedDecoding(const ModelModule& module);

// MakeNextTokenModel returns the cached implementation when the module has both prefill and step,
// else the recompute one. `prefix` is encode_image's f32[B,Q,H]; `module` and `spec` must outlive
// the result.
std::unique_ptr<NextTokenModel> MakeNextTokenModel(const ModelModule& module,
                                                   const CaptionerSpec& spec, Tensor prefix);

// SelectRows returns the rows `rows` of a [N, ...] float tensor, in that order (repeats allowed).
Tensor SelectRows(const Tensor& t, const std::vector<size_t>& rows);

}  // namespace retrace::models::decoding

#endif  // RETRACE_CORE_MODELS_DECODING_NEXT_TOKEN_MODEL_H_
