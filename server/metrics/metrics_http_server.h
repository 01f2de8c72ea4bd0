// metrics_http_server.h — serves a Registry at GET /metrics for Prometheus to scrape, on its
// own threads, apart from the gRPC port.
//
// Paths: /metrics (the registry's Render, text format 0.0.4); /readyz when Options::ready is
// set (200 "ok" or 503 "not ready", for a Kubernetes readiness probe); 404 for anything else.
// cpp-httplib does the HTTP; its header stays inside the .cc.
//
// Thread-safety: port() is safe from any thread; Stop may be called from any thread, more than
// once, and concurrently.
//
//   RETRACE_ASSIGN_OR_RETURN(auto http, MetricsHttpServer::Start("0.0.0.0:9090", &registry));
//   http->Stop();  // or let the destructor stop it
#ifndef RETRACE_SERVER_METRICS_METRICS_HTTP_SERVER_H_
#define RETRACE_SERVER_METRICS_METRICS_HTTP_SERVER_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/metrics/metrics_registry.h"

namespace retrace::metrics {

class MetricsHttpServer {
 public:
  struct Options {
    // ready, when set, is served at /readyz: true gives 200 "ok", false 503 "not ready". It runs
    // on an HTTP worker thread and must be thread-safe. Default: unset, /readyz is a 404.
    std::function<bool()> ready;
  };

  // Start listens on `address`, "host:port" ("0.0.0.0:9090", "127.0.0.1:0", "[::]:9090"; port 0
  // picks a free port, see port()), and serves until Stop. `registry` must outlive the server.
  //
  // Errors: InvalidArgument when the address is malformed, the host does not resolve or is not
  // an address of this machine; Unavailable when the port cannot be bound (already in use);
  // PermissionDenied when binding is not allowed (a port below 1024). Messages name the
  // address.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(absl::string_view address,
                                                                  const Registry* registry,
                                                                  Options options = {});

  // The destructor stops the server (see Stop).
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // port returns the port listened on (the picked one when Start was given port 0).
  int port() const;

  // Stop closes the listening socket, lets requests in progress finish and joins the server's
  // threads. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit MetricsHttpServer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace retrace::metrics

#endif  // RETRACE_SERVER_METRICS_METRICS_HTTP_SERVER_H_
