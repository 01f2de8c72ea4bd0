// retrace_service.h — the gRPC front end: retrace.v1.Retrace on the callback API.
//
// Each handler converts its request (proto_convert.h), hands the work to the worker pool, and
// finishes the call from there, so gRPC's threads never wait on decoding, inference or search.
// Index is a bidirectional stream: one request in flight per stream, each answered with its
// per-item results once they are stored. Its requests are parsed as the wire-compatible
// IndexRequestWire, so invalid UTF-8 in one item fails that item alone.
//
// Thread-safety: safe for concurrent calls; the engine and the pool are shared.
//
//   RetraceService service(&engine, &pool, log);
//   builder.RegisterService(&service);
#ifndef RETRACE_SERVER_RETRACE_SERVICE_H_
#define RETRACE_SERVER_RETRACE_SERVICE_H_

#include <memory>

#include "core/common/thread_pool.h"
#include "core/engine/engine.h"
#include "retrace/v1/retrace.grpc.pb.h"
#include "spdlog/logger.h"

namespace retrace::server {

// RetraceCallbackBase: the generated CallbackService with Index served raw (grpc::ByteBuffer),
// so its requests can be parsed as IndexRequestWire. Each layer adds one method.
using RetraceCallbackBase = v1::Retrace::WithCallbackMethod_Caption<
    v1::Retrace::WithRawCallbackMethod_Index<v1::Retrace::WithCallbackMethod_Search<
        v1::Retrace::WithCallbackMethod_Delete<v1::Retrace::WithCallbackMethod_CreateCollection<
            v1::Retrace::WithCallbackMethod_ListCollections<
                v1::Retrace::WithCallbackMethod_DescribeCollection<
                    v1::Retrace::WithCallbackMethod_DropCollection<
                        v1::Retrace::WithCallbackMethod_Get<v1::Retrace::Service>>>>>>>>>;

class RetraceService final : public RetraceCallbackBase {
 public:
  // RetraceService does not own `engine` or `pool`; both must outlive the gRPC server.
  RetraceService(engine::Engine* engine, ThreadPool* pool, std::shared_ptr<spdlog::logger> log);

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

 private:
  class IndexReactor;
  // Offload runs `work` on the pool and finishes the call with the status it returns.
  grpc::ServerUnaryReactor* Offload(grpc::CallbackServerContext* context, const char* method,
                                    std::function<absl::Status()> work);

  engine::Engine* const engine_;
  ThreadPool* const pool_;
  const std::shared_ptr<spdlog::logger> log_;
};

}  // namespace retrace::server

#endif  // RETRACE_SERVER_RETRACE_SERVICE_H_
