#include "server/service_metrics.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/engine/engine.h"
#include "server/logging.h"
#include "server/call_gate.h"

namespace retrace::server {
namespace {

// Registration can only fail for a bad or repeated name, which is a bug in this file.
template <typename T>
T* Registered(absl::StatusOr<T*> family) {
  if (!family.ok()) {
    std::fprintf(stderr, "retrace: metrics registration: %s\n", family.status().ToString().c_str());
    std::abort();
  }
  return *family;
}

void Check(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "retrace: metrics registration: %s\n", status.ToString().c_str());
    std::abort();
  }
}

int RpcIndex(std::string_view rpc) {
  for (size_t i = 0; i < kRpcNames.size(); ++i) {
    if (kRpcNames[i] == rpc) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

ServiceMetrics::ServiceMetrics(metrics::Registry* registry) : registry_(registry) {
  calls_ = Registered(registry->AddCounter(
      "retrace_rpc_calls_total",
      "Calls finished (and Index-stream requests), by RPC and gRPC code.", {"rpc", "code"}));
  auto* seconds = Registered(registry->AddHistogram(
      "retrace_rpc_duration_seconds", "Call latency from admission to finish, by RPC.", {"rpc"},
      metrics::LatencyBucketsSeconds()));
  for (size_t i = 0; i < kRpcNames.size(); ++i) {
    const absl::string_view rpc(kRpcNames[i].data(), kRpcNames[i].size());
    calls_ok_[i] = &calls_->WithLabels({rpc, "OK"});
    call_seconds_[i] = &seconds->WithLabels({rpc});
  }
  auto* stage_seconds = Registered(registry->AddHistogram(
      "retrace_stage_duration_seconds",
      "Time of one engine stage: decode (one image), caption / embed_image / embed_text (one "
      "model batch), search (one index search), rerank (N candidates), store (one write).",
      {"stage"}, metrics::LatencyBucketsSeconds()));
  auto* stage_batch = Registered(registry->AddHistogram(
      "retrace_stage_batch_size", "Items per engine stage: model batch sizes, candidates, writes.",
      {"stage"}, metrics::BatchSizeBuckets()));
  for (int s = 0; s < engine::kStageCount; ++s) {
    const char* name = engine::StageName(static_cast<engine::Stage>(s));
    stage_seconds_[s] = &stage_seconds->WithLabels({name});
    stage_batch_[s] = &stage_batch->WithLabels({name});
  }
  shard_calls_ = Registered(registry->AddCounter(
      "retrace_shard_calls_total",
      "A frontend's calls to shard servers (each attempt of a failover counts), by shard group, "
      "replica address and gRPC code.",
      {"group", "replica", "code"}));
  shard_seconds_ = Registered(registry->AddHistogram(
      "retrace_shard_call_duration_seconds",
      "Latency of a frontend's calls to shard servers, by shard group and replica address.",
      {"group", "replica"}, metrics::LatencyBucketsSeconds()));
}

void ServiceMetrics::WatchServer(const CallGate* gate,
                                 const std::atomic<engine::Engine*>* engine) {
  Check(registry_->AddCallbackGauge(
      "retrace_worker_queue_depth",
      "Calls waiting for a worker thread, per lane (interactive: searches and reads; bulk: Index "
      "and Delete).",
      {"lane"}, [gate] {
        std::vector<metrics::GaugeSample> samples;
        for (batching::Lane lane : {batching::Lane::kInteractive, batching::Lane::kBulk}) {
          samples.push_back({{batching::LaneName(lane)}, static_cast<double>(gate->Pending(lane))});
        }
        return samples;
      }));
  Check(registry_->AddCallbackGauge("retrace_index_streams_open", "Index streams now open.",
                                    [gate] { return double{1} * gate->IndexStreamsOpen(); }));
  Check(registry_->AddCallbackGauge(
      "retrace_ready",
      "1 once the models are warm, the collections open and caught up with the store (health "
      "SERVING).",
      [engine] {
        engine::Engine* e = engine->load();
        return e != nullptr && e->Ready() ? 1.0 : 0.0;
      }));
  Check(registry_->AddCallbackGauge(
      "retrace_store_reachable",
      "1 while the last read of the store succeeded; 0: searches serve from memory and say they "
      "may be stale, writes answer UNAVAILABLE.",
      [engine] {
        engine::Engine* e = engine->load();
        return e != nullptr && e->StoreReachable() ? 1.0 : 0.0;
      }));
  // How each collection follows the store here (core/engine/follower.h).
  auto replication = [engine](double (*value)(const engine::CollectionReplication&)) {
    return [engine, value] {
      std::vector<metrics::GaugeSample> samples;
      engine::Engine* e = engine->load();
      if (e == nullptr) return samples;
      for (const engine::CollectionReplication& r : e->Replication()) {
        samples.push_back({{r.collection}, value(r)});
      }
      return samples;
    };
  };
  Check(registry_->AddCallbackGauge(
      "retrace_collection_applied_position",
      "The store position up to which this replica's indexes hold every change.", {"collection"},
      replication([](const engine::CollectionReplication& r) {
        return static_cast<double>(r.applied_position);
      })));
  Check(registry_->AddCallbackGauge(
      "retrace_collection_lag_positions",
      "The store's latest position minus the collection's applied position here.", {"collection"},
      replication([](const engine::CollectionReplication& r) {
        return static_cast<double>(r.lag);
      })));
  Check(registry_->AddCallbackGauge(
      "retrace_collection_changes_applied",
      "Changes (puts and deletions) this replica has applied since it started; its rate is the "
      "apply rate.",
      {"collection"}, replication([](const engine::CollectionReplication& r) {
        return static_cast<double>(r.changes_applied);
      })));
  Check(registry_->AddCallbackGauge(
      "retrace_collection_degraded",
      "1 while a change cannot be applied (it stays pending and is retried).", {"collection"},
      replication([](const engine::CollectionReplication& r) { return r.degraded ? 1.0 : 0.0; })));
  Check(registry_->AddCallbackGauge(
      "retrace_collection_items", "Items stored per collection.", {"collection"}, [engine] {
        std::vector<metrics::GaugeSample> samples;
        engine::Engine* e = engine->load();
        if (e == nullptr) return samples;
        auto infos = e->ListCollections();
        if (!infos.ok()) return samples;
        for (const engine::CollectionInfo& info : *infos) {
          samples.push_back({{info.spec.name}, static_cast<double>(info.item_count)});
        }
        return samples;
      }));
  Check(registry_->AddCallbackGauge(
      "retrace_batcher_queue_depth",
      "Inputs (images, texts, queries) waiting for a batch, per batcher and lane.",
      {"batcher", "lane"}, [engine] {
        std::vector<metrics::GaugeSample> samples;
        engine::Engine* e = engine->load();
        if (e == nullptr) return samples;
        for (const auto& d : e->BatcherDepths()) {
          samples.push_back({{d.batcher, batching::LaneName(d.lane)}, static_cast<double>(d.depth)});
        }
        return samples;
      }));
}

void ServiceMetrics::RecordCall(std::string_view rpc, grpc::StatusCode code, double seconds) {
  const int i = RpcIndex(rpc);
  if (i < 0) return;
  if (code == grpc::StatusCode::OK) {
    calls_ok_[i]->Increment();
  } else {
    calls_->WithLabels({absl::string_view(rpc.data(), rpc.size()), StatusCodeName(code)})
        .Increment();
  }
  call_seconds_[i]->Observe(seconds);
}

void ServiceMetrics::RecordShardCall(int group, const std::string& replica,
                                     grpc::StatusCode code, double seconds) {
  const std::string g = absl::StrCat(group);
  shard_calls_->WithLabels({g, replica, StatusCodeName(code)}).Increment();
  shard_seconds_->WithLabels({g, replica}).Observe(seconds);
}

void ServiceMetrics::Observe(engine::Stage stage, double seconds, int batch_size) {
  const int s = static_cast<int>(stage);
  if (s < 0 || s >= engine::kStageCount) return;
  stage_seconds_[s]->Observe(seconds);
  stage_batch_[s]->Observe(batch_size);
}

}  // namespace retrace::server
