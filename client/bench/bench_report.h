// bench_report: a `retrace bench` run's settings and figures, and their JSON form.
//
// The JSON (one object) has the settings ("load", "collection", "mode", "top_k", "mix",
// "warmup_s", "duration_s", "run_id", "embedding_source"), one entry per kind of the mix in
// "kinds" and the sum in "total" — each with calls, qps, errors, dropped, skipped,
// latency_ms {mean, p50, p95, p99, max} and errors_by_code [{code, count, first_message}] —
// then "error_rate", "warmup_calls", "max_start_lag_ms", "cleanup_deleted" and "timeline",
// one entry per second of the measured window: {calls, errors, dropped, mean_ms, max_ms}.
// Plain values and functions; safe to use from any thread.
//
// Example:
//   BenchReport report{settings, RunLoad(options, mix, calls)};
//   std::cout << ReportToJson(report) << "\n";
#ifndef RETRACE_CLIENT_BENCH_BENCH_REPORT_H_
#define RETRACE_CLIENT_BENCH_BENCH_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "client/bench/load_generator.h"
#include "client/bench/rpc_mix.h"

namespace retrace::bench {

// BenchSettings: what the run was asked to do, echoed in the report.
struct BenchSettings {
  LoadOptions load;
  std::string collection;
  std::string mode;  // "caption-match", "provenance" or "hybrid"
  int top_k = 10;
  std::string mix;             // RpcMix::ToString()
  std::vector<RpcKind> kinds;  // the kinds the mix uses, reported in this order
  std::string run_id;
  std::string embedding_source;  // "stored", "random" or "" (no embedding queries)
};

// BenchReport: the settings and what was measured. cleanup_deleted is -1 when there was no
// cleanup (--keep-indexed, or it failed).
struct BenchReport {
  BenchSettings settings;
  LoadResult result;
  int64_t cleanup_deleted = -1;
};

// Qps: calls per second of the measured window.
double Qps(const KindResult& kind, double seconds);

// ErrorRate: (failed + dropped) / (made + dropped) of `kind`, 0 when there were none: a call
// the open loop could not make on time failed as far as its caller is concerned. Skipped
// calls (nothing to delete) do not count.
double ErrorRate(const KindResult& kind);

// ReportToJson: the report as one JSON object, indented.
std::string ReportToJson(const BenchReport& report);

}  // namespace retrace::bench

#endif  // RETRACE_CLIENT_BENCH_BENCH_REPORT_H_
