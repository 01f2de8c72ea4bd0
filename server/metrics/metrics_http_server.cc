#include "server/metrics/metrics_http_server.h"

#include <httplib.h>

#include <string>
#include <utility>

#include "server/http/http_listener.h"

namespace retrace::metrics {
namespace {

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

struct MetricsHttpServer::Impl {
  std::unique_ptr<http::HttpListener> listener;
};

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    absl::string_view address, const Registry* registry, Options options) {
  http::HttpListener::Options listen;
  listen.what = "metrics";
  listen.threads = 2;  // scrapes are small and rare: a scraper and a probe at a time is plenty
  auto routes = [registry, &options](httplib::Server& server) {
    server.Get("/metrics", [registry](const httplib::Request&, httplib::Response& response) {
      response.set_content(registry->Render(), kMetricsContentType);
    });
    if (options.ready) {
      server.Get("/readyz", [ready = std::move(options.ready)](const httplib::Request&,
                                                               httplib::Response& response) {
        if (ready()) {
          response.set_content("ok\n", "text/plain; charset=utf-8");
        } else {
          response.status = 503;
          response.set_content("not ready\n", "text/plain; charset=utf-8");
        }
      });
    }
  };
  auto listener = http::HttpListener::Start(address, listen, routes);
  if (!listener.ok()) return listener.status();
  auto impl = std::make_unique<Impl>();
  impl->listener = std::move(*listener);
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(impl)));
}

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

int MetricsHttpServer::port() const { return impl_->listener->port(); }

void MetricsHttpServer::Stop() { impl_->listener->Stop(); }

}  // namespace retrace::metrics
