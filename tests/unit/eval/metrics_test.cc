// The metrics against rankings worked out by hand, ties averaged over every order.
#include "core/eval/metrics.h"

#include "gtest/gtest.h"

namespace retrace::eval {
namespace {

constexpr double kEps = 1e-9;

// Distinct scores, best first, relevance as given.
Ranking Strict(std::initializer_list<bool> relevant) {
  Ranking r;
  float score = 1.0f;
  for (bool rel : relevant) {
    r.push_back({score, rel});
    score -= 0.01f;
  }
  return r;
}

TEST(PrecisionAtKTest, CountsTheTopK) {
  Ranking r = Strict({true, false, true, false});
  EXPECT_NEAR(PrecisionAtK(r, 1), 1.0, kEps);
  EXPECT_NEAR(PrecisionAtK(r, 2), 0.5, kEps);
  EXPECT_NEAR(PrecisionAtK(r, 3), 2.0 / 3, kEps);
  EXPECT_NEAR(PrecisionAtK(r, 4), 0.5, kEps);
}

TEST(PrecisionAtKTest, KAboveTheListStillDividesByK) {
  EXPECT_NEAR(PrecisionAtK(Strict({true, false, true, false}), 10), 0.2, kEps);
  EXPECT_NEAR(PrecisionAtK({}, 5), 0.0, kEps);
}

TEST(PrecisionAtKTest, ATieAcrossTheCutOffCountsItsShare) {
  // 0.9 T | 0.5 T, 0.5 F | 0.1 F: the cut at 2 takes one of the two tied entries.
  Ranking r = {{0.9f, true}, {0.5f, true}, {0.5f, false}, {0.1f, false}};
  EXPECT_NEAR(PrecisionAtK(r, 2), (1 + 0.5) / 2, kEps);
  EXPECT_NEAR(PrecisionAtK(r, 3), 2.0 / 3, kEps);
}

TEST(AveragePrecisionTest, TextbookWithoutTies) {
  EXPECT_NEAR(*AveragePrecision(Strict({true, false, true, false}), 2), (1 + 2.0 / 3) / 2, kEps);
  // A third relevant item is in the gallery but not in the ranking: never found.
  EXPECT_NEAR(*AveragePrecision(Strict({true, false, true, false}), 3), (1 + 2.0 / 3) / 3, kEps);
  EXPECT_NEAR(*AveragePrecision(Strict({false, false, true}), 1), 1.0 / 3, kEps);
}

TEST(AveragePrecisionTest, AClassAbsentFromTheGalleryHasNoAp) {
  EXPECT_FALSE(AveragePrecision(Strict({false, false}), 0).has_value());
}

TEST(AveragePrecisionTest, TiesAverageOverTheirOrders) {
  // T F tied: orders TF (AP 1) and FT (AP 1/2).
  EXPECT_NEAR(*AveragePrecision({{0.5f, true}, {0.5f, false}}, 1), 0.75, kEps);
  // T T F tied: the F is last, middle or first: AP 1, (1 + 2/3)/2, (1/2 + 2/3)/2.
  const double expected = (1.0 + (1 + 2.0 / 3) / 2 + (0.5 + 2.0 / 3) / 2) / 3;
  EXPECT_NEAR(*AveragePrecision({{0.5f, true}, {0.5f, true}, {0.5f, false}}, 2), expected, kEps);
  // A tie after a strict entry: F | T F tied -> orders F T F (1/2) and F F T (1/3).
  EXPECT_NEAR(*AveragePrecision({{0.9f, false}, {0.5f, true}, {0.5f, false}}, 1),
              (0.5 + 1.0 / 3) / 2, kEps);
}

TEST(HitAtKTest, FirstRelevantWithinK) {
  Ranking r = Strict({false, true, false});
  EXPECT_EQ(HitAtK(r, 1), 0.0);
  EXPECT_EQ(HitAtK(r, 2), 1.0);
  EXPECT_EQ(HitAtK(r, 100), 1.0);
  EXPECT_EQ(HitAtK(Strict({false, false}), 5), 0.0);
}

TEST(HitAtKTest, TiesGiveTheProbability) {
  Ranking one = {{0.5f, false}, {0.5f, true}, {0.5f, false}};
  EXPECT_NEAR(HitAtK(one, 1), 1.0 / 3, kEps);
  EXPECT_NEAR(HitAtK(one, 2), 2.0 / 3, kEps);
  EXPECT_NEAR(HitAtK(one, 3), 1.0, kEps);
  Ranking two = {{0.5f, true}, {0.5f, true}, {0.5f, false}, {0.5f, false}};
  EXPECT_NEAR(HitAtK(two, 1), 0.5, kEps);      // 1 - (3/4)(2/3)
  EXPECT_NEAR(HitAtK(two, 2), 5.0 / 6, kEps);  // 1 - (2/4)(1/3)
  EXPECT_NEAR(HitAtK(two, 3), 1.0, kEps);
}

TEST(MeanTest, SkipsQueriesWithoutAValue) {
  EXPECT_NEAR(*Mean({0.5, std::nullopt, 1.0}), 0.75, kEps);
  EXPECT_FALSE(Mean({std::nullopt}).has_value());
  EXPECT_FALSE(Mean({}).has_value());
}

}  // namespace
}  // namespace retrace::eval
