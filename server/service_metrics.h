// service_metrics.h — the server's Prometheus metrics: what is registered, and the hooks that
// feed it.
//
// Families (all prefixed retrace_):
//   rpc_calls_total{rpc,code}            calls (and Index-stream requests) by gRPC code
//   rpc_duration_seconds{rpc}            call latency, admission to finish
//   stage_duration_seconds{stage}        decode, caption, embed_image, embed_text, search,
//                                        rerank, store (engine/stage_observer.h)
//   stage_batch_size{stage}              items per model call, search or store write
//   worker_queue_depth                   calls waiting for a worker
//   index_streams_open                   Index streams now open
//   ready                                1 once models are warm and collections open
//   collection_items{collection}         items per collection
//   shard_calls_total{group,replica,code}   a frontend's calls to shard servers (each attempt)
//   shard_call_duration_seconds{group,replica}  their latency
//
// Thread-safety: RecordCall and Observe are called from every worker and gRPC thread; both are
// lock-free on the common path (children for code OK are looked up once, at construction).
//
//   ServiceMetrics metrics(&registry);  engine_options.stage_observer = &metrics;
//   metrics.RecordCall("Search", grpc::StatusCode::OK, 0.004);
#ifndef RETRACE_SERVER_SERVICE_METRICS_H_
#define RETRACE_SERVER_SERVICE_METRICS_H_

#include <grpcpp/support/status.h>

#include <array>
#include <atomic>
#include <string_view>

#include "core/common/thread_pool.h"
#include "core/engine/stage_observer.h"
#include "server/metrics/metrics_registry.h"

namespace retrace::engine {
class Engine;
}

namespace retrace::server {

class CallGate;

// kRpcNames: the RPCs of retrace.v1.Retrace, as RecordCall receives them.
inline constexpr std::array<std::string_view, 12> kRpcNames = {
    "Caption",          "Index",           "Search",
    "Delete",           "Get",             "List",            "CreateCollection",
    "ListCollections",  "DescribeCollection", "DropCollection",
    "GetClusterStatus", "SearchBatch"};

class ServiceMetrics final : public engine::StageObserver {
 public:
  // ServiceMetrics registers its families in `registry`, which it does not own.
  explicit ServiceMetrics(metrics::Registry* registry);

  // WatchServer adds the gauges read at scrape time. The pointers are not owned and must
  // outlive every scrape (the metrics HTTP server is stopped first). `engine` holds null until
  // the server is ready.
  void WatchServer(const CallGate* gate,
                   const std::atomic<engine::Engine*>* engine);

  // RecordCall: one finished call of `rpc` (one of kRpcNames) with `code`, taking `seconds`.
  void RecordCall(std::string_view rpc, grpc::StatusCode code, double seconds);

  void Observe(engine::Stage stage, double seconds, int batch_size) override;

  // RecordShardCall: one attempt of a frontend's call to shard server `replica` of `group`.
  void RecordShardCall(int group, const std::string& replica, grpc::StatusCode code,
                       double seconds);

 private:
  metrics::Registry* const registry_;
  metrics::CounterFamily* calls_;
  std::array<metrics::Counter*, kRpcNames.size()> calls_ok_{};
  std::array<metrics::Histogram*, kRpcNames.size()> call_seconds_{};
  std::array<metrics::Histogram*, engine::kStageCount> stage_seconds_{};
  std::array<metrics::Histogram*, engine::kStageCount> stage_batch_{};
  metrics::CounterFamily* shard_calls_;
  metrics::HistogramFamily* shard_seconds_;
};

}  // namespace retrace::server

#endif  // RETRACE_SERVER_SERVICE_METRICS_H_
