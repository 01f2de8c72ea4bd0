#include "core/models/decoding/logits_rules.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace retrace::models::decoding {
namespace {

constexpr float kBanned = -std::numeric_limits<float>::infinity();

bool InVocab(int64_t id, size_t vocab) { return id >= 0 && static_cast<size_t>(id) < vocab; }

}  // namespace

void ApplyRepetitionPenalty(float penalty, const std::vector<int64_t>& sequence, float* logits,
                            size_t vocab) {
  if (penalty == 1.0f || sequence.size() < 2) return;
  std::vector<int64_t> seen(sequence.begin() + 1, sequence.end());
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  for (int64_t id : seen) {
    if (!InVocab(id, vocab)) continue;
    float& logit = logits[id];
    logit = logit > 0 ? logit / penalty : logit * penalty;
  }
}

void BanRepeatedNgrams(int n, const std::vector<int64_t>& sequence, float* logits, size_t vocab) {
  if (n < 1 || sequence.size() + 1 < static_cast<size_t>(n)) return;
  const size_t context = static_cast<size_t>(n) - 1;  // the tokens the new one would follow
  const size_t tail = sequence.size() - context;
  // Every earlier n-gram whose first n-1 tokens equal the sequence's last n-1 bans its last token.
  for (size_t start = 0; start + context < sequence.size(); ++start) {
    if (std::equal(sequence.begin() + start, sequence.begin() + start + context,
                   sequence.begin() + tail)) {
      const int64_t banned = sequence[start + context];
      if (InVocab(banned, vocab)) logits[banned] = kBanned;
    }
  }
}

void SuppressTokens(const std::vector<int64_t>& ids, float* logits, size_t vocab) {
  for (int64_t id : ids) {
    if (InVocab(id, vocab)) logits[id] = kBanned;
  }
}

void ApplyLogitsRules(const LogitsRules& rules, const std::vector<int64_t>& sequence,
                      size_t generated, float* logits, size_t vocab) {
  ApplyRepetitionPenalty(rules.repetition_penalty, sequence, logits, vocab);
  BanRepeatedNgrams(rules.no_repeat_ngram_size, sequence, logits, vocab);
  if (generated < static_cast<size_t>(std::max(0, rules.min_new_tokens))) {
    SuppressTokens(rules.eos_token_ids, logits, vocab);
  }
}

void LogSoftmax(float* logits, size_t vocab) {
  const float max = *std::max_element(logits, logits + vocab);
  if (std::isinf(max) && max < 0) return;
  double sum = 0;
  for (size_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max));
  const float log_sum = max + static_cast<float>(std::log(sum));
  for (size_t i = 0; i < vocab; ++i) logits[i] -= log_sum;
}

}  // namespace retrace::models::decoding
