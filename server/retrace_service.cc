#include "server/retrace_service.h"

#include <grpcpp/support/proto_buffer_writer.h>

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "server/proto_convert.h"
#include "server/status_mapping.h"

namespace retrace::server {
namespace {

constexpr std::string_view kRequestIdKey = "x-request-id";
constexpr size_t kMaxRequestIdBytes = 128;

// ClientRequestId: the client's x-request-id when it is safe to log and echo (1..128 of
// [A-Za-z0-9._:-]); empty otherwise, and the server makes its own.
std::string ClientRequestId(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(grpc::string_ref(kRequestIdKey.data(), kRequestIdKey.size()));
  if (it == metadata.end() || it->second.empty() || it->second.size() > kMaxRequestIdBytes) {
    return "";
  }
  for (char c : it->second) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return "";
  }
  return std::string(it->second.data(), it->second.size());
}

std::string NewRequestId() {
  thread_local std::mt19937_64 random(std::random_device{}());
  return absl::StrCat(absl::Hex(random(), absl::kZeroPad16));
}

std::string_view Authorization(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

constexpr RpcSpec kCaption{"Caption", Scope::kSearch};
constexpr RpcSpec kIndex{"Index", Scope::kIndex};
constexpr RpcSpec kSearch{"Search", Scope::kSearch};
constexpr RpcSpec kDelete{"Delete", Scope::kIndex};
constexpr RpcSpec kGet{"Get", Scope::kSearch};
constexpr RpcSpec kCreateCollection{"CreateCollection", Scope::kAdmin};
constexpr RpcSpec kListCollections{"ListCollections", Scope::kSearch};
constexpr RpcSpec kDescribeCollection{"DescribeCollection", Scope::kSearch};
constexpr RpcSpec kDropCollection{"DropCollection", Scope::kAdmin};
constexpr RpcSpec kGetClusterStatus{"GetClusterStatus", Scope::kSearch};

}  // namespace

RetraceService::RetraceService(ThreadPool* pool, const TokenAuthorizer* auth,
                               ServiceMetrics* metrics, ServerLoggers logs, ServiceOptions options)
    : pool_(pool), auth_(auth), metrics_(metrics), logs_(std::move(logs)), options_(options) {}

absl::StatusOr<Principal> RetraceService::Admit(grpc::CallbackServerContext* context,
                                                const RpcSpec& rpc, std::string_view collection,
                                                std::string* request_id) {
  *request_id = ClientRequestId(*context);
  if (request_id->empty()) *request_id = NewRequestId();
  context->AddInitialMetadata(std::string(kRequestIdKey), *request_id);
  if (engine_.load(std::memory_order_acquire) == nullptr) {
    return absl::UnavailableError(
        "retrace-server is starting: the models and collections are loading (health reports "
        "NOT_SERVING until they are ready)");
  }
  RETRACE_ASSIGN_OR_RETURN(Principal who, auth_->Authenticate(Authorization(*context)));
  RETRACE_RETURN_IF_ERROR(auth_->Authorize(who, rpc.scope, collection));
  return who;
}

void RetraceService::Finished(const RpcSpec& rpc, const grpc::Status& status,
                              std::chrono::steady_clock::time_point start,
                              std::string_view request_id, std::string_view principal) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (metrics_ != nullptr) metrics_->RecordCall(rpc.name, status.error_code(), seconds);
  LogCall(
      logs_,
      {rpc.name, status.error_code(), seconds * 1e3, request_id, principal, status.error_message()},
      options_.access_log);
}

absl::Status RetraceService::QueueFull() const {
  if (pool_->Pending() < static_cast<size_t>(options_.max_pending_calls)) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the server is overloaded: ", options_.max_pending_calls,
      " calls already wait for a worker (limits.max_pending_calls); retry with backoff"));
}

grpc::ServerUnaryReactor* RetraceService::Offload(grpc::CallbackServerContext* context,
                                                  const RpcSpec& rpc, std::string_view collection,
                                                  Work work) {
  const auto start = std::chrono::steady_clock::now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::string request_id;
  absl::StatusOr<Principal> who = Admit(context, rpc, collection, &request_id);
  auto finish = [this, reactor, &rpc, start](const absl::Status& status, std::string_view id,
                                             std::string_view principal) {
    const grpc::Status grpc_status = ToGrpcStatus(status);
    Finished(rpc, grpc_status, start, id, principal);
    reactor->Finish(grpc_status);
  };
  if (!who.ok()) {
    finish(who.status(), request_id, "-");
    return reactor;
  }
  if (absl::Status full = QueueFull(); !full.ok()) {
    finish(full, request_id, who->name);
    return reactor;
  }
  // The client's deadline, or the server's default when the client set none.
  const auto deadline = context->deadline() != std::chrono::system_clock::time_point::max()
                            ? context->deadline()
                            : std::chrono::system_clock::now() + options_.default_deadline;
  pool_->Submit([this, context, work = std::move(work), finish, deadline,
                 request_id = std::move(request_id), who = std::move(*who)] {
    absl::Status status;
    if (context->IsCancelled()) {
      status = absl::CancelledError("the client cancelled the call");
    } else if (std::chrono::system_clock::now() > deadline) {
      status = absl::DeadlineExceededError(
          "the call's deadline passed while it waited for a worker; it was not run");
    } else {
      engine::CallOptions call;
      call.deadline = absl::FromChrono(deadline);
      status = work(*engine_.load(std::memory_order_acquire), who, call);
    }
    finish(status, request_id, who.name);
  });
  return reactor;
}

grpc::ServerUnaryReactor* RetraceService::Caption(grpc::CallbackServerContext* context,
                                                  const v1::CaptionRequest* request,
                                                  v1::CaptionResponse* response) {
  return Offload(
      context, kCaption, "", [request, response](engine::Engine& engine, const Principal&, const engine::CallOptions& call) {
        std::vector<std::string> images(request->images().begin(), request->images().end());
        const models::CaptionOptions options =
            FromProto(request->options(), engine.options().caption);
        RETRACE_ASSIGN_OR_RETURN(std::vector<engine::CaptionResult> results,
                                 engine.Caption(images, options, call));
        ToProto(results, response);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* RetraceService::Search(grpc::CallbackServerContext* context,
                                                 const v1::SearchRequest* request,
                                                 v1::SearchResponse* response) {
  return Offload(context, kSearch, request->collection(),
                 [request, response](engine::Engine& engine, const Principal&,
                                     engine::CallOptions call) {
                   RETRACE_ASSIGN_OR_RETURN(engine::SearchQuery query, FromProto(*request));
                   call.min_position = request->min_position();
                   RETRACE_ASSIGN_OR_RETURN(engine::SearchResult result,
                                            engine.Search(request->collection(), query, call));
                   ToProto(result, response);
                   return absl::OkStatus();
                 });
}

grpc::ServerUnaryReactor* RetraceService::Delete(grpc::CallbackServerContext* context,
                                                 const v1::DeleteRequest* request,
                                                 v1::DeleteResponse* response) {
  return Offload(context, kDelete, request->collection(),
                 [request, response](engine::Engine& engine, const Principal&,
                                     engine::CallOptions call) {
                   std::vector<std::string> ids(request->ids().begin(), request->ids().end());
                   RETRACE_ASSIGN_OR_RETURN(engine::WriteResult results,
                                            engine.Delete(request->collection(), ids, call));
                   ToProto(results, response);
                   return absl::OkStatus();
                 });
}

grpc::ServerUnaryReactor* RetraceService::Get(grpc::CallbackServerContext* context,
                                              const v1::GetRequest* request,
                                              v1::GetResponse* response) {
  return Offload(context, kGet, request->collection(),
                 [request, response](engine::Engine& engine, const Principal&,
                                     engine::CallOptions call) {
                   std::vector<std::string> ids(request->ids().begin(), request->ids().end());
                   call.min_position = request->min_position();
                   RETRACE_ASSIGN_OR_RETURN(
                       std::vector<engine::GetResult> results,
                       engine.Get(request->collection(), ids, request->include_embeddings(), call));
                   ToProto(results, response);
                   return absl::OkStatus();
                 });
}

grpc::ServerUnaryReactor* RetraceService::CreateCollection(
    grpc::CallbackServerContext* context, const v1::CreateCollectionRequest* request,
    v1::Collection* response) {
  return Offload(context, kCreateCollection, request->collection().name(),
                 [request, response](engine::Engine& engine, const Principal&, const engine::CallOptions&) {
                   RETRACE_ASSIGN_OR_RETURN(
                       engine::CollectionInfo info,
                       engine.CreateCollection(FromProto(request->collection())));
                   ToProto(info, response);
                   return absl::OkStatus();
                 });
}

grpc::ServerUnaryReactor* RetraceService::ListCollections(
    grpc::CallbackServerContext* context, const v1::ListCollectionsRequest* request,
    v1::ListCollectionsResponse* response) {
  return Offload(context, kListCollections, "",
                 [request, response](engine::Engine& engine, const Principal& who,
                                     engine::CallOptions call) {
                   call.min_position = request->min_position();
                   RETRACE_ASSIGN_OR_RETURN(std::vector<engine::CollectionInfo> infos,
                                            engine.ListCollections(call));
                   for (const engine::CollectionInfo& info : infos) {
                     if (TokenAuthorizer::MayUse(who, info.spec.name))
                       ToProto(info, response->add_collections());
                   }
                   return absl::OkStatus();
                 });
}

grpc::ServerUnaryReactor* RetraceService::DescribeCollection(
    grpc::CallbackServerContext* context, const v1::DescribeCollectionRequest* request,
    v1::Collection* response) {
  return Offload(context, kDescribeCollection, request->name(),
                 [request, response](engine::Engine& engine, const Principal&,
                                     engine::CallOptions call) {
                   call.min_position = request->min_position();
                   RETRACE_ASSIGN_OR_RETURN(engine::CollectionInfo info,
                                            engine.DescribeCollection(request->name(), call));
                   ToProto(info, response);
                   return absl::OkStatus();
                 });
}

grpc::ServerUnaryReactor* RetraceService::DropCollection(
    grpc::CallbackServerContext* context, const v1::DropCollectionRequest* request,
    v1::DropCollectionResponse* response) {
  return Offload(context, kDropCollection, request->name(),
                 [request, response](engine::Engine& engine, const Principal&,
                                     const engine::CallOptions&) {
                   RETRACE_ASSIGN_OR_RETURN(int64_t position,
                                            engine.DropCollection(request->name()));
                   response->set_position(position);
                   return absl::OkStatus();
                 });
}

grpc::ServerUnaryReactor* RetraceService::GetClusterStatus(
    grpc::CallbackServerContext* context, const v1::GetClusterStatusRequest* request,
    v1::ClusterStatus* response) {
  return Offload(context, kGetClusterStatus, "",
                 [response](engine::Engine& engine, const Principal&, const engine::CallOptions&) {
                   RETRACE_ASSIGN_OR_RETURN(engine::ClusterStatus status, engine.Cluster());
                   ToProto(status, response);
                   return absl::OkStatus();
                 });
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
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      call_.deadline = absl::FromChrono(context->deadline());
    }
    absl::StatusOr<Principal> who = service_->Admit(context, kIndex, "", &request_id_);
    if (who.ok()) {
      const int limit = service_->options_.max_index_streams;
      if (service_->index_streams_.fetch_add(1) < limit) {
        counted_ = true;  // given back in OnDone
      } else {
        service_->index_streams_.fetch_sub(1);
        who = absl::ResourceExhaustedError(
            absl::StrCat("the server already serves ", limit,
                         " Index streams (limits.max_index_streams); retry later"));
      }
    }
    if (!who.ok()) {
      FinishStream(ToGrpcStatus(who.status()), start);
      return;
    }
    who_ = std::move(*who);
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
    if (absl::Status full = service_->QueueFull(); !full.ok()) {
      const grpc::Status status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("request ", requests_, ": ", full.message(),
                       "; this request was not stored, the earlier ones were"));
      service_->Finished(kIndex, status, start, request_id_, who_.name);
      Finish(status);
      return;
    }
    service_->pool_->Submit([this, start] {
      grpc::Status status = IndexOne();
      service_->Finished(kIndex, status, start, request_id_, who_.name);
      if (status.ok()) {
        StartWrite(&response_);
      } else {
        Finish(status);
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
    if (counted_) service_->index_streams_.fetch_sub(1);
    delete this;
  }

 private:
  // IndexOne indexes the request just read and serializes its response into response_.
  grpc::Status IndexOne() {
    v1::wire::IndexRequestWire request;
    if (!ParseWire(&request)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("request ", requests_, ": not a valid IndexRequest"));
    }
    ++requests_;
    if (absl::Status s = service_->auth_->Authorize(who_, Scope::kIndex, request.collection());
        !s.ok()) {
      return ToGrpcStatus(s);
    }
    items_ += request.items_size();
    if (items_ > service_->options_.max_items_per_stream) {
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("request ", requests_ - 1, ": the stream passed ",
                       service_->options_.max_items_per_stream,
                       " items (limits.max_items_per_stream); this request was not stored, the "
                       "earlier ones were; open a new stream to go on"));
    }
    absl::StatusOr<engine::WriteResult> results =
        service_->engine_.load(std::memory_order_acquire)
            ->Index(request.collection(), FromProto(request), call_);
    if (!results.ok()) return ToGrpcStatus(results.status());
    v1::IndexResponse response;
    ToProto(*results, &response);
    bool own_buffer = false;
    response_.Clear();  // the serializer requires an empty buffer
    grpc::GenericSerialize<grpc::ProtoBufferWriter, v1::IndexResponse>(response, &response_,
                                                                       &own_buffer);
    return grpc::Status::OK;
  }

  // FinishStream ends a stream that was not admitted.
  void FinishStream(const grpc::Status& status, std::chrono::steady_clock::time_point start) {
    service_->Finished(kIndex, status, start, request_id_, "-");
    Finish(status);
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
  engine::CallOptions call_;  // the stream's deadline
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
