#include "core/search/rank_fusion.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::search {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Ids(const std::vector<FusedHit>& hits) {
  std::vector<std::string> ids;
  for (const FusedHit& h : hits) ids.push_back(h.id);
  return ids;
}

TEST(ReciprocalRankFusionTest, SumsOneOverKPlusRank) {
  std::vector<FusedHit> fused = ReciprocalRankFusion({{"a", "b", "c"}, {"b", "d"}}, 60);
  // b: 1/62 + 1/61; a: 1/61; d: 1/62; c: 1/63.
  EXPECT_THAT(Ids(fused), ElementsAre("b", "a", "d", "c"));
  EXPECT_NEAR(fused[0].score, 1.0f / 62 + 1.0f / 61, 1e-7);
  EXPECT_NEAR(fused[1].score, 1.0f / 61, 1e-7);
  EXPECT_THAT(fused[0].ranks, ElementsAre(1, 0));
  EXPECT_THAT(fused[1].ranks, ElementsAre(0, -1));
  EXPECT_THAT(fused[2].ranks, ElementsAre(-1, 1));
}

TEST(ReciprocalRankFusionTest, SmallKLetsTheTopDominate) {
  // x is first in one ranking only; y is fourth in both.
  std::vector<std::vector<std::string>> rankings = {{"x", "p", "q", "y"}, {"z", "r", "s", "y"}};
  EXPECT_EQ(ReciprocalRankFusion(rankings, 60)[0].id, "y");  // 2/64 > 1/61
  EXPECT_EQ(ReciprocalRankFusion(rankings, 1)[0].id, "x");   // 1/2 > 2/5
}

TEST(ReciprocalRankFusionTest, TiesKeepFirstAppearance) {
  EXPECT_THAT(Ids(ReciprocalRankFusion({{"x"}, {"y"}}, 60)), ElementsAre("x", "y"));
  EXPECT_THAT(Ids(ReciprocalRankFusion({{"y"}, {"x"}}, 60)), ElementsAre("y", "x"));
}

TEST(ReciprocalRankFusionTest, ARepeatCountsOnceAtItsBestRank) {
  std::vector<FusedHit> fused = ReciprocalRankFusion({{"a", "a", "b"}}, 10);
  ASSERT_EQ(fused.size(), 2u);
  EXPECT_NEAR(fused[0].score, 1.0f / 11, 1e-7);
  EXPECT_EQ(fused[0].ranks[0], 0);
}

TEST(ReciprocalRankFusionTest, EmptyRankings) {
  EXPECT_TRUE(ReciprocalRankFusion({}, 60).empty());
  EXPECT_TRUE(ReciprocalRankFusion({{}, {}}, 60).empty());
}

}  // namespace
}  // namespace retrace::search
