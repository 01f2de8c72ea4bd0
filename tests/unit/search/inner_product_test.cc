// search::InnerProduct (8 double lanes) against the one-chain double sum the engine used
// before: within 1e-6 always, and the same float for almost every pair (the lanes only
// reorder double additions, inner_product.h).
#include "core/search/inner_product.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace retrace::search {
namespace {

float OneChain(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(sum);
}

std::vector<float> RandomUnit(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> v(n);
  double norm = 0;
  for (float& x : v) {
    x = normal(rng);
    norm += static_cast<double>(x) * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

TEST(InnerProductTest, MatchesTheOneChainSumWithin1e6) {
  std::mt19937 rng(5);
  int pairs = 0, same = 0;
  // Lengths around the 8-lane blocks (tails of 0..7) and the engine's sizes.
  for (size_t n : {0, 1, 7, 8, 9, 15, 16, 17, 48, 512, 560, 768}) {
    for (int trial = 0; trial < 200; ++trial) {
      const std::vector<float> a = RandomUnit(rng, n), b = RandomUnit(rng, n);
      const float want = OneChain(a, b), got = InnerProduct(a, b);
      EXPECT_NEAR(got, want, 1e-6) << n;
      ++pairs;
      same += got == want ? 1 : 0;
    }
  }
  EXPECT_GE(same, pairs * 99 / 100) << same << " of " << pairs << " bit for bit";
}

TEST(InnerProductTest, TakesTheShorterOfTwoVectors) {
  EXPECT_EQ(InnerProduct({1.f, 2.f, 3.f}, {4.f, 5.f}), 14.f);
  EXPECT_EQ(InnerProduct({}, {4.f, 5.f}), 0.f);
}

}  // namespace
}  // namespace retrace::search
