// The re-ranking formula against values computed by hand (CS-SLIP paper, eqs. 1-3).
#include "core/search/rerank.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::search {
namespace {

using ::testing::ElementsAre;

std::vector<int> Order(const std::vector<Reranked>& reranked) {
  std::vector<int> order;
  for (const Reranked& r : reranked) order.push_back(r.candidate);
  return order;
}

const Reranked& Find(const std::vector<Reranked>& reranked, int candidate) {
  for (const Reranked& r : reranked) {
    if (r.candidate == candidate) return r;
  }
  ADD_FAILURE() << "candidate " << candidate << " missing";
  return reranked.front();
}

TEST(CompetitionRanksTest, TiesShareTheBestRank) {
  EXPECT_THAT(CompetitionRanks({0.9f, 0.8f, 0.8f, 0.1f}), ElementsAre(0, 1, 1, 3));
  EXPECT_THAT(CompetitionRanks({0.1f, 0.8f, 0.9f, 0.8f}), ElementsAre(3, 1, 0, 1));
  EXPECT_THAT(CompetitionRanks({0.5f, 0.5f, 0.5f}), ElementsAre(0, 0, 0));
  EXPECT_THAT(CompetitionRanks({}), ElementsAre());
}

TEST(CompetitionRanksTest, NanRanksLast) {
  EXPECT_THAT(CompetitionRanks({NAN, 0.2f, 0.7f}), ElementsAre(2, 1, 0));
}

TEST(RerankTest, MatchesTheFormulaByHand) {
  // P = (2, 0, 1); P' = (1, 1, 0) with a tie; beta 1, w1 0.1, w2 0.3.
  RerankParams params{1.0f, 0.1f, 0.3f};
  std::vector<Reranked> out =
      Rerank({0.9f, 0.8f, 0.7f}, {0.1f, 0.5f, 0.3f}, {0.2f, 0.2f, 0.9f}, params);
  // S'0 = 0.9 + 0.1e^-2 + 0.3e^-1 = 1.023898; S'1 = 0.8 + 0.1 + 0.3e^-1 = 1.010364;
  // S'2 = 0.7 + 0.1e^-1 + 0.3 = 1.036788: the least similar candidate wins.
  EXPECT_THAT(Order(out), ElementsAre(2, 0, 1));
  EXPECT_NEAR(Find(out, 0).score, 1.023898f, 1e-5);
  EXPECT_NEAR(Find(out, 1).score, 1.010364f, 1e-5);
  EXPECT_NEAR(Find(out, 2).score, 1.036788f, 1e-5);
  EXPECT_EQ(Find(out, 0).caption_rank, 2);
  EXPECT_EQ(Find(out, 0).image_rank, 1);
  EXPECT_EQ(Find(out, 1).caption_rank, 0);
  EXPECT_EQ(Find(out, 1).image_rank, 1);
  EXPECT_EQ(Find(out, 2).caption_rank, 1);
  EXPECT_EQ(Find(out, 2).image_rank, 0);
  EXPECT_FLOAT_EQ(Find(out, 2).base_score, 0.7f);
}

TEST(RerankTest, OneCandidateGetsBothFullBonuses) {
  std::vector<Reranked> out = Rerank({0.4f}, {-0.3f}, {0.1f}, RerankParams{2.0f, 0.25f, 0.5f});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].caption_rank, 0);
  EXPECT_EQ(out[0].image_rank, 0);
  EXPECT_NEAR(out[0].score, 0.4f + 0.25f + 0.5f, 1e-6);
}

TEST(RerankTest, BetaZeroAddsTheSameToEveryCandidate) {
  std::vector<Reranked> out =
      Rerank({0.5f, 0.9f, 0.7f}, {0.9f, 0.1f, 0.5f}, {0.9f, 0.1f, 0.5f}, RerankParams{0, 0.2f, 0.3f});
  EXPECT_THAT(Order(out), ElementsAre(1, 2, 0));  // the base order
  for (const Reranked& r : out) EXPECT_NEAR(r.score, r.base_score + 0.5f, 1e-6);
}

TEST(RerankTest, ZeroWeightsKeepTheBaseScoresButReportRanks) {
  std::vector<Reranked> out =
      Rerank({0.5f, 0.9f}, {0.9f, 0.1f}, {0.1f, 0.9f}, RerankParams{1.0f, 0, 0});
  EXPECT_THAT(Order(out), ElementsAre(1, 0));
  EXPECT_FLOAT_EQ(Find(out, 0).score, 0.5f);
  EXPECT_EQ(Find(out, 0).caption_rank, 0);
  EXPECT_EQ(Find(out, 0).image_rank, 1);
}

TEST(RerankTest, ATieInTheFinalScoreFallsBackToTheBaseScore) {
  // Exact binary fractions: candidate 0 is 0.5 + 0.25 (P = 0), candidate 1 is 0.75 + 0.25 e^-200
  // (P = 1), which is 0.75 in float: equal S', so the higher S goes first.
  std::vector<Reranked> out =
      Rerank({0.5f, 0.75f}, {0.9f, 0.1f}, {}, RerankParams{200.0f, 0.25f, 0});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].score, 0.75f);
  EXPECT_EQ(out[1].score, 0.75f);
  EXPECT_EQ(out[0].candidate, 1);
}

TEST(RerankTest, AnUnscoredDirectionAddsNothing) {
  std::vector<Reranked> out = Rerank({0.3f, 0.2f}, {0.1f, 0.9f}, {}, RerankParams{1.0f, 0.2f, 5.0f});
  EXPECT_EQ(Find(out, 0).image_rank, -1);
  EXPECT_NEAR(Find(out, 0).score, 0.3f + 0.2f * std::exp(-1.0f), 1e-6);
  EXPECT_NEAR(Find(out, 1).score, 0.2f + 0.2f, 1e-6);
  EXPECT_THAT(Order(out), ElementsAre(1, 0));
}

TEST(RerankTest, BaseOrderIsRerankingSwitchedOff) {
  std::vector<Reranked> out = BaseOrder({0.2f, 0.8f, 0.5f});
  EXPECT_THAT(Order(out), ElementsAre(1, 2, 0));
  for (const Reranked& r : out) {
    EXPECT_EQ(r.caption_rank, -1);
    EXPECT_EQ(r.image_rank, -1);
    EXPECT_EQ(r.score, r.base_score);
  }
}

}  // namespace
}  // namespace retrace::search
