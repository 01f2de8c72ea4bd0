// latency_recorder: exact call latencies and their summary (percentiles by nearest rank).
//
// Every latency is kept (8 bytes a call: a 10-minute run at 1000 calls/s is 5 MB), so the
// percentiles are exact rather than a histogram's approximation. Percentiles use the
// nearest-rank definition: the p-th percentile of n sorted values x[1..n] is x[ceil(p/100 * n)],
// the smallest value that at least p% of the values do not exceed; it is always one of the
// recorded values (p = 0 gives the minimum, p = 100 the maximum).
//
// Thread-safety: a LatencyRecorder is not thread-safe; give each thread its own and Merge them.
//
// Example:
//   LatencyRecorder recorder;  recorder.Add(std::chrono::milliseconds(3));
//   LatencySummary s = recorder.Summarize();  // s.p50_ms == 3
#ifndef RETRACE_CLIENT_BENCH_LATENCY_RECORDER_H_
#define RETRACE_CLIENT_BENCH_LATENCY_RECORDER_H_

#include <chrono>
#include <cstdint>
#include <vector>

namespace retrace::bench {

// LatencySummary: the figures of a set of latencies, in milliseconds; all 0 when count is 0.
struct LatencySummary {
  int64_t count = 0;
  double mean_ms = 0;
  double p50_ms = 0;
  double p95_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// NearestRankPercentile: the p-th percentile (0 <= p <= 100) of `sorted` (ascending), by
// nearest rank as above; 0 for an empty vector.
double NearestRankPercentile(const std::vector<double>& sorted, double p);

class LatencyRecorder {
 public:
  // Add: records one latency (negative ones count as 0).
  void Add(std::chrono::nanoseconds latency);
  // Merge: adds every latency `other` recorded.
  void Merge(const LatencyRecorder& other);
  int64_t count() const { return static_cast<int64_t>(latencies_ms_.size()); }
  // Summarize: count, mean, p50, p95, p99 and max. Sorts a copy; O(n log n).
  LatencySummary Summarize() const;

 private:
  std::vector<double> latencies_ms_;
};

}  // namespace retrace::bench

#endif  // RETRACE_CLIENT_BENCH_LATENCY_RECORDER_H_
