// logits_rules.h — the rules that reshape a row of next-token logits before a token is chosen.
//
// Semantics are Hugging Face transformers' logits processors, applied in this order to the raw
// logits (before log-softmax, for greedy and beam search alike, so that beam search with one beam
// scores what greedy picks):
//   1. repetition penalty (CTRL): every token already in the sequence after BOS (prompt and
//      generated) has its logit divided by the penalty if positive, multiplied if not. BOS is left
//      out because OPT's BOS id (2) is also its EOS id: penalising it would bias stopping.
//   2. no-repeat n-grams: a token that would complete an n-gram already present in the sequence
//      (BOS, prompt and generated) gets -inf.
//   3. minimum length: every EOS id gets -inf until min_new_tokens tokens have been generated.
//
// Thread-safety: plain functions over caller-owned data.
//
//   LogitsRules rules;  rules.no_repeat_ngram_size = 2;  rules.eos_token_ids = {50118, 2};
//   ApplyLogitsRules(rules, sequence, /*generated=*/3, row.data(), row.size());
#ifndef RETRACE_CORE_MODELS_DECODING_LOGITS_RULES_H_
#define RETRACE_CORE_MODELS_DECODING_LOGITS_RULES_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace retrace::models::decoding {

struct LogitsRules {
  float repetition_penalty = 1.0f;  // 1 = off; REQUIRES >= 1 (validated by the caller)
  int no_repeat_ngram_size = 0;     // 0 = off
  int min_new_tokens = 0;           // EOS ids are banned while fewer tokens were generated
  std::vector<int64_t> eos_token_ids;
};

// ApplyRepetitionPenalty penalises, once each, the tokens of sequence[1..] (BOS is skipped).
// Ids outside [0, vocab) are ignored.
void ApplyRepetitionPenalty(float penalty, const std::vector<int64_t>& sequence, float* logits,
                            size_t vocab);

// BanRepeatedNgrams sets -inf for every token that would make the sequence's last n-gram equal to
// an earlier one. No effect when n < 1 or the sequence is shorter than n - 1.
void BanRepeatedNgrams(int n, const std::vector<int64_t>& sequence, float* logits, size_t vocab);

// SuppressTokens sets -inf for each id of `ids` in [0, vocab).
void SuppressTokens(const std::vector<int64_t>& ids, float* logits, size_t vocab);

// ApplyLogitsRules applies all three rules in order. `generated` is how many tokens of `sequence`
// were generated (the rest is BOS and the prompt).
void ApplyLogitsRules(const LogitsRules& rules, const std::vector<int64_t>& sequence,
                      size_t generated, float* logits, size_t vocab);

// LogSoftmax turns a row of logits into log-probabilities in place (-inf stays -inf). A row that
// is all -inf stays so.
void LogSoftmax(float* logits, size_t vocab);

}  // namespace retrace::models::decoding

#endif  // RETRACE_CORE_MODELS_DECODING_LOGITS_RULES_H_
