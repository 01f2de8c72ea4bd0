// retrace_service.h — the gRPC front end: retrace.v1.Retrace on the callback API.
//
// Every call passes one gate (Admit): a request id (the client's `x-request-id` metadata, or a
// new one, echoed in the response's initial metadata), readiness, the bearer token and the
// RPC's scope and collection (token_auth.h). Each handler then converts its request
// (proto_convert.h), hands the work to the worker pool, and finishes the call from there, so
// gRPC's threads never wait on decoding, inference or search. A full queue
// (limits.max_pending_calls) answers RESOURCE_EXHAUSTED; work whose deadline (the client's, else
// ServiceOptions.default_deadline) passed while it queued is dropped with DEADLINE_EXCEEDED.
// Index is a bidirectional stream: one request in flight per stream, each answered with its
// per-item results once they are stored. Each of its requests passes the same queue bound as a
// unary call; over it the stream ends RESOURCE_EXHAUSTED (earlier requests stay stored). Its
// requests are parsed as the wire-compatible IndexRequestWire, so invalid UTF-8 in one item fails
// that item alone.
//
// Thread-safety: safe for concurrent calls; the engine and the pool are shared.
//
//   RetraceService service(&pool, auth.get(), &metrics, logs, options);
//   builder.RegisterService(&service);  ...  service.SetEngine(engine.get());
#ifndef RETRACE_SERVER_RETRACE_SERVICE_H_
#define RETRACE_SERVER_RETRACE_SERVICE_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/common/thread_pool.h"
#include "core/engine/defaults.h"
#include "core/engine/engine.h"
#include "retrace/v1/retrace.grpc.pb.h"
#include "server/logging.h"
#include "server/service_metrics.h"
#include "server/token_auth.h"

namespace retrace::server {

// RetraceCallbackBase: the generated CallbackService with Index served raw (grpc::ByteBuffer),
// so its requests can be parsed as IndexRequestWire. Each layer adds one method.
using RetraceCallbackBase = v1::Retrace::WithCallbackMethod_Caption<
    v1::Retrace::WithRawCallbackMethod_Index<v1::Retrace::WithCallbackMethod_Search<
        v1::Retrace::WithCallbackMethod_Delete<v1::Retrace::WithCallbackMethod_CreateCollection<
            v1::Retrace::WithCallbackMethod_ListCollections<
                v1::Retrace::WithCallbackMethod_DescribeCollection<
                    v1::Retrace::WithCallbackMethod_DropCollection<
                        v1::Retrace::WithCallbackMethod_Get<
                            v1::Retrace::WithCallbackMethod_GetClusterStatus<
                                v1::Retrace::Service>>>>>>>>>>;

// ServiceOptions: the front end's own bounds (ServerConfig.limits) and logging.
struct ServiceOptions {
  // Unary calls and Index requests waiting for a worker; over it RESOURCE_EXHAUSTED.
  int max_pending_calls = engine::defaults::kMaxPendingCalls;
  // The deadline of unary calls whose client set none.
  std::chrono::milliseconds default_deadline{engine::defaults::kDefaultDeadlineMs};
  int max_index_streams = engine::defaults::kMaxIndexStreams;  // Index streams open at once
  int64_t max_items_per_stream = engine::defaults::kMaxItemsPerStream;
  bool access_log = false;  // one info line per call (else debug)
};

// RpcSpec: what the one admission path needs to know of an RPC.
struct RpcSpec {
  const char* name;
  Scope scope;
};

class RetraceService final : public RetraceCallbackBase {
 public:
  // RetraceService does not own `pool`, `auth` or `metrics` (may be null); all must outlive the
  // gRPC server. Until SetEngine is called every call but health answers UNAVAILABLE, so the
  // server can listen (and report NOT_SERVING) while the models load.
  RetraceService(ThreadPool* pool, const TokenAuthorizer* auth, ServiceMetrics* metrics,
                 ServerLoggers logs, ServiceOptions options);

  // SetEngine makes the service ready. `engine` is not owned and must outlive the gRPC server.
  void SetEngine(engine::Engine* engine) { engine_.store(engine, std::memory_order_release); }

  // IndexStreamsOpen: Index streams now open (a gauge for metrics).
  int IndexStreamsOpen() const { return index_streams_.load(std::memory_order_relaxed); }

  grpc::ServerUnaryReactor* Caption(grpc::CallbackServerContext* context,
                                    const v1::CaptionRequest* request,
                                    v1::CaptionResponse* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Index(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Search(grpc::CallbackServerContext* context,
                                   const v1::SearchRequest* request,
                                   v1::SearchResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const v1::GetRequest* request, v1::GetResponse* response) override;
  grpc::ServerUnaryReactor* CreateCollection(grpc::CallbackServerContext* context,
                                             const v1::CreateCollectionRequest* request,
                                             v1::Collection* response) override;
  grpc::ServerUnaryReactor* ListCollections(grpc::CallbackServerContext* context,
                                            const v1::ListCollectionsRequest* request,
                                            v1::ListCollectionsResponse* response) override;
  grpc::ServerUnaryReactor* DescribeCollection(grpc::CallbackServerContext* context,
                                               const v1::DescribeCollectionRequest* request,
                                               v1::Collection* response) override;
  grpc::ServerUnaryReactor* DropCollection(grpc::CallbackServerContext* context,
                                           const v1::DropCollectionRequest* request,
                                           v1::DropCollectionResponse* response) override;
  grpc::ServerUnaryReactor* GetClusterStatus(grpc::CallbackServerContext* context,
                                             const v1::GetClusterStatusRequest* request,
                                             v1::ClusterStatus* response) override;

 private:
  class IndexReactor;
  // `call` carries the call's deadline to the engine, which drops work still queued for a
  // model or an index when it passes.
  using Work = std::function<absl::Status(engine::Engine& engine, const Principal& who,
                                          const engine::CallOptions& call)>;

  // Admit is the one gate every call passes: request id, readiness, authentication and the
  // RPC's scope and collection. On failure the status to finish the call with.
  absl::StatusOr<Principal> Admit(grpc::CallbackServerContext* context, const RpcSpec& rpc,
                                  std::string_view collection, std::string* request_id);
  // QueueFull: RESOURCE_EXHAUSTED, naming limits.max_pending_calls, when that many tasks already
  // wait for a worker; OK otherwise. Unary calls and Index requests pass it before queueing.
  absl::Status QueueFull() const;
  // Offload admits the call, then runs `work` on the pool (unless the queue is full or the
  // deadline passed while it waited) and finishes the call with the status it returns.
  grpc::ServerUnaryReactor* Offload(grpc::CallbackServerContext* context, const RpcSpec& rpc,
                                    std::string_view collection, Work work);
  // Finished records a finished call (or Index request) in the metrics and the call log.
  void Finished(const RpcSpec& rpc, const grpc::Status& status,
                std::chrono::steady_clock::time_point start, std::string_view request_id,
                std::string_view principal);

  std::atomic<engine::Engine*> engine_{nullptr};
  ThreadPool* const pool_;
  const TokenAuthorizer* const auth_;
  ServiceMetrics* const metrics_;
  const ServerLoggers logs_;
  const ServiceOptions options_;
  std::atomic<int> index_streams_{0};
};

}  // namespace retrace::server

#endif  // RETRACE_SERVER_RETRACE_SERVICE_H_
