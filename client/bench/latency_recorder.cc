#include "client/bench/latency_recorder.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace retrace::bench {

double NearestRankPercentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  // ceil(p/100 * n) is the 1-based rank; rank 0 (p = 0) means the first value. p * n is
  // divided last so that whole percentages of whole counts stay exact (0.07 * 100 is not 7).
  const double rank = std::ceil(std::clamp(p, 0.0, 100.0) * n / 100.0);
  const size_t index = rank <= 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

void LatencyRecorder::Add(std::chrono::nanoseconds latency) {
  latencies_ms_.push_back(std::max<double>(0, latency.count() / 1e6));
}

void LatencyRecorder::Merge(const LatencyRecorder& other) {
  latencies_ms_.insert(latencies_ms_.end(), other.latencies_ms_.begin(), other.latencies_ms_.end());
}

LatencySummary LatencyRecorder::Summarize() const {
  LatencySummary summary;
  if (latencies_ms_.empty()) return summary;
  std::vector<double> sorted = latencies_ms_;
  std::sort(sorted.begin(), sorted.end());
  summary.count = static_cast<int64_t>(sorted.size());
  summary.mean_ms = std::accumulate(sorted.begin(), sorted.end(), 0.0) / sorted.size();
  summary.p50_ms = NearestRankPercentile(sorted, 50);
  summary.p95_ms = NearestRankPercentile(sorted, 95);
  summary.p99_ms = NearestRankPercentile(sorted, 99);
  summary.max_ms = sorted.back();
  return summary;
}

}  // namespace retrace::bench
