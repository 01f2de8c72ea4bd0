// Tests of client/bench/latency_recorder.h: nearest-rank percentiles on known data.
#include "client/bench/latency_recorder.h"

#include <vector>

#include "gtest/gtest.h"

namespace retrace::bench {
namespace {

TEST(NearestRankPercentileTest, OneToHundred) {
  std::vector<double> values;
  for (int i = 1; i <= 100; ++i) values.push_back(i);
  EXPECT_EQ(NearestRankPercentile(values, 0), 1);
  EXPECT_EQ(NearestRankPercentile(values, 1), 1);
  EXPECT_EQ(NearestRankPercentile(values, 7), 7);  // not 8: 0.07 * 100 is 7.000000000000001
  EXPECT_EQ(NearestRankPercentile(values, 50), 50);
  EXPECT_EQ(NearestRankPercentile(values, 95), 95);
  EXPECT_EQ(NearestRankPercentile(values, 99), 99);
  EXPECT_EQ(NearestRankPercentile(values, 99.5), 100);
  EXPECT_EQ(NearestRankPercentile(values, 100), 100);
}

TEST(NearestRankPercentileTest, FewValuesRoundTheRankUp) {
  // Wikipedia's example of the nearest-rank method: 15, 20, 35, 40, 50.
  const std::vector<double> values = {15, 20, 35, 40, 50};
  EXPECT_EQ(NearestRankPercentile(values, 5), 15);
  EXPECT_EQ(NearestRankPercentile(values, 30), 20);
  EXPECT_EQ(NearestRankPercentile(values, 40), 20);
  EXPECT_EQ(NearestRankPercentile(values, 50), 35);
  EXPECT_EQ(NearestRankPercentile(values, 100), 50);
  EXPECT_EQ(NearestRankPercentile({4}, 99), 4);
  EXPECT_EQ(NearestRankPercentile({}, 50), 0);
}

TEST(LatencyRecorderTest, SummarizesAndMerges) {
  LatencyRecorder a, b;
  for (int i = 1; i <= 10; ++i) a.Add(std::chrono::milliseconds(i));  // 1..10 ms
  for (int i = 11; i <= 20; ++i) b.Add(std::chrono::microseconds(i * 1000));
  a.Merge(b);
  EXPECT_EQ(a.count(), 20);
  const LatencySummary s = a.Summarize();
  EXPECT_EQ(s.count, 20);
  EXPECT_DOUBLE_EQ(s.mean_ms, 10.5);
  EXPECT_DOUBLE_EQ(s.p50_ms, 10);
  EXPECT_DOUBLE_EQ(s.p95_ms, 19);
  EXPECT_DOUBLE_EQ(s.p99_ms, 20);
  EXPECT_DOUBLE_EQ(s.max_ms, 20);
  EXPECT_EQ(LatencyRecorder().Summarize().count, 0);
  EXPECT_EQ(LatencyRecorder().Summarize().p99_ms, 0);
}

}  // namespace
}  // namespace retrace::bench
