#include "core/models/decoding/greedy_search.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>

#include "core/common/status_macros.h"

namespace retrace::models::decoding {

absl::StatusOr<std::vector<std::vector<int64_t>>> GreedySearch(NextTokenModel& model, size_t batch,
                                                               const std::vector<int64_t>& start,
                                                               const SearchParams& params) {
  std::vector<std::vector<int64_t>> sequences(batch, start);
  if (batch == 0) return std::vector<std::vector<int64_t>>{};
  const std::vector<int64_t>& eos = params.rules.eos_token_ids;
  std::vector<size_t> active(batch);  // the image of each model row
  for (size_t i = 0; i < batch; ++i) active[i] = i;

  RETRACE_ASSIGN_OR_RETURN(Tensor logits, model.Start(start));
  for (int step = 0; step < params.max_new_tokens; ++step) {
    const size_t vocab = static_cast<size_t>(logits.shape[1]);
    std::vector<size_t> parents;
    std::vector<int64_t> tokens;
    std::vector<size_t> still_active;
    for (size_t row = 0; row < active.size(); ++row) {
      std::vector<int64_t>& sequence = sequences[active[row]];
      float* scores = logits.f32.data() + row * vocab;
      ApplyLogitsRules(params.rules, sequence, static_cast<size_t>(step), scores, vocab);
      const float* best = std::max_element(scores, scores + vocab);
      const int64_t next = best - scores;
      const bool banned_all = std::isinf(*best) && *best < 0;
      if (banned_all || std::find(eos.begin(), eos.end(), next) != eos.end()) continue;
      sequence.push_back(next);
      parents.push_back(row);
      tokens.push_back(next);
      still_active.push_back(active[row]);
    }
    active = std::move(still_active);
    if (active.empty() || step + 1 == params.max_new_tokens) break;
    RETRACE_ASSIGN_OR_RETURN(logits, model.Advance(parents, tokens));
  }
  for (std::vector<int64_t>& sequence : sequences) {
    sequence.erase(sequence.begin(), sequence.begin() + static_cast<std::ptrdiff_t>(start.size()));
  }
  return sequences;
}

}  // namespace retrace::models::decoding
