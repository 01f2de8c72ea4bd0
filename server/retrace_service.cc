#include "server/retrace_service.h"

#include <utility>

#include <grpcpp/support/proto_buffer_writer.h>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "server/proto_convert.h"
#include "server/status_mapping.h"

namespace retrace::server {

RetraceService::RetraceService(engine::Engine* engine, ThreadPool* pool,
                               std::shared_ptr<spdlog::logger> log)
    : engine_(engine), pool_(pool), log_(std::move(log)) {}

grpc::ServerUnaryReactor* RetraceService::Offload(grpc::CallbackServerContext* context,
                                                  const char* method,
                                                  std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  pool_->Submit([this, reactor, context, method, work = std::move(work)] {
    absl::Status status = context->IsCancelled()
                              ? absl::CancelledError("the client cancelled the call")
                              : work();
    if (!status.ok()) log_->debug("{}: {}", method, status.ToString());
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* RetraceService::Caption(grpc::CallbackServerContext* context,
                                                  const v1::CaptionRequest* request,
                                                  v1::CaptionResponse* response) {
  return Offload(context, "Caption", [this, request, response] {
    std::vector<std::string> images(request->images().begin(), request->images().end());
    const models::CaptionOptions options =
        FromProto(request->options(), engine_->options().caption);
    RETRACE_ASSIGN_OR_RETURN(std::vector<engine::CaptionResult> results,
                             engine_->Caption(images, options));
    ToProto(results, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetraceService::Search(grpc::CallbackServerContext* context,
                                                 const v1::SearchRequest* request,
                                                 v1::SearchResponse* response) {
  return Offload(context, "Search", [this, request, response] {
    RETRACE_ASSIGN_OR_RETURN(engine::SearchQuery query, FromProto(*request));
    RETRACE_ASSIGN_OR_RETURN(engine::SearchResult result,
                             engine_->Search(request->collection(), query));
    ToProto(result, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetraceService::Delete(grpc::CallbackServerContext* context,
                                                 const v1::DeleteRequest* request,
                                                 v1::DeleteResponse* response) {
  return Offload(context, "Delete", [this, request, response] {
    std::vector<std::string> ids(request->ids().begin(), request->ids().end());
    RETRACE_ASSIGN_OR_RETURN(std::vector<engine::ItemResult> results,
                             engine_->Delete(request->collection(), ids));
    ToProto(results, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetraceService::Get(grpc::CallbackServerContext* context,
                                              const v1::GetRequest* request,
                                              v1::GetResponse* response) {
  return Offload(context, "Get", [this, request, response] {
    std::vector<std::string> ids(request->ids().begin(), request->ids().end());
    RETRACE_ASSIGN_OR_RETURN(std::vector<engine::GetResult> results,
                             engine_->Get(request->collection(), ids,
                                          request->include_embeddings()));
    ToProto(results, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetraceService::CreateCollection(
    grpc::CallbackServerContext* context, const v1::CreateCollectionRequest* request,
    v1::Collection* response) {
  return Offload(context, "CreateCollection", [this, request, response] {
    RETRACE_ASSIGN_OR_RETURN(engine::CollectionInfo info,
                             engine_->CreateCollection(FromProto(request->collection())));
    ToProto(info, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetraceService::ListCollections(
    grpc::CallbackServerContext* context, const v1::ListCollectionsRequest* request,
    v1::ListCollectionsResponse* response) {
  return Offload(context, "ListCollections", [this, response] {
    RETRACE_ASSIGN_OR_RETURN(std::vector<engine::CollectionInfo> infos, engine_->ListCollections());
    for (const engine::CollectionInfo& info : infos) ToProto(info, response->add_collections());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetraceService::DescribeCollection(
    grpc::CallbackServerContext* context, const v1::DescribeCollectionRequest* request,
    v1::Collection* response) {
  return Offload(context, "DescribeCollection", [this, request, response] {
    RETRACE_ASSIGN_OR_RETURN(engine::CollectionInfo info,
                             engine_->DescribeCollection(request->name()));
    ToProto(info, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RetraceService::DropCollection(
    grpc::CallbackServerContext* context, const v1::DropCollectionRequest* request,
    v1::DropCollectionResponse* response) {
  return Offload(context, "DropCollection",
                 [this, request] { return engine_->DropCollection(request->name()); });
}

// IndexReactor: read a request, index it on the pool, write its results, read the next. The
// stream ends OK when the client half-closes; a stream-level failure (unknown collection, batch
// over the limit, a request that is not an IndexRequest) ends it with that status.
class RetraceService::IndexReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit IndexReactor(RetraceService* service) : service_(service) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    service_->pool_->Submit([this] {
      v1::wire::IndexRequestWire request;
      if (!ParseWire(&request)) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("request ", requests_, ": not a valid IndexRequest")));
        return;
      }
      ++requests_;
      auto results = service_->engine_->Index(request.collection(), FromProto(request));
      if (!results.ok()) {
        Finish(ToGrpcStatus(results.status()));
        return;
      }
      v1::IndexResponse response;
      ToProto(*results, &response);
      bool own_buffer = false;
      response_.Clear();  // the serializer requires an empty buffer
      grpc::GenericSerialize<grpc::ProtoBufferWriter, v1::IndexResponse>(response, &response_,
                                                                          &own_buffer);
      StartWrite(&response_);
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    request_.Clear();
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  bool ParseWire(v1::wire::IndexRequestWire* out) {
    std::vector<grpc::Slice> slices;
    if (!request_.Dump(&slices).ok()) return false;
    std::string bytes;
    for (const grpc::Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
    return out->ParseFromString(bytes);
  }

  RetraceService* const service_;
  int requests_ = 0;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* RetraceService::Index(
    grpc::CallbackServerContext* context) {
  return new IndexReactor(this);
}

}  // namespace retrace::server
