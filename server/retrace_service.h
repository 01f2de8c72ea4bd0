// retrace_service.h — the gRPC front end: retrace.v1.Retrace on the callback API.
//
// Every call passes the transport-neutral gate (call_gate.h: request id — the client's
// `x-request-id` metadata or a new one, echoed in the response's initial metadata — readiness,
// bearer token, scope and collection, the queue bound, the deadline) and runs its RPC's handler
// (rpc_handlers.h) on the worker pool, so gRPC's threads never wait on decoding, inference or
// search. Index is a bidirectional stream: one request in flight per stream, each answered with
// its per-item results once they are stored. Each of its requests passes the same queue bound as
// a unary call; over it the stream ends RESOURCE_EXHAUSTED (earlier requests stay stored). Its
// requests are parsed as the wire-compatible IndexRequestWire, so invalid UTF-8 in one item fails
// that item alone.
//
// Thread-safety: safe for concurrent calls; the gate, the engine and the pool are shared.
//
//   CallGate gate(&pool, auth.get(), &metrics, logs, options);
//   RetraceService service(&gate);
//   builder.RegisterService(&service);  ...  gate.SetEngine(engine.get());
#ifndef RETRACE_SERVER_RETRACE_SERVICE_H_
#define RETRACE_SERVER_RETRACE_SERVICE_H_

#include <string>
#include <string_view>

#include "retrace/v1/retrace.grpc.pb.h"
#include "server/call_gate.h"

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
                            v1::Retrace::WithCallbackMethod_List<
                                v1::Retrace::WithCallbackMethod_GetClusterStatus<
                                    v1::Retrace::WithCallbackMethod_SearchBatch<
                                        v1::Retrace::Service>>>>>>>>>>>>;

class RetraceService final : public RetraceCallbackBase {
 public:
  // RetraceService does not own `gate`, which must outlive the gRPC server.
  explicit RetraceService(CallGate* gate) : gate_(gate) {}

  grpc::ServerUnaryReactor* Caption(grpc::CallbackServerContext* context,
                                    const v1::CaptionRequest* request,
                                    v1::CaptionResponse* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Index(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Search(grpc::CallbackServerContext* context,
                                   const v1::SearchRequest* request,
                                   v1::SearchResponse* response) override;
  grpc::ServerUnaryReactor* SearchBatch(grpc::CallbackServerContext* context,
                                        const v1::SearchBatchRequest* request,
                                        v1::SearchBatchResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const v1::GetRequest* request, v1::GetResponse* response) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const v1::ListRequest* request,
                                 v1::ListResponse* response) override;
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

  // Offload admits the call through the gate, runs `work` on the pool and finishes the call
  // with the status it returns.
  grpc::ServerUnaryReactor* Offload(grpc::CallbackServerContext* context, const RpcSpec& rpc,
                                    std::string_view collection, CallGate::Work work);

  CallGate* const gate_;
};

}  // namespace retrace::server

#endif  // RETRACE_SERVER_RETRACE_SERVICE_H_
