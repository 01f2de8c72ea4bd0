// beam_search.h — beam search over a batch of images: B images x K beams in one model batch.
//
// Hugging Face's beam search with early_stopping=False, on log-probabilities of the logits after
// the logits rules (logits_rules.h):
//   - Each image starts with one live beam (its other K-1 slots would only repeat it); the first
//     step forks it into up to K beams.
//   - Each step, every live beam offers its 2K best next tokens, scored by the beam's summed
//     log-probability plus the token's. An image's candidates are taken best first: an EOS among
//     the first K ends a hypothesis (an EOS ranked lower is skipped); any other token continues a
//     beam, until K beams live.
//   - A finished hypothesis scores sum_logprobs / length^length_penalty, with length = tokens
//     generated including the EOS; each image keeps its K best.
//   - Stopping rule: an image is done once it holds K finished hypotheses and its best live beam,
//     normalised by the current length, does not beat the worst of them (length_penalty > 0 makes
//     this a heuristic, as in HF), or when no beam can continue. Done images leave the batch.
//     After max_new_tokens the live beams of unfinished images join their hypotheses.
//   - The result is each image's best hypothesis; ties keep the earlier one.
//
// Thread-safety: a function; the model serves this call only.
//
//   params.num_beams = 3;
//   RETRACE_ASSIGN_OR_RETURN(auto generated, BeamSearch(*model, batch, {bos}, params));
#ifndef RETRACE_CORE_MODELS_DECODING_BEAM_SEARCH_H_
#define RETRACE_CORE_MODELS_DECODING_BEAM_SEARCH_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/models/decoding/next_token_model.h"
#include "core/models/decoding/search_params.h"

namespace retrace::models::decoding {

// BeamSearch decodes `batch` images whose sequences begin with `start` (BOS, then any prompt) and
// returns each image's best generated tokens, without `start` and without the EOS. Errors: the
// model's (INTERNAL).
absl::StatusOr<std::vector<std::vector<int64_t>>> BeamSearch(NextTokenModel& model, size_t batch,
                                                             const std::vector<int64_t>& start,
                                                             const SearchParams& params);

}  // namespace retrace::models::decoding

#endif  // RETRACE_CORE_MODELS_DECODING_BEAM_SEARCH_H_
