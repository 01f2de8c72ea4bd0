// http_api.h — retrace.v1.Retrace over HTTP/JSON, the OpenAPI document that describes it, and
// the web page (server/web/), on one port (--http-listen).
//
// Every RPC is mirrored in protobuf's JSON mapping (field names in lowerCamelCase, bytes as
// base64, 64-bit integers as strings or numbers): POST /v1/collections/{name}/search takes a
// SearchRequest and answers a SearchResponse; images may instead come as multipart/form-data
// files (see OpenApiDocument for the routes). Index takes JSON Lines — one IndexRequest per
// line — and answers JSON Lines, one IndexResponse per request line, each written once its items
// are stored; an error after the first line ends the answer with a line {"error": {...}} (the
// lines before it stay stored).
//
// Admission is the gRPC service's (call_gate.h): `Authorization: Bearer <token>`, scopes and
// collections, the queue bound, the deadline (`X-Server-Timeout: <seconds>`, else the server's
// default), request ids (`X-Request-Id`, echoed), metrics and the call log. Errors answer the
// status status_mapping.h maps the code to, with a body
//   {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "..."}}
// whose message names the field. TLS, when configured, uses the gRPC port's certificates.
//
// Thread-safety: safe for concurrent requests; Stop may be called from any thread.
//
//   RETRACE_ASSIGN_OR_RETURN(auto api, HttpApi::Start("127.0.0.1:8080", &gate, listen_options));
//   api->port();  api->Stop();
#ifndef RETRACE_SERVER_HTTP_HTTP_API_H_
#define RETRACE_SERVER_HTTP_HTTP_API_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/call_gate.h"
#include "server/http/http_listener.h"

namespace retrace::http {

// OpenApiDocument: the OpenAPI 3.0 document of the HTTP/JSON API (served at
// /v1/openapi.json): every route, its RPC (`x-grpc-method`), and the JSON schemas of its messages,
// generated from the same route table the server serves and from the protos' descriptors.
std::string OpenApiDocument();

class HttpApi {
 public:
  // Start serves on `address` (as HttpListener::Start, whose errors it returns) until Stop.
  // `gate` must outlive the API.
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(absl::string_view address,
                                                        server::CallGate* gate,
                                                        HttpListener::Options options);
  ~HttpApi();
  int port() const;
  void Stop();

 private:
  struct Impl;
  explicit HttpApi(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace retrace::http

#endif  // RETRACE_SERVER_HTTP_HTTP_API_H_
