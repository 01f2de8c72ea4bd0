// Tests of client/bench/rpc_mix.h: the --mix syntax, its errors, and the draw's proportions.
#include "client/bench/rpc_mix.h"

#include <array>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::bench {
namespace {

using ::testing::HasSubstr;

TEST(RpcMixTest, ParsesWeightsAndLeavesOtherKindsAtZero) {
  absl::StatusOr<RpcMix> mix = RpcMix::Parse("search-image=6, search-text=2,index=0.5,delete=0");
  ASSERT_TRUE(mix.ok()) << mix.status();
  EXPECT_EQ(mix->weight(RpcKind::kSearchImage), 6);
  EXPECT_EQ(mix->weight(RpcKind::kSearchText), 2);
  EXPECT_EQ(mix->weight(RpcKind::kSearchEmbedding), 0);
  EXPECT_EQ(mix->weight(RpcKind::kIndex), 0.5);
  EXPECT_FALSE(mix->Uses(RpcKind::kDelete));
  EXPECT_EQ(mix->ToString(), "search-image=6,search-text=2,index=0.5");
  EXPECT_EQ(RpcMix::Parse(mix->ToString())->ToString(), mix->ToString());
}

TEST(RpcMixTest, ErrorsNameWhatIsWrong) {
  struct Case {
    const char* mix;
    const char* error;
  };
  const Case cases[] = {
      {"search-image=1,serch-text=2", "unknown kind 'serch-text'"},
      {"index=-1", "the weight of 'index' must be a number >= 0, got '-1'"},
      {"index=lots", "the weight of 'index' must be a number >= 0, got 'lots'"},
      {"index=nan", "the weight of 'index'"},
      {"index", "expected KIND=WEIGHT, got 'index'"},
      {"index=1,index=2", "'index' is given twice"},
      {"index=0,delete=0", "every weight is 0"},
      {"", "expected KIND=WEIGHT"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<RpcMix> mix = RpcMix::Parse(c.mix);
    ASSERT_FALSE(mix.ok()) << c.mix;
    EXPECT_EQ(mix.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(mix.status().message(), HasSubstr(c.error)) << c.mix;
    EXPECT_THAT(mix.status().message(), HasSubstr("--mix")) << c.mix;
  }
}

TEST(RpcMixTest, PicksInProportionAndNeverAZeroWeight) {
  RpcMix mix = *RpcMix::Parse("search-text=3,index=1,delete=0");
  std::mt19937_64 rng(7);
  std::array<int, kRpcKindCount> counts{};
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) ++counts[static_cast<int>(mix.Pick(rng))];
  EXPECT_EQ(counts[static_cast<int>(RpcKind::kDelete)], 0);
  EXPECT_EQ(counts[static_cast<int>(RpcKind::kSearchImage)], 0);
  EXPECT_EQ(
      counts[static_cast<int>(RpcKind::kSearchText)] + counts[static_cast<int>(RpcKind::kIndex)],
      kDraws);
  // 3 in 4; the standard deviation of the count is about 61, so 600 is ~10 sigma (and the
  // seed is fixed: this is deterministic).
  EXPECT_NEAR(counts[static_cast<int>(RpcKind::kSearchText)], 15000, 600);
}

TEST(RpcMixTest, KindNames) {
  EXPECT_EQ(RpcKindName(RpcKind::kSearchImage), "search-image");
  EXPECT_EQ(RpcKindName(RpcKind::kSearchText), "search-text");
  EXPECT_EQ(RpcKindName(RpcKind::kSearchEmbedding), "search-embedding");
  EXPECT_EQ(RpcKindName(RpcKind::kIndex), "index");
  EXPECT_EQ(RpcKindName(RpcKind::kDelete), "delete");
}

}  // namespace
}  // namespace retrace::bench
