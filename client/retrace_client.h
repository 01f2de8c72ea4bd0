// retrace_client: a thin C++ client for the retrace.v1.Retrace gRPC service.
//
// RetraceClient owns one channel and one stub. Unary calls get the per-call deadline from
// ClientOptions; IndexItems drives the bidirectional Index stream with a bounded number of
// requests in flight. The CLI, the eval harness and the bench tool all call through this layer.
//
// Thread-safety: a RetraceClient is safe for concurrent use by many threads (gRPC channels and
// stubs are); each call uses its own ClientContext.
//
// Example:
//   auto client = retrace::client::RetraceClient::Connect({.server = "host:50051", .token = t});
//   grpc::Status status = client->Search(request, &response);
#ifndef RETRACE_CLIENT_RETRACE_CLIENT_H_
#define RETRACE_CLIENT_RETRACE_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "retrace/v1/retrace.grpc.pb.h"
#include "retrace/v1/retrace.pb.h"

namespace retrace::client {

namespace v1 = ::retrace::v1;

// ClientOptions: how to reach the server. Every field has a usable default.
struct ClientOptions {
  // server: the target, "HOST:PORT" or any gRPC target URI; or several HOST:PORTs separated by
  // commas (replicas of one cluster), over which calls are spread by gRPC's round_robin policy
  // (names are resolved once, at Connect; a replica that is down is skipped). Default
  // "127.0.0.1:50051".
  std::string server = "127.0.0.1:50051";
  // timeout: the deadline of each unary call, counted from its start; zero or negative means
  // none. Default 60 s. The Index stream is not bound by it (see index_timeout).
  std::chrono::milliseconds timeout{60000};
  // index_timeout: the deadline of a whole Index stream; zero means none (the default), as an
  // index run over a large folder may take hours.
  std::chrono::milliseconds index_timeout{0};
  // max_message_bytes: the largest message sent or received. Default 64 MiB, twice the server's
  // default per-image bound. IndexItems splits its batches to stay under it.
  int64_t max_message_bytes = 64 << 20;
  // index_requests_in_flight: how many IndexRequests IndexItems sends before it waits for the
  // first acknowledgement. Default 4: enough to keep the server's batcher fed while one batch
  // is being answered, few enough that a failing stream wastes little work. At least 1.
  int index_requests_in_flight = 4;
  // token: a bearer token sent as `authorization: Bearer <token>` on every call; empty: none.
  std::string token;
  // tls: connect with TLS. The server's certificate is checked against tls_root_certs (PEM
  // text), or the system's roots when that is empty. Default off (plaintext).
  bool tls = false;
  std::string tls_root_certs;
  // tls_client_cert and tls_client_key (PEM text): this client's certificate, for servers that
  // require one (mutual TLS). Both or neither.
  std::string tls_client_cert;
  std::string tls_client_key;
  // tls_server_name: the name to check the server's certificate against, when it differs from
  // the host in `server` (e.g. connecting by IP address). Empty: the host.
  std::string tls_server_name;
  // request_id: sent as `x-request-id` metadata so the server's logs can be matched with the
  // caller's; empty: the server makes one.
  std::string request_id;
};

// ItemSource: produces the next item to index, or std::nullopt when there are no more.
using ItemSource = std::function<std::optional<v1::Item>()>;

// IndexResultCallback: receives one per-item result of an Index stream.
using IndexResultCallback = std::function<void(const v1::IndexResult&)>;

// RetraceClient: the service's calls with deadlines, limits and (later) credentials applied.
class RetraceClient {
 public:
  // Connect: a client for `options.server`, over TLS when options.tls. The channel connects
  // lazily, so this never fails; an unreachable server (or a failed TLS handshake, or a name in
  // a server list that does not resolve) shows up as UNAVAILABLE on the first call.
  static std::unique_ptr<RetraceClient> Connect(const ClientOptions& options);

  RetraceClient(const RetraceClient&) = delete;
  RetraceClient& operator=(const RetraceClient&) = delete;

  // The unary calls: each returns the call's status and fills `*response` on OK. Codes are the
  // server's (see retrace.proto) plus UNAVAILABLE (server unreachable) and DEADLINE_EXCEEDED
  // (options.timeout passed). REQUIRES: response != nullptr.
  grpc::Status Caption(const v1::CaptionRequest& request, v1::CaptionResponse* response);
  grpc::Status Search(const v1::SearchRequest& request, v1::SearchResponse* response);
  grpc::Status SearchBatch(const v1::SearchBatchRequest& request,
                           v1::SearchBatchResponse* response);
  grpc::Status Delete(const v1::DeleteRequest& request, v1::DeleteResponse* response);
  grpc::Status Get(const v1::GetRequest& request, v1::GetResponse* response);
  grpc::Status List(const v1::ListRequest& request, v1::ListResponse* response);
  grpc::Status CreateCollection(const v1::CreateCollectionRequest& request,
                                v1::Collection* response);
  grpc::Status ListCollections(const v1::ListCollectionsRequest& request,
                               v1::ListCollectionsResponse* response);
  grpc::Status DescribeCollection(const v1::DescribeCollectionRequest& request,
                                  v1::Collection* response);
  grpc::Status DropCollection(const v1::DropCollectionRequest& request,
                              v1::DropCollectionResponse* response);
  grpc::Status GetClusterStatus(const v1::GetClusterStatusRequest& request,
                                v1::ClusterStatus* response);

  // CheckHealth: the standard grpc.health.v1 Check of `service` ("" is the whole server), with
  // the per-call deadline. OK with response->status() SERVING, NOT_SERVING (retrace-server while
  // it loads its models, and while draining at shutdown) or UNKNOWN; NOT_FOUND for a service
  // the server does not know; UNAVAILABLE when unreachable. REQUIRES: response != nullptr.
  grpc::Status CheckHealth(const std::string& service,
                           grpc::health::v1::HealthCheckResponse* response);

  // IndexItems: streams `items` to `collection` over one Index stream, in requests of at most
  // `batch_size` items (fewer where a request would pass options.max_message_bytes), keeping up
  // to options.index_requests_in_flight requests unacknowledged. Calls `on_result` once per
  // item, in item order, as acknowledgements arrive. An item that cannot be sent (id, caption
  // or attribute not valid UTF-8; an item bigger than a message) is not sent and gets a local
  // INVALID_ARGUMENT result. Returns the stream's final status: OK when every request was
  // answered (items may still have failed: see their results), else the stream's error, e.g.
  // NOT_FOUND (collection) or UNAVAILABLE; results already delivered stand. No items: OK, no
  // call. REQUIRES: batch_size >= 1. When `position` is given, it is raised to the highest
  // IndexResponse.position received: a read with that min_position sees every item indexed.
  grpc::Status IndexItems(const std::string& collection, std::vector<v1::Item> items,
                          int batch_size, const IndexResultCallback& on_result,
                          int64_t* position = nullptr);

  // IndexItems: as above, with items pulled from `next_item` as the stream has room for them,
  // so a caller never holds more than a few batches in memory. `next_item` runs on a writer
  // thread that this call starts and joins; it is not called again after it returns nullopt or
  // after the stream fails. `on_result` is called serially (never concurrently), from this
  // thread or the writer thread; every call to either callback has returned when this returns.
  grpc::Status IndexItems(const std::string& collection, const ItemSource& next_item,
                          int batch_size, const IndexResultCallback& on_result,
                          int64_t* position = nullptr);

  // stub: the underlying stub, for calls this class does not wrap. Owned by this client; valid
  // for its lifetime. Calls made through it get no deadline unless the caller sets one.
  v1::Retrace::Stub* stub() { return stub_.get(); }

  // options: the options this client was made with.
  const ClientOptions& options() const { return options_; }

 private:
  RetraceClient(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel);

  // PrepareContext: applies `deadline` (zero: none), the bearer token and the request id to a
  // call's context. The token travels as plain metadata rather than as gRPC call credentials,
  // which gRPC refuses to send over plaintext; plaintext is meant for loopback only.
  void PrepareContext(grpc::ClientContext* context, std::chrono::milliseconds deadline) const;

  // Unary makes one unary call with the per-call deadline and whatever PrepareContext adds.
  template <typename Request, typename Response>
  grpc::Status Unary(grpc::Status (v1::Retrace::Stub::*method)(grpc::ClientContext*,
                                                               const Request&, Response*),
                     const Request& request, Response* response) {
    grpc::ClientContext context;
    PrepareContext(&context, options_.timeout);
    return (stub_.get()->*method)(&context, request, response);
  }

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
};

}  // namespace retrace::client

#endif  // RETRACE_CLIENT_RETRACE_CLIENT_H_
