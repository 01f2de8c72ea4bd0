// greedy_search.h — greedy decoding: at every step each sequence takes its arg-max token.
//
// The logits rules (logits_rules.h) reshape each row first; ties go to the lowest id. A sequence
// ends when it picks an EOS id (which is not returned), when every token is banned, or after
// max_new_tokens; ended sequences leave the model's batch.
//
// Thread-safety: a function; the model serves this call only.
//
//   RETRACE_ASSIGN_OR_RETURN(auto generated, GreedySearch(*model, batch, {bos}, params));
#ifndef RETRACE_CORE_MODELS_DECODING_GREEDY_SEARCH_H_
#define RETRACE_CORE_MODELS_DECODING_GREEDY_SEARCH_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/models/decoding/next_token_model.h"
#include "core/models/decoding/search_params.h"

namespace retrace::models::decoding {

// GreedySearch decodes `batch` sequences that all begin with `start` (BOS, then any prompt) and
// returns the tokens generated for each, without `start` and without the EOS. Errors: the
// model's (INTERNAL).
absl::StatusOr<std::vector<std::vector<int64_t>>> GreedySearch(NextTokenModel& model, size_t batch,
                                                               const std::vector<int64_t>& start,
                                                               const SearchParams& params);

}  // namespace retrace::models::decoding

#endif  // RETRACE_CORE_MODELS_DECODING_GREEDY_SEARCH_H_
