#include "server/http/http_api.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/common/status_macros.h"
#include "retrace/v1/index_wire.pb.h"
#include "retrace/v1/retrace.pb.h"
#include "server/http/api_routes.h"
#include "server/logging.h"
#include "server/rpc_handlers.h"
#include "server/status_mapping.h"
#include "server/web/web_assets.h"

namespace retrace::http {
namespace {

using server::CallGate;
using server::CallMeta;
using server::Principal;
using server::RpcSpec;

constexpr char kJson[] = "application/json";
constexpr char kJsonLines[] = "application/x-ndjson";
// The longest deadline a client may ask for with X-Server-Timeout.
constexpr double kMaxTimeoutSeconds = 24 * 3600;

// PathPattern: the route's OpenAPI template as the regex httplib matches ("{name}" → a group).
std::string PathPattern(const std::string& path) {
  std::string pattern;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty()) continue;
    const bool parameter = part.size() > 2 && part.front() == '{' && part.back() == '}';
    absl::StrAppend(&pattern, "/", parameter ? "([^/]+)" : std::string(part));
  }
  if (pattern.empty()) pattern = "/";
  return absl::StrReplaceAll(pattern, {{".", "\\."}});
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  // Zeros are answers too (a caption rank of 0 is the best rank): print every field.
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

absl::Status FromJson(absl::string_view text, google::protobuf::Message* message,
                      absl::string_view what) {
  if (absl::StripAsciiWhitespace(text).empty()) return absl::OkStatus();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), message, options);
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " is not a valid ",
                                                 message->GetDescriptor()->full_name(), ": ",
                                                 std::string(status.message())));
}

std::string ErrorJson(const absl::Status& status) {
  return absl::StrCat(R"({"error":{"code":)", server::HttpStatusOf(status.code()),
                      R"(,"status":")", server::StatusCodeName(static_cast<grpc::StatusCode>(status.code())),
                      R"(","message":")",
                      server::JsonEscape(std::string_view(status.message().data(),
                                                          status.message().size())),
                      "\"}}");
}

void WriteError(const absl::Status& status, httplib::Response& out) {
  out.status = server::HttpStatusOf(status.code());
  out.set_content(ErrorJson(status), kJson);
}

// Meta: what admission needs of an HTTP request; a bad X-Server-Timeout is an error.
absl::StatusOr<CallMeta> Meta(const httplib::Request& in) {
  CallMeta meta;
  if (auto it = in.headers.find("Authorization"); it != in.headers.end()) {
    meta.authorization = it->second;
  }
  if (auto it = in.headers.find("X-Request-Id"); it != in.headers.end()) {
    meta.client_request_id = it->second;
  }
  if (auto it = in.headers.find("X-Server-Timeout"); it != in.headers.end()) {
    double seconds = 0;
    if (!absl::SimpleAtod(it->second, &seconds) || !std::isfinite(seconds) || seconds <= 0 ||
        seconds > kMaxTimeoutSeconds) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header X-Server-Timeout: \"", it->second.substr(0, 32),
          "\" is not a number of seconds in (0, ", kMaxTimeoutSeconds, "]"));
    }
    meta.deadline = std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::duration<double>(seconds));
  }
  return meta;
}

// MinPosition: ?min_position=N.
absl::Status MinPosition(const httplib::Request& in, int64_t* out) {
  for (const auto& [key, value] : in.params) {
    if (key != "min_position") {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter \"", key.substr(0, 64), "\" is not known; this route "
                       "takes min_position"));
    }
    if (!absl::SimpleAtoi(value, out) || *out < 0) {
      return absl::InvalidArgumentError(
          "query parameter min_position: expected a store position, an integer >= 0");
    }
  }
  return absl::OkStatus();
}

// Body parses a JSON body, or a multipart one whose files named `files_field` fill that bytes
// field and whose `request` part holds the rest in JSON.
absl::Status Body(const httplib::Request& in, const char* files_field,
                  google::protobuf::Message* message) {
  if (!in.is_multipart_form_data()) return FromJson(in.body, message, "the JSON body");
  if (files_field == nullptr) {
    return absl::InvalidArgumentError("this route takes a JSON body, not multipart/form-data");
  }
  for (const auto& [name, part] : in.files) {
    if (name != "request" && name != files_field) {
      return absl::InvalidArgumentError(absl::StrCat(
          "multipart part \"", name.substr(0, 64), "\" is not known; expected \"", files_field,
          "\" and optionally \"request\""));
    }
  }
  if (auto it = in.files.find("request"); it != in.files.end()) {
    RETRACE_RETURN_IF_ERROR(FromJson(it->second.content, message, "multipart part \"request\""));
  }
  const auto* field = message->GetDescriptor()->FindFieldByName(files_field);
  const auto* reflection = message->GetReflection();
  auto [first, last] = in.files.equal_range(files_field);
  for (auto it = first; it != last; ++it) {
    if (field->is_repeated()) {
      reflection->AddString(message, field, it->second.content);
    } else {
      reflection->SetString(message, field, it->second.content);
    }
  }
  return absl::OkStatus();
}

template <typename Request, typename Response>
using Handler = absl::Status (*)(engine::Engine&, const Principal&, const engine::CallOptions&,
                                 const Request&, Response*);

class Api {
 public:
  explicit Api(CallGate* gate) : gate_(gate) {}

  void Register(httplib::Server& server) {
    for (const RouteDoc& route : ApiRoutes()) {
      auto serve = [this, &route](const httplib::Request& in, httplib::Response& out) {
        Serve(route, in, out);
      };
      const std::string pattern = PathPattern(route.path);
      const std::string method = route.method;
      if (method == "GET") {
        server.Get(pattern, serve);
      } else if (method == "POST") {
        server.Post(pattern, serve);
      } else {
        server.Delete(pattern, serve);
      }
    }
    // Unknown routes and methods answer JSON too.
    server.set_error_handler([](const httplib::Request& in, httplib::Response& out) {
      if (!out.body.empty()) return;
      const std::string what = absl::StrCat(in.method, " ", in.path.substr(0, 256));
      absl::Status status;
      switch (out.status) {
        case 404:
          status = absl::NotFoundError(absl::StrCat(
              "no route ", what, "; the routes are listed at /v1/openapi.json"));
          break;
        case 413:
          status = absl::InvalidArgumentError(
              "the body is larger than limits.max_message_bytes");
          break;
        default:
          status = absl::InvalidArgumentError(absl::StrCat("cannot serve ", what));
      }
      const int code = out.status;
      WriteError(status, out);
      out.status = code;
    });
  }

 private:
  void Serve(const RouteDoc& route, const httplib::Request& in, httplib::Response& out) {
    const std::string param = in.matches.size() > 1 ? std::string(in.matches[1]) : "";
    switch (route.id) {
      case RouteId::kPage:
        return Asset("index.html", out);
      case RouteId::kPageAsset:
        return Asset(param, out);
      case RouteId::kOpenApi:
        return out.set_content(OpenApiDocument(), kJson);
      case RouteId::kHealth:
        return Health(out);
      case RouteId::kListCollections:
        return Unary<v1::ListCollectionsRequest, v1::ListCollectionsResponse>(
            route, server::kListCollectionsRpc, in, out, &server::HandleListCollections,
            [](const httplib::Request& in, v1::ListCollectionsRequest* r) {
              int64_t position = 0;
              RETRACE_RETURN_IF_ERROR(MinPosition(in, &position));
              r->set_min_position(position);
              return absl::OkStatus();
            },
            [](const v1::ListCollectionsRequest&) { return std::string(); });
      case RouteId::kCreateCollection:
        return Unary<v1::CreateCollectionRequest, v1::Collection>(
            route, server::kCreateCollectionRpc, in, out, &server::HandleCreateCollection,
            [](const httplib::Request& in, v1::CreateCollectionRequest* r) {
              return Body(in, nullptr, r);
            },
            [](const v1::CreateCollectionRequest& r) { return r.collection().name(); });
      case RouteId::kDescribeCollection:
        return Unary<v1::DescribeCollectionRequest, v1::Collection>(
            route, server::kDescribeCollectionRpc, in, out, &server::HandleDescribeCollection,
            [&param](const httplib::Request& in, v1::DescribeCollectionRequest* r) {
              int64_t position = 0;
              RETRACE_RETURN_IF_ERROR(MinPosition(in, &position));
              r->set_min_position(position);
              r->set_name(param);
              return absl::OkStatus();
            },
            [](const v1::DescribeCollectionRequest& r) { return r.name(); });
      case RouteId::kDropCollection:
        return Unary<v1::DropCollectionRequest, v1::DropCollectionResponse>(
            route, server::kDropCollectionRpc, in, out, &server::HandleDropCollection,
            [&param](const httplib::Request&, v1::DropCollectionRequest* r) {
              r->set_name(param);
              return absl::OkStatus();
            },
            [](const v1::DropCollectionRequest& r) { return r.name(); });
      case RouteId::kCaption:
        return Unary<v1::CaptionRequest, v1::CaptionResponse>(
            route, server::kCaptionRpc, in, out, &server::HandleCaption,
            [&route](const httplib::Request& in, v1::CaptionRequest* r) {
              return Body(in, route.files_field, r);
            },
            [](const v1::CaptionRequest&) { return std::string(); });
      case RouteId::kIndex:
        return Index(param, in, out);
      case RouteId::kSearch:
        return Unary<v1::SearchRequest, v1::SearchResponse>(
            route, server::kSearchRpc, in, out, &server::HandleSearch,
            [&route, &param](const httplib::Request& in, v1::SearchRequest* r) {
              RETRACE_RETURN_IF_ERROR(Body(in, route.files_field, r));
              return InPath(param, r->mutable_collection());
            },
            [](const v1::SearchRequest& r) { return r.collection(); });
      case RouteId::kSearchBatch:
        return Unary<v1::SearchBatchRequest, v1::SearchBatchResponse>(
            route, server::kSearchBatchRpc, in, out, &server::HandleSearchBatch,
            [](const httplib::Request& in, v1::SearchBatchRequest* r) {
              return Body(in, nullptr, r);
            },
            [](const v1::SearchBatchRequest&) { return std::string(); });
      case RouteId::kGet:
        return Unary<v1::GetRequest, v1::GetResponse>(
            route, server::kGetRpc, in, out, &server::HandleGet,
            [&param](const httplib::Request& in, v1::GetRequest* r) {
              RETRACE_RETURN_IF_ERROR(Body(in, nullptr, r));
              return InPath(param, r->mutable_collection());
            },
            [](const v1::GetRequest& r) { return r.collection(); });
      case RouteId::kThumbnail:
        return Thumbnail(param, in, out);
      case RouteId::kList:
        return Unary<v1::ListRequest, v1::ListResponse>(
            route, server::kListRpc, in, out, &server::HandleList,
            [&param](const httplib::Request& in, v1::ListRequest* r) {
              RETRACE_RETURN_IF_ERROR(Body(in, nullptr, r));
              return InPath(param, r->mutable_collection());
            },
            [](const v1::ListRequest& r) { return r.collection(); });
      case RouteId::kDelete:
        return Unary<v1::DeleteRequest, v1::DeleteResponse>(
            route, server::kDeleteRpc, in, out, &server::HandleDelete,
            [&param](const httplib::Request& in, v1::DeleteRequest* r) {
              RETRACE_RETURN_IF_ERROR(Body(in, nullptr, r));
              return InPath(param, r->mutable_collection());
            },
            [](const v1::DeleteRequest& r) { return r.collection(); });
      case RouteId::kClusterStatus:
        return Unary<v1::GetClusterStatusRequest, v1::ClusterStatus>(
            route, server::kGetClusterStatusRpc, in, out, &server::HandleGetClusterStatus,
            [](const httplib::Request&, v1::GetClusterStatusRequest*) { return absl::OkStatus(); },
            [](const v1::GetClusterStatusRequest&) { return std::string(); });
    }
  }

  // InPath: the collection named by the path; a body that names another one is an error.
  static absl::Status InPath(const std::string& name, std::string* collection) {
    if (!collection->empty() && *collection != name) {
      return absl::InvalidArgumentError(
          absl::StrCat("collection: the body names \"", collection->substr(0, 64),
                       "\" but the path names \"", name.substr(0, 64), "\""));
    }
    *collection = name;
    return absl::OkStatus();
  }

  static void Asset(const std::string& name, httplib::Response& out) {
    const web::WebAsset* asset = web::FindWebAsset(name);
    if (asset == nullptr) {
      return WriteError(absl::NotFoundError(absl::StrCat("no file \"", name.substr(0, 64),
                                                         "\" in the web page")),
                        out);
    }
    out.set_header("Cache-Control", "no-cache");
    out.set_header("X-Content-Type-Options", "nosniff");
    out.set_content(asset->bytes.data(), asset->bytes.size(), std::string(asset->content_type));
  }

  void Health(httplib::Response& out) const {
    engine::Engine* engine = gate_->engine();
    const bool serving = engine != nullptr && engine->Ready();
    out.status = serving ? 200 : 503;
    out.set_content(serving ? R"({"status":"SERVING"})" : R"({"status":"NOT_SERVING"})", kJson);
  }

  // Unary serves one RPC and answers its response in JSON (see Call).
  template <typename Request, typename Response, typename Build, typename Collection>
  void Unary(const RouteDoc&, const RpcSpec& rpc, const httplib::Request& in,
             httplib::Response& out, Handler<Request, Response> handler, Build build,
             Collection collection) {
    Response response;
    const absl::Status status = Call(rpc, in, out, handler, build, collection, &response);
    if (!status.ok()) return WriteError(status, out);
    out.set_content(ToJson(response), kJson);
  }

  // Thumbnail answers an item's JPEG: Get with include_thumbnails.
  void Thumbnail(const std::string& collection, const httplib::Request& in,
                 httplib::Response& out) {
    v1::GetResponse response;
    absl::Status status = Call(
        server::kGetRpc, in, out, &server::HandleGet,
        [&collection](const httplib::Request& in, v1::GetRequest* r) {
          const std::string id = in.get_param_value("id");
          for (const auto& [key, value] : in.params) {
            if (key != "id") {
              return absl::InvalidArgumentError(absl::StrCat(
                  "query parameter \"", key.substr(0, 64), "\" is not known; this route takes id"));
            }
          }
          if (id.empty()) return absl::InvalidArgumentError("query parameter id: required");
          r->set_collection(collection);
          r->add_ids(id);
          r->set_include_thumbnails(true);
          return absl::OkStatus();
        },
        [](const v1::GetRequest& r) { return r.collection(); }, &response);
    if (status.ok() && response.results(0).status().code() != 0) {
      status = absl::Status(static_cast<absl::StatusCode>(response.results(0).status().code()),
                            response.results(0).status().message());
    }
    if (status.ok() && response.results(0).item().thumbnail().empty()) {
      status = absl::NotFoundError(absl::StrCat("collection \"", collection.substr(0, 64),
                                                "\" keeps no thumbnails (thumbnail_side)"));
    }
    if (!status.ok()) return WriteError(status, out);
    out.set_header("Cache-Control", "private, no-cache");
    out.set_content(response.results(0).item().thumbnail(), "image/jpeg");
  }

  // Call serves one RPC: its request message from the HTTP request (`build`), admission with
  // the collection it names, the handler on the worker pool. Sets X-Request-Id; records the call.
  template <typename Request, typename Response, typename Build, typename Collection>
  absl::Status Call(const RpcSpec& rpc, const httplib::Request& in, httplib::Response& out,
                    Handler<Request, Response> handler, Build build, Collection collection,
                    Response* response) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<CallMeta> meta = Meta(in);
    const std::string request_id = CallGate::RequestId(meta.ok() ? *meta : CallMeta{});
    out.set_header("X-Request-Id", request_id);
    Request request;
    std::string principal = "-";
    absl::Status status = meta.status();
    if (status.ok()) status = build(in, &request);
    absl::StatusOr<Principal> who =
        status.ok() ? gate_->Admit(*meta, rpc, collection(request)) : status;
    if (who.ok()) {
      principal = who->name;
      status = RunAndWait(rpc, *who, gate_->Deadline(*meta),
                          [&](engine::Engine& engine, const Principal& p,
                              const engine::CallOptions& call) {
                            return handler(engine, p, call, request, response);
                          });
    } else {
      status = who.status();
    }
    gate_->Finished(rpc, status, start, request_id, principal);
    return status;
  }

  // RunAndWait runs `work` through the gate's pool and waits for it: the HTTP thread holds the
  // connection, a worker does the work, under the same queue bound and deadline as gRPC.
  absl::Status RunAndWait(const RpcSpec& rpc, const Principal& who,
                          std::chrono::system_clock::time_point deadline, CallGate::Work work) {
    auto done = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> result = done->get_future();
    gate_->Run(
        rpc, who, deadline, [] { return false; }, std::move(work),
        [done](const absl::Status& status) { done->set_value(status); });
    return result.get();
  }

  // IndexStream: the state of one Index request's JSON Lines, answered line by line.
  struct IndexStream {
    std::string body;
    size_t next = 0;  // the offset of the next line in body
    int requests = 0;
    int64_t items = 0;
    Principal who;
    std::string request_id;
    std::string collection;
    std::chrono::system_clock::time_point deadline;
    bool counted = false;  // holds one of max_index_streams
  };

  // NextLine: the next non-blank line of the body, or nullopt at its end.
  static std::optional<absl::string_view> NextLine(IndexStream& s) {
    while (s.next < s.body.size()) {
      size_t end = s.body.find('\n', s.next);
      if (end == std::string::npos) end = s.body.size();
      absl::string_view line(s.body.data() + s.next, end - s.next);
      s.next = end + 1;
      if (!absl::StripAsciiWhitespace(line).empty()) return line;
    }
    return std::nullopt;
  }

  // IndexLine stores one request line's items and answers its IndexResponse as a JSON line.
  absl::StatusOr<std::string> IndexLine(IndexStream& s, absl::string_view line) {
    const auto start = std::chrono::steady_clock::now();
    const int number = s.requests++;
    absl::Status status;
    v1::IndexResponse response;
    v1::IndexRequest request;
    status = FromJson(line, &request, absl::StrCat("line ", number + 1));
    if (status.ok()) status = InPath(s.collection, request.mutable_collection());
    if (status.ok()) {
      s.items += request.items_size();
      if (s.items > gate_->options().max_items_per_stream) {
        status = absl::ResourceExhaustedError(absl::StrCat(
            "line ", number + 1, ": the request passed ", gate_->options().max_items_per_stream,
            " items (limits.max_items_per_stream); this line was not stored, the earlier ones "
            "were; send the rest in another request"));
      }
    }
    if (status.ok()) {
      // The gRPC path parses requests as the wire-compatible IndexRequestWire (per-item UTF-8
      // checks); the JSON parser checked UTF-8 already, so the bytes round-trip unchanged.
      v1::wire::IndexRequestWire wire;
      wire.ParseFromString(request.SerializeAsString());
      request.Clear();
      status = RunAndWait(server::kIndexRpc, s.who, s.deadline,
                          [&](engine::Engine& engine, const Principal& who,
                              const engine::CallOptions& call) {
                            return server::HandleIndex(engine, who, call, wire, &response);
                          });
    }
    gate_->Finished(server::kIndexRpc, status, start, s.request_id, s.who.name);
    if (!status.ok()) return status;
    return ToJson(response) + "\n";
  }

  void Index(const std::string& collection, const httplib::Request& in, httplib::Response& out) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<CallMeta> meta = Meta(in);
    auto s = std::make_shared<IndexStream>();
    s->request_id = CallGate::RequestId(meta.ok() ? *meta : CallMeta{});
    s->collection = collection;
    out.set_header("X-Request-Id", s->request_id);
    absl::StatusOr<Principal> who = meta.ok() ? gate_->Admit(*meta, server::kIndexRpc, collection)
                                              : absl::StatusOr<Principal>(meta.status());
    if (who.ok()) {
      if (absl::Status open = gate_->OpenIndexStream(); !open.ok()) who = open;
    }
    if (!who.ok()) {
      gate_->Finished(server::kIndexRpc, who.status(), start, s->request_id, "-");
      return WriteError(who.status(), out);
    }
    s->counted = true;
    s->who = std::move(*who);
    // Like a gRPC stream, an Index request has no default deadline (ingest may run long).
    s->deadline = meta->deadline.value_or(std::chrono::system_clock::time_point::max());
    s->body = in.body;
    // The first line is answered before the status line is sent, so a request refused as a
    // whole (unknown collection, bad JSON) gets its HTTP status; later errors end the stream.
    std::optional<absl::string_view> first = NextLine(*s);
    absl::StatusOr<std::string> first_answer =
        first.has_value() ? IndexLine(*s, *first)
                          : absl::InvalidArgumentError(
                                "the body holds no IndexRequest: send JSON Lines, one "
                                "IndexRequest per line");
    if (!first_answer.ok()) {
      gate_->CloseIndexStream();
      return WriteError(first_answer.status(), out);
    }
    auto pending = std::make_shared<std::string>(std::move(*first_answer));
    out.set_chunked_content_provider(
        kJsonLines,
        [this, s, pending](size_t, httplib::DataSink& sink) {
          if (!pending->empty()) {
            if (!sink.write(pending->data(), pending->size())) return false;
            pending->clear();
            return true;
          }
          std::optional<absl::string_view> line = NextLine(*s);
          if (!line.has_value()) {
            sink.done();
            return true;
          }
          absl::StatusOr<std::string> answer = IndexLine(*s, *line);
          const std::string text = answer.ok() ? *answer : ErrorJson(answer.status()) + "\n";
          if (!sink.write(text.data(), text.size())) return false;
          if (!answer.ok()) sink.done();
          return true;
        },
        [this, s](bool) {
          if (s->counted) gate_->CloseIndexStream();
          s->counted = false;
        });
  }

  CallGate* const gate_;
};

}  // namespace

struct HttpApi::Impl {
  std::unique_ptr<Api> api;  // outlives the listener, whose handlers use it
  std::unique_ptr<HttpListener> listener;
};

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(absl::string_view address,
                                                        server::CallGate* gate,
                                                        HttpListener::Options options) {
  auto impl = std::make_unique<Impl>();
  impl->api = std::make_unique<Api>(gate);
  Api* api = impl->api.get();
  auto listener = HttpListener::Start(address, options,
                                      [api](httplib::Server& server) { api->Register(server); });
  if (!listener.ok()) return listener.status();
  impl->listener = std::move(*listener);
  return std::unique_ptr<HttpApi>(new HttpApi(std::move(impl)));
}

HttpApi::HttpApi(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpApi::~HttpApi() { Stop(); }

int HttpApi::port() const { return impl_->listener->port(); }

void HttpApi::Stop() { impl_->listener->Stop(); }

}  // namespace retrace::http
