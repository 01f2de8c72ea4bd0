#include "server/retrace_service.h"

#include <grpcpp/support/proto_buffer_writer.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "server/rpc_handlers.h"
#include "server/status_mapping.h"

namespace retrace::server {
namespace {

constexpr std::string_view kRequestIdKey = "x-request-id";

std::string_view Metadata(const grpc::CallbackServerContext& context, std::string_view key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (it == metadata.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

// Meta: what admission needs of a gRPC call.
CallMeta Meta(const grpc::CallbackServerContext& context) {
  CallMeta meta;
  meta.authorization = Metadata(context, "authorization");
  meta.client_request_id = Metadata(context, kRequestIdKey);
  if (context.deadline() != std::chrono::system_clock::time_point::max()) {
    meta.deadline = context.deadline();
  }
  return meta;
}

// Bind: the work of one unary RPC — its handler over this call's request and response.
template <typename Request, typename Response>
CallGate::Work Bind(absl::Status (*handler)(engine::Engine&, const Principal&,
                                            const engine::CallOptions&, const Request&, Response*),
                    const Request* request, Response* response) {
  return [handler, request, response](engine::Engine& engine, const Principal& who,
                                      const engine::CallOptions& call) {
    return handler(engine, who, call, *request, response);
  };
}

}  // namespace

grpc::ServerUnaryReactor* RetraceService::Offload(grpc::CallbackServerContext* context,
                                                  const RpcSpec& rpc, std::string_view collection,
                                                  CallGate::Work work) {
  const auto start = std::chrono::steady_clock::now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const CallMeta meta = Meta(*context);
  const std::string request_id = CallGate::RequestId(meta);
  absl::StatusOr<Principal> who = gate_->Admit(meta, rpc, collection);
  context->AddInitialMetadata(std::string(kRequestIdKey), request_id);
  auto finish = [this, reactor, &rpc, start, request_id](const absl::Status& status,
                                                         std::string_view principal) {
    gate_->Finished(rpc, status, start, request_id, principal);
    reactor->Finish(ToGrpcStatus(status));
  };
  if (!who.ok()) {
    finish(who.status(), "-");
    return reactor;
  }
  gate_->Run(
      rpc, *who, gate_->Deadline(meta), [context] { return context->IsCancelled(); }, std::move(work),
      [finish, name = who->name](const absl::Status& status) { finish(status, name); });
  return reactor;
}

grpc::ServerUnaryReactor* RetraceService::Caption(grpc::CallbackServerContext* context,
                                                  const v1::CaptionRequest* request,
                                                  v1::CaptionResponse* response) {
  return Offload(context, kCaptionRpc, "", Bind(&HandleCaption, request, response));
}

grpc::ServerUnaryReactor* RetraceService::Search(grpc::CallbackServerContext* context,
                                                 const v1::SearchRequest* request,
                                                 v1::SearchResponse* response) {
  return Offload(context, kSearchRpc, request->collection(),
                 Bind(&HandleSearch, request, response));
}

grpc::ServerUnaryReactor* RetraceService::Delete(grpc::CallbackServerContext* context,
                                                 const v1::DeleteRequest* request,
                                                 v1::DeleteResponse* response) {
  return Offload(context, kDeleteRpc, request->collection(),
                 Bind(&HandleDelete, request, response));
}

grpc::ServerUnaryReactor* RetraceService::SearchBatch(grpc::CallbackServerContext* context,
                                                      const v1::SearchBatchRequest* request,
                                                      v1::SearchBatchResponse* response) {
  // Its queries name their collections; HandleSearchBatch checks each.
  return Offload(context, kSearchBatchRpc, "", Bind(&HandleSearchBatch, request, response));
}

grpc::ServerUnaryReactor* RetraceService::Get(grpc::CallbackServerContext* context,
                                              const v1::GetRequest* request,
                                              v1::GetResponse* response) {
  return Offload(context, kGetRpc, request->collection(), Bind(&HandleGet, request, response));
}

grpc::ServerUnaryReactor* RetraceService::List(grpc::CallbackServerContext* context,
                                               const v1::ListRequest* request,
                                               v1::ListResponse* response) {
  return Offload(context, kListRpc, request->collection(), Bind(&HandleList, request, response));
}

grpc::ServerUnaryReactor* RetraceService::CreateCollection(
    grpc::CallbackServerContext* context, const v1::CreateCollectionRequest* request,
    v1::Collection* response) {
  return Offload(context, kCreateCollectionRpc, request->collection().name(),
                 Bind(&HandleCreateCollection, request, response));
}

grpc::ServerUnaryReactor* RetraceService::ListCollections(
    grpc::CallbackServerContext* context, const v1::ListCollectionsRequest* request,
    v1::ListCollectionsResponse* response) {
  return Offload(context, kListCollectionsRpc, "",
                 Bind(&HandleListCollections, request, response));
}

grpc::ServerUnaryReactor* RetraceService::DescribeCollection(
    grpc::CallbackServerContext* context, const v1::DescribeCollectionRequest* request,
    v1::Collection* response) {
  return Offload(context, kDescribeCollectionRpc, request->name(),
                 Bind(&HandleDescribeCollection, request, response));
}

grpc::ServerUnaryReactor* RetraceService::DropCollection(
    grpc::CallbackServerContext* context, const v1::DropCollectionRequest* request,
    v1::DropCollectionResponse* response) {
  return Offload(context, kDropCollectionRpc, request->name(),
                 Bind(&HandleDropCollection, request, response));
}

grpc::ServerUnaryReactor* RetraceService::GetClusterStatus(
    grpc::CallbackServerContext* context, const v1::GetClusterStatusRequest* request,
    v1::ClusterStatus* response) {
  return Offload(context, kGetClusterStatusRpc, "",
                 Bind(&HandleGetClusterStatus, request, response));
}

// IndexReactor: read a request, index it on the pool, write its results, read the next. The
// stream ends OK when the client half-closes; a stream-level failure (not admitted, unknown
// collection, a collection the token may not use, batch over the limit, the stream's item
// bound, a full worker queue, a request that is not an IndexRequest) ends it with that status.
// Items stored by earlier requests stay stored.
class RetraceService::IndexReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  IndexReactor(RetraceService* service, grpc::CallbackServerContext* context) : service_(service) {
    const auto start = std::chrono::steady_clock::now();
    // A stream has no default deadline (ingest may run for hours); the client's, when it set
    // one, bounds the work still queued for the models.
    const CallMeta meta = Meta(*context);
    if (meta.deadline.has_value()) {
      deadline_ = *meta.deadline;
      call_.deadline = absl::FromChrono(deadline_);
    }
    request_id_ = CallGate::RequestId(meta);
    absl::StatusOr<Principal> who = gate().Admit(meta, kIndexRpc, "");
    context->AddInitialMetadata(std::string(kRequestIdKey), request_id_);
    if (who.ok()) {
      if (absl::Status open = gate().OpenIndexStream(); open.ok()) {
        counted_ = true;  // given back in OnDone
      } else {
        who = open;
      }
    }
    if (!who.ok()) {
      gate().Finished(kIndexRpc, who.status(), start, request_id_, "-");
      Finish(ToGrpcStatus(who.status()));
      return;
    }
    who_ = std::move(*who);
    call_.scope = who_.filter;  // as CallGate::Run does for every other call
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    const auto start = std::chrono::steady_clock::now();
    // Each request, not each stream, takes its turn against max_pending_calls: the bound is on
    // work queued for a worker, and a stream between requests queues none (max_index_streams
    // bounds the streams). So a saturated server refuses the next request of any stream, as it
    // refuses a unary call, and an idle open stream never holds a slot unary calls could use.
    if (absl::Status full = gate().QueueFull(kIndexRpc.lane); !full.ok()) {
      const absl::Status status = absl::ResourceExhaustedError(
          absl::StrCat("request ", requests_, ": ", full.message(),
                       "; this request was not stored, the earlier ones were"));
      gate().Finished(kIndexRpc, status, start, request_id_, who_.name);
      Finish(ToGrpcStatus(status));
      return;
    }
    gate().Run(
        kIndexRpc, who_, deadline_, [] { return false; },
        [this](engine::Engine&, const Principal&, const engine::CallOptions&) { return IndexOne(); },
        [this, start](const absl::Status& status) {
          gate().Finished(kIndexRpc, status, start, request_id_, who_.name);
          if (status.ok()) {
            StartWrite(&response_);
          } else {
            Finish(ToGrpcStatus(status));
          }
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

  void OnDone() override {
    if (counted_) gate().CloseIndexStream();
    delete this;
  }

 private:
  CallGate& gate() { return *service_->gate_; }

  // IndexOne indexes the request just read and serializes its response into response_.
  absl::Status IndexOne() {
    v1::wire::IndexRequestWire request;
    if (!ParseWire(&request)) {
      return absl::InvalidArgumentError(
          absl::StrCat("request ", requests_, ": not a valid IndexRequest"));
    }
    ++requests_;
    RETRACE_RETURN_IF_ERROR(gate().auth().Authorize(who_, Scope::kIndex, request.collection()));
    items_ += request.items_size();
    if (items_ > gate().options().max_items_per_stream) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "request ", requests_ - 1, ": the stream passed ", gate().options().max_items_per_stream,
          " items (limits.max_items_per_stream); this request was not stored, the earlier ones "
          "were; open a new stream to go on"));
    }
    v1::IndexResponse response;
    RETRACE_RETURN_IF_ERROR(HandleIndex(*gate().engine(), who_, call_, request, &response));
    bool own_buffer = false;
    response_.Clear();  // the serializer requires an empty buffer
    grpc::GenericSerialize<grpc::ProtoBufferWriter, v1::IndexResponse>(response, &response_,
                                                                       &own_buffer);
    return absl::OkStatus();
  }

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
  std::string request_id_;
  Principal who_;
  bool counted_ = false;  // holds one of max_index_streams
  // The stream's deadline, when the client set one.
  std::chrono::system_clock::time_point deadline_ = std::chrono::system_clock::time_point::max();
  engine::CallOptions call_;
  int requests_ = 0;
  int64_t items_ = 0;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* RetraceService::Index(
    grpc::CallbackServerContext* context) {
  return new IndexReactor(this, context);
}

}  // namespace retrace::server
