#include "client/bench/bench_report.h"

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace retrace::bench {
namespace {

using Json = nlohmann::ordered_json;

Json KindJson(const KindResult& kind, double seconds) {
  const LatencySummary latency = kind.latencies.Summarize();
  Json errors = Json::array();
  for (const auto& [code, error] : kind.errors_by_code) {
    errors.push_back({{"code", absl::StatusCodeToString(code)},
                      {"count", error.count},
                      {"first_message", error.first_message}});
  }
  return {{"calls", kind.calls},
          {"qps", Qps(kind, seconds)},
          {"errors", kind.errors},
          {"dropped", kind.dropped},
          {"skipped", kind.skipped},
          {"latency_ms",
           {{"mean", latency.mean_ms},
            {"p50", latency.p50_ms},
            {"p95", latency.p95_ms},
            {"p99", latency.p99_ms},
            {"max", latency.max_ms}}},
          {"errors_by_code", errors}};
}

}  // namespace

double Qps(const KindResult& kind, double seconds) {
  return seconds > 0 ? kind.calls / seconds : 0;
}

double ErrorRate(const KindResult& kind) {
  const int64_t attempted = kind.calls + kind.dropped;
  return attempted > 0 ? static_cast<double>(kind.errors + kind.dropped) / attempted : 0;
}

std::string ReportToJson(const BenchReport& report) {
  const BenchSettings& settings = report.settings;
  const LoadResult& result = report.result;
  Json load;
  if (settings.load.concurrency > 0) {
    load = {{"model", "closed"}, {"concurrency", settings.load.concurrency}};
  } else {
    load = {{"model", "open"},
            {"rate", settings.load.rate},
            {"max_outstanding", settings.load.max_outstanding}};
  }
  Json kinds = Json::object();
  for (RpcKind kind : settings.kinds) {
    kinds[std::string(RpcKindName(kind))] =
        KindJson(result.kinds[static_cast<int>(kind)], result.seconds);
  }
  Json timeline = Json::array();
  for (const SecondResult& second : result.timeline) {
    timeline.push_back({{"calls", second.calls},
                        {"errors", second.errors},
                        {"dropped", second.dropped},
                        {"mean_ms", second.calls > 0 ? second.latency_sum_ms / second.calls : 0},
                        {"max_ms", second.max_latency_ms}});
  }
  const Json json = {
      {"load", load},
      {"collection", settings.collection},
      {"mode", settings.mode},
      {"top_k", settings.top_k},
      {"mix", settings.mix},
      {"warmup_s", std::chrono::duration<double>(settings.load.warmup).count()},
      {"duration_s", result.seconds},
      {"seed", settings.load.seed},
      {"run_id", settings.run_id},
      {"embedding_source", settings.embedding_source},
      {"kinds", kinds},
      {"total", KindJson(result.total, result.seconds)},
      {"error_rate", ErrorRate(result.total)},
      {"warmup_calls", result.warmup_calls},
      {"max_start_lag_ms", result.max_start_lag_ms},
      {"cleanup_deleted", report.cleanup_deleted},
      {"timeline", timeline},
  };
  return json.dump(1);
}

}  // namespace retrace::bench
