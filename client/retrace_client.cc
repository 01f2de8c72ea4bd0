#include "client/retrace_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <deque>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "core/common/utf8.h"

namespace retrace::client {
namespace {

// Room kept in each IndexRequest for the collection name and the framing of repeated items.
constexpr int64_t kRequestOverheadBytes = 4096;
constexpr int64_t kItemFramingBytes = 16;

// CheckItem: why `item` cannot be sent in a message of at most `max_bytes`, or "" if it can.
std::string CheckItem(const v1::Item& item, int64_t max_bytes) {
  if (!IsValidUtf8(item.id())) return "id: not valid UTF-8";
  if (!IsValidUtf8(item.caption())) return "caption: not valid UTF-8";
  for (const auto& [key, value] : item.attributes()) {
    if (!IsValidUtf8(key) || !IsValidUtf8(value)) return "attributes: not valid UTF-8";
  }
  const int64_t bytes = static_cast<int64_t>(item.ByteSizeLong());
  if (bytes > max_bytes) {
    return absl::StrCat("image: the item is ", bytes, " bytes, over the client's limit of ",
                        max_bytes, " per message");
  }
  return "";
}

// IndexStream: the state shared by the writer thread and the reading thread of one Index call.
// `pending` holds, in item order, one entry per request sent and not yet answered and one per
// locally failed item whose result waits behind such requests, so results keep item order.
struct IndexStream {
  struct Entry {
    bool is_request = false;
    v1::IndexResult local_result;  // when !is_request
  };

  explicit IndexStream(int window) : window(window) {}

  // HasRoom: whether the writer may send another request (or must stop: `done`).
  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return done || requests_in_flight < window;
  }

  const int window;  // ClientOptions::index_requests_in_flight
  absl::Mutex mu;
  std::deque<Entry> pending ABSL_GUARDED_BY(mu);
  int requests_in_flight ABSL_GUARDED_BY(mu) = 0;
  bool done ABSL_GUARDED_BY(mu) = false;  // the reader has seen the end of the stream

  // DeliverLocalResults: passes on the local results at the front of `pending`. Results are
  // delivered with `mu` held, which is what makes `on_result` calls serial.
  void DeliverLocalResults(const IndexResultCallback& on_result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (!pending.empty() && !pending.front().is_request) {
      on_result(pending.front().local_result);
      pending.pop_front();
    }
  }
};

// BalancedTarget: for "A,B,C", one gRPC target that lists every replica's address (names
// resolved here: gRPC's ipv4:/ipv6: schemes take addresses only), for round_robin. A single
// server is returned as given. A name that does not resolve is left out; if none resolves the
// target is the list as given, which fails on the first call with UNAVAILABLE.
std::string BalancedTarget(const std::string& servers, std::string* first_host) {
  std::vector<std::string> parts = absl::StrSplit(servers, ',', absl::SkipWhitespace());
  if (parts.size() <= 1) return servers;
  std::vector<std::string> v4, v6;
  for (std::string part : parts) {
    part = std::string(absl::StripAsciiWhitespace(part));
    const size_t colon = part.rfind(':');
    if (colon == std::string::npos) continue;
    std::string host = part.substr(0, colon);
    const std::string port = part.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    if (first_host->empty()) *first_host = host;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) continue;
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      if (a->ai_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, text,
                  sizeof text);
        v4.push_back(absl::StrCat(text, ":", port));
        break;
      }
      if (a->ai_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, text,
                  sizeof text);
        v6.push_back(absl::StrCat("[", text, "]:", port));
        break;
      }
    }
    freeaddrinfo(found);
  }
  if (!v4.empty()) return absl::StrCat("ipv4:", absl::StrJoin(v4, ","));
  if (!v6.empty()) return absl::StrCat("ipv6:", absl::StrJoin(v6, ","));
  return servers;
}

}  // namespace

std::unique_ptr<RetraceClient> RetraceClient::Connect(const ClientOptions& options) {
  grpc::ChannelArguments args;
  const int max_bytes = static_cast<int>(std::min<int64_t>(options.max_message_bytes, INT32_MAX));
  args.SetMaxReceiveMessageSize(max_bytes);
  args.SetMaxSendMessageSize(max_bytes);
  std::string first_host;
  const std::string target = BalancedTarget(options.server, &first_host);
  if (target != options.server) args.SetLoadBalancingPolicyName("round_robin");
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs;
    ssl.pem_private_key = options.tls_client_key;
    ssl.pem_cert_chain = options.tls_client_cert;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    } else if (target != options.server) {
      // Addresses replace the names: check the certificate against the first server's name.
      args.SetSslTargetNameOverride(first_host);
    }
  }
  auto channel = grpc::CreateCustomChannel(target, credentials, args);
  return std::unique_ptr<RetraceClient>(new RetraceClient(options, std::move(channel)));
}

RetraceClient::RetraceClient(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel)
    : options_(options), channel_(std::move(channel)), stub_(v1::Retrace::NewStub(channel_)) {}

void RetraceClient::PrepareContext(grpc::ClientContext* context,
                                   std::chrono::milliseconds deadline) const {
  if (deadline.count() > 0) context->set_deadline(std::chrono::system_clock::now() + deadline);
  if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
  if (!options_.request_id.empty()) context->AddMetadata("x-request-id", options_.request_id);
}

grpc::Status RetraceClient::CheckHealth(const std::string& service,
                                        grpc::health::v1::HealthCheckResponse* response) {
  grpc::ClientContext context;
  PrepareContext(&context, options_.timeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  return grpc::health::v1::Health::NewStub(channel_)->Check(&context, request, response);
}

grpc::Status RetraceClient::Caption(const v1::CaptionRequest& request,
                                    v1::CaptionResponse* response) {
  return Unary(&v1::Retrace::Stub::Caption, request, response);
}

grpc::Status RetraceClient::Search(const v1::SearchRequest& request, v1::SearchResponse* response) {
  return Unary(&v1::Retrace::Stub::Search, request, response);
}

grpc::Status RetraceClient::SearchBatch(const v1::SearchBatchRequest& request,
                                        v1::SearchBatchResponse* response) {
  return Unary(&v1::Retrace::Stub::SearchBatch, request, response);
}

grpc::Status RetraceClient::Delete(const v1::DeleteRequest& request, v1::DeleteResponse* response) {
  return Unary(&v1::Retrace::Stub::Delete, request, response);
}

grpc::Status RetraceClient::Get(const v1::GetRequest& request, v1::GetResponse* response) {
  return Unary(&v1::Retrace::Stub::Get, request, response);
}

grpc::Status RetraceClient::List(const v1::ListRequest& request, v1::ListResponse* response) {
  return Unary(&v1::Retrace::Stub::List, request, response);
}

grpc::Status RetraceClient::CreateCollection(const v1::CreateCollectionRequest& request,
                                             v1::Collection* response) {
  return Unary(&v1::Retrace::Stub::CreateCollection, request, response);
}

grpc::Status RetraceClient::ListCollections(const v1::ListCollectionsRequest& request,
                                            v1::ListCollectionsResponse* response) {
  return Unary(&v1::Retrace::Stub::ListCollections, request, response);
}

grpc::Status RetraceClient::DescribeCollection(const v1::DescribeCollectionRequest& request,
                                               v1::Collection* response) {
  return Unary(&v1::Retrace::Stub::DescribeCollection, request, response);
}

grpc::Status RetraceClient::DropCollection(const v1::DropCollectionRequest& request,
                                           v1::DropCollectionResponse* response) {
  return Unary(&v1::Retrace::Stub::DropCollection, request, response);
}

grpc::Status RetraceClient::GetClusterStatus(const v1::GetClusterStatusRequest& request,
                                             v1::ClusterStatus* response) {
  return Unary(&v1::Retrace::Stub::GetClusterStatus, request, response);
}

grpc::Status RetraceClient::IndexItems(const std::string& collection, std::vector<v1::Item> items,
                                       int batch_size, const IndexResultCallback& on_result,
                                       int64_t* position) {
  size_t next = 0;
  ItemSource source = [&]() -> std::optional<v1::Item> {
    if (next == items.size()) return std::nullopt;
    return std::move(items[next++]);
  };
  return IndexItems(collection, source, batch_size, on_result, position);
}

grpc::Status RetraceClient::IndexItems(const std::string& collection, const ItemSource& next_item,
                                       int batch_size, const IndexResultCallback& on_result,
                                       int64_t* position) {
  // The first item is pulled here so that an empty source makes no call at all.
  std::optional<v1::Item> first = next_item();
  if (!first) return grpc::Status::OK;

  const int64_t max_request_bytes =
      std::max<int64_t>(options_.max_message_bytes - kRequestOverheadBytes, 1);
  grpc::ClientContext context;
  PrepareContext(&context, options_.index_timeout);
  std::unique_ptr<grpc::ClientReaderWriter<v1::IndexRequest, v1::IndexResponse>> stream =
      stub_->Index(&context);
  IndexStream state(std::max(1, options_.index_requests_in_flight));

  // The writer fills requests from the source and sends each once the window has room. A local
  // failure first sends the request being filled, so that results keep item order.
  std::thread writer([&] {
    v1::IndexRequest request;
    request.set_collection(collection);
    int64_t request_bytes = 0;
    auto send = [&]() -> bool {  // false: the stream is over, stop
      {
        absl::MutexLock lock(&state.mu, absl::Condition(&state, &IndexStream::HasRoom));
        if (state.done) return false;
        state.pending.push_back({true, {}});
        ++state.requests_in_flight;
      }
      const bool sent = stream->Write(request);
      request.clear_items();
      request_bytes = 0;
      return sent;
    };
    std::optional<v1::Item> item = std::move(first);
    for (; item; item = next_item()) {
      const std::string problem = CheckItem(*item, max_request_bytes);
      if (!problem.empty()) {
        if (request.items_size() > 0 && !send()) return;
        v1::IndexResult result;
        result.set_id(item->id());
        result.mutable_status()->set_code(grpc::StatusCode::INVALID_ARGUMENT);
        result.mutable_status()->set_message(problem);
        absl::MutexLock lock(&state.mu);
        state.pending.push_back({false, std::move(result)});
        state.DeliverLocalResults(on_result);
        continue;
      }
      const int64_t bytes = static_cast<int64_t>(item->ByteSizeLong()) + kItemFramingBytes;
      if (request.items_size() > 0 &&
          (request.items_size() >= batch_size || request_bytes + bytes > max_request_bytes) &&
          !send()) {
        return;
      }
      *request.add_items() = std::move(*item);
      request_bytes += bytes;
    }
    if (request.items_size() > 0 && !send()) return;
    stream->WritesDone();
  });

  // The reader (this thread) hands each response's results on and opens the window.
  grpc::Status protocol_error;
  v1::IndexResponse response;
  while (stream->Read(&response)) {
    absl::MutexLock lock(&state.mu);
    if (state.pending.empty() || !state.pending.front().is_request) {
      protocol_error = grpc::Status(grpc::StatusCode::INTERNAL,
                                    "Index: the server sent more responses than requests");
      context.TryCancel();
      break;
    }
    state.pending.pop_front();
    --state.requests_in_flight;
    if (position != nullptr) *position = std::max(*position, response.position());
    for (const v1::IndexResult& result : response.results()) on_result(result);
    state.DeliverLocalResults(on_result);
  }
  {
    absl::MutexLock lock(&state.mu);
    state.done = true;
  }
  writer.join();
  grpc::Status status = stream->Finish();

  // Local results still queued sit behind requests that were never answered; they are final.
  absl::MutexLock lock(&state.mu);
  int unanswered = 0;
  for (IndexStream::Entry& entry : state.pending) {
    if (entry.is_request) {
      ++unanswered;
    } else {
      on_result(entry.local_result);
    }
  }
  if (!protocol_error.ok()) return protocol_error;
  if (status.ok() && unanswered > 0) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("Index: the server ended the stream with ", unanswered,
                                     " requests unanswered"));
  }
  return status;
}

}  // namespace retrace::client
