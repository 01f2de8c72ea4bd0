// The logits rules against values worked out by hand (HF transformers' processors' semantics).
#include "core/models/decoding/logits_rules.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace retrace::models::decoding {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(LogitsRulesTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOnce) {
  // Sequence: BOS=0, then 2, 3, 2 (2 repeats but is penalised once). 0 is BOS: untouched.
  std::vector<float> logits = {4.0f, 1.0f, 3.0f, -1.5f, 2.0f};
  ApplyRepetitionPenalty(2.0f, {0, 2, 3, 2}, logits.data(), logits.size());
  EXPECT_FLOAT_EQ(logits[0], 4.0f);   // BOS
  EXPECT_FLOAT_EQ(logits[1], 1.0f);   // never seen
  EXPECT_FLOAT_EQ(logits[2], 1.5f);   // 3 / 2
  EXPECT_FLOAT_EQ(logits[3], -3.0f);  // -1.5 * 2
  EXPECT_FLOAT_EQ(logits[4], 2.0f);
}

TEST(LogitsRulesTest, RepetitionPenaltyOfOneAndOutOfVocabularyIdsChangeNothing) {
  std::vector<float> logits = {1.0f, 2.0f};
  ApplyRepetitionPenalty(1.0f, {0, 1}, logits.data(), logits.size());
  ApplyRepetitionPenalty(3.0f, {0, 7, -1}, logits.data(), logits.size());
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 2.0f}));
}

TEST(LogitsRulesTest, NoRepeatBigramsBanTheTokensThatFollowedTheLastToken) {
  // "5 1 2 1 3 1": bigrams starting with 1 were (1,2) and (1,3); the last token is 1.
  std::vector<float> logits(6, 0.0f);
  BanRepeatedNgrams(2, {5, 1, 2, 1, 3, 1}, logits.data(), logits.size());
  EXPECT_EQ(logits, (std::vector<float>{0, 0, -kInf, -kInf, 0, 0}));
}

TEST(LogitsRulesTest, NoRepeatTrigramsNeedTheWholeContextToMatch) {
  // Trigrams: (1,2,3), (2,3,1), (3,1,2); the last two tokens (1,2) began (1,2,3) -> ban 3.
  // (2,3) is not the context, so 1 stays allowed.
  std::vector<float> logits(5, 1.0f);
  BanRepeatedNgrams(3, {1, 2, 3, 1, 2}, logits.data(), logits.size());
  EXPECT_EQ(logits, (std::vector<float>{1, 1, 1, -kInf, 1}));
}

TEST(LogitsRulesTest, NoRepeatUnigramsBanEverySeenTokenAndShortSequencesBanNothing) {
  std::vector<float> logits(4, 1.0f);
  BanRepeatedNgrams(1, {0, 2}, logits.data(), logits.size());
  EXPECT_EQ(logits, (std::vector<float>{-kInf, 1, -kInf, 1}));
  std::vector<float> untouched(4, 1.0f);
  BanRepeatedNgrams(3, {2, 2}, untouched.data(), untouched.size());  // no trigram yet
  BanRepeatedNgrams(0, {2, 2, 2}, untouched.data(), untouched.size());  // off
  EXPECT_EQ(untouched, (std::vector<float>(4, 1.0f)));
}

TEST(LogitsRulesTest, MinNewTokensSuppressesEveryEosUntilReached) {
  LogitsRules rules;
  rules.min_new_tokens = 2;
  rules.eos_token_ids = {1, 3};
  std::vector<float> logits = {0, 5, 0, 4};
  ApplyLogitsRules(rules, {0, 2}, /*generated=*/1, logits.data(), logits.size());
  EXPECT_EQ(logits, (std::vector<float>{0, -kInf, 0, -kInf}));
  logits = {0, 5, 0, 4};
  ApplyLogitsRules(rules, {0, 2, 2}, /*generated=*/2, logits.data(), logits.size());
  EXPECT_EQ(logits, (std::vector<float>{0, 5, 0, 4}));
}

TEST(LogitsRulesTest, RulesApplyInOrderPenaltyThenNgramsThenMinimum) {
  LogitsRules rules;
  rules.repetition_penalty = 4.0f;
  rules.no_repeat_ngram_size = 2;
  rules.min_new_tokens = 5;
  rules.eos_token_ids = {4};
  // Sequence BOS=0, 1, 2, 1: bigram (1,2) bans 2; 1 is penalised; EOS 4 suppressed.
  std::vector<float> logits = {1, 8, 8, 3, 9};
  ApplyLogitsRules(rules, {0, 1, 2, 1}, /*generated=*/3, logits.data(), logits.size());
  EXPECT_EQ(logits, (std::vector<float>{1, 2, -kInf, 3, -kInf}));
}

TEST(LogitsRulesTest, LogSoftmaxMatchesTheDefinitionAndKeepsBannedTokensBanned) {
  std::vector<float> logits = {1.0f, 2.0f, -kInf, 3.0f};
  LogSoftmax(logits.data(), logits.size());
  const double norm = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(logits[0], 1.0 - norm, 1e-6);
  EXPECT_NEAR(logits[1], 2.0 - norm, 1e-6);
  EXPECT_EQ(logits[2], -kInf);
  EXPECT_NEAR(logits[3], 3.0 - norm, 1e-6);
}

}  // namespace
}  // namespace retrace::models::decoding
