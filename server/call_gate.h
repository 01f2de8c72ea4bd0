// call_gate.h — the one admission path of every call, whatever its transport (gRPC in
// retrace_service.h, HTTP/JSON in http/http_api.h): a request id, readiness, the bearer token and
// the RPC's scope and collection (Admit); the bound on work queued for a worker (QueueFull);
// running the work on its lane's worker pool unless its deadline passed while it queued (Run);
// the bound on open Index streams; and what a finished call leaves in the metrics and the call
// log (Finished). The transports only translate: metadata or headers in, statuses out.
//
// Lanes hold end to end. Index and Delete requests (the bulk lane) run on their own pool, every
// other call (the interactive lane: Search, Get, Caption, collections) on another, each with its
// own queue and bound; inside the engine the batchers serve the interactive lane's model and
// search work first. So a search never waits for a worker behind ingest, however many Index
// streams are open.
//
// Thread-safety: safe for concurrent calls; the engine and the pool are shared.
//
//   CallGate gate(&interactive_pool, &bulk_pool, auth.get(), &metrics, logs, options);
//   const std::string request_id = CallGate::RequestId(meta);
//   RETRACE_ASSIGN_OR_RETURN(Principal who, gate.Admit(meta, kSearchRpc, "art"));
//   gate.Run(who, gate.Deadline(meta), [] { return false; }, work, done);
#ifndef RETRACE_SERVER_CALL_GATE_H_
#define RETRACE_SERVER_CALL_GATE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/batching/dynamic_batcher.h"
#include "core/common/thread_pool.h"
#include "core/engine/defaults.h"
#include "core/engine/engine.h"
#include "server/logging.h"
#include "server/service_metrics.h"
#include "server/token_auth.h"

namespace retrace::server {

// ServiceOptions: the front ends' own bounds (ServerConfig.limits) and logging.
struct ServiceOptions {
  // Calls (and Index requests) waiting for a worker, per lane; over it RESOURCE_EXHAUSTED.
  int max_pending_calls = engine::defaults::kMaxPendingCalls;
  // The deadline of unary calls whose client set none.
  std::chrono::milliseconds default_deadline{engine::defaults::kDefaultDeadlineMs};
  int max_index_streams = engine::defaults::kMaxIndexStreams;  // Index streams open at once
  int64_t max_items_per_stream = engine::defaults::kMaxItemsPerStream;
  bool access_log = false;  // one info line per call (else debug)
};

// RpcSpec: what admission needs to know of an RPC.
struct RpcSpec {
  const char* name;  // one of service_metrics.h's kRpcNames
  Scope scope;
  batching::Lane lane;
};

using batching::Lane;
inline constexpr RpcSpec kCaptionRpc{"Caption", Scope::kSearch, Lane::kInteractive};
inline constexpr RpcSpec kIndexRpc{"Index", Scope::kIndex, Lane::kBulk};
inline constexpr RpcSpec kSearchRpc{"Search", Scope::kSearch, Lane::kInteractive};
// SearchBatch is for bulk audits: it must not hold interactive workers.
inline constexpr RpcSpec kSearchBatchRpc{"SearchBatch", Scope::kSearch, Lane::kBulk};
inline constexpr RpcSpec kDeleteRpc{"Delete", Scope::kIndex, Lane::kBulk};
inline constexpr RpcSpec kGetRpc{"Get", Scope::kSearch, Lane::kInteractive};
inline constexpr RpcSpec kListRpc{"List", Scope::kSearch, Lane::kInteractive};
inline constexpr RpcSpec kCreateCollectionRpc{"CreateCollection", Scope::kAdmin,
                                              Lane::kInteractive};
inline constexpr RpcSpec kListCollectionsRpc{"ListCollections", Scope::kSearch,
                                             Lane::kInteractive};
inline constexpr RpcSpec kDescribeCollectionRpc{"DescribeCollection", Scope::kSearch,
                                                Lane::kInteractive};
inline constexpr RpcSpec kDropCollectionRpc{"DropCollection", Scope::kAdmin, Lane::kInteractive};
inline constexpr RpcSpec kGetClusterStatusRpc{"GetClusterStatus", Scope::kSearch,
                                              Lane::kInteractive};

// CallMeta: what a transport brings to admission.
struct CallMeta {
  std::string_view authorization;      // "Bearer <token>", or empty
  std::string_view client_request_id;  // the client's x-request-id, or empty
  // The client's deadline; none: ServiceOptions.default_deadline (unary calls).
  std::optional<std::chrono::system_clock::time_point> deadline;
};

class CallGate {
 public:
  // The gate does not own the pools (one per lane), `auth` or `metrics` (may be null); all must
  // outlive it.
  CallGate(ThreadPool* interactive, ThreadPool* bulk, const TokenAuthorizer* auth,
           ServiceMetrics* metrics, ServerLoggers logs, ServiceOptions options);

  // SetEngine makes calls admissible. Until then Admit answers UNAVAILABLE (the server listens,
  // and health reports NOT_SERVING, while the models load). `engine` must outlive the gate.
  void SetEngine(engine::Engine* engine) { engine_.store(engine, std::memory_order_release); }
  engine::Engine* engine() const { return engine_.load(std::memory_order_acquire); }
  const ServiceOptions& options() const { return options_; }
  const TokenAuthorizer& auth() const { return *auth_; }

  // RequestId: the call's id for logs and the response — the client's when it is 1..128 of
  // [A-Za-z0-9._:-], else a new one.
  static std::string RequestId(const CallMeta& meta);

  // Admit checks readiness, authentication and the RPC's scope and collection (empty: it names
  // none). On failure the status to answer with.
  absl::StatusOr<Principal> Admit(const CallMeta& meta, const RpcSpec& rpc,
                                  std::string_view collection) const;

  // QueueFull: RESOURCE_EXHAUSTED, naming limits.max_pending_calls, when that many tasks already
  // wait for a worker of `lane`; OK otherwise.
  absl::Status QueueFull(Lane lane) const;
  // Pending: tasks waiting for a worker of `lane` (a gauge for metrics).
  size_t Pending(Lane lane) const { return pool(lane).Pending(); }

  // Deadline: the client's, or now + default_deadline when it set none.
  std::chrono::system_clock::time_point Deadline(const CallMeta& meta) const;

  using Work = std::function<absl::Status(engine::Engine& engine, const Principal& who,
                                          const engine::CallOptions& call)>;
  // Run queues `work` on the pool of `rpc`'s lane (after QueueFull) and calls `done` exactly
  // once with its
  // status: RESOURCE_EXHAUSTED when the queue is full (inline), CANCELLED when `cancelled()`
  // says the client left, DEADLINE_EXCEEDED when `deadline` passed while it queued, else what
  // `work` returned (it gets the deadline in its CallOptions).
  void Run(const RpcSpec& rpc, const Principal& who,
           std::chrono::system_clock::time_point deadline, std::function<bool()> cancelled,
           Work work,
           std::function<void(const absl::Status&)> done);

  // OpenIndexStream takes one of limits.max_index_streams (RESOURCE_EXHAUSTED when all are
  // open); CloseIndexStream gives it back.
  absl::Status OpenIndexStream();
  void CloseIndexStream() { index_streams_.fetch_sub(1); }
  int IndexStreamsOpen() const { return index_streams_.load(std::memory_order_relaxed); }

  // Finished records a finished call (or Index request) in the metrics and the call log.
  void Finished(const RpcSpec& rpc, const absl::Status& status,
                std::chrono::steady_clock::time_point start, std::string_view request_id,
                std::string_view principal) const;

 private:
  ThreadPool& pool(Lane lane) const { return lane == Lane::kBulk ? *bulk_ : *interactive_; }

  std::atomic<engine::Engine*> engine_{nullptr};
  ThreadPool* const interactive_;
  ThreadPool* const bulk_;
  const TokenAuthorizer* const auth_;
  ServiceMetrics* const metrics_;
  const ServerLoggers logs_;
  const ServiceOptions options_;
  std::atomic<int> index_streams_{0};
};

}  // namespace retrace::server

#endif  // RETRACE_SERVER_CALL_GATE_H_
