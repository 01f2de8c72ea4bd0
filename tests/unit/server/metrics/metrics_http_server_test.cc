// The /metrics endpoint over real HTTP on 127.0.0.1: content, paths, address errors, Stop.
#include "server/metrics/metrics_http_server.h"

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace retrace::metrics {
namespace {

std::unique_ptr<MetricsHttpServer> StartOrDie(const Registry& registry,
                                              MetricsHttpServer::Options options = {}) {
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::Start("127.0.0.1:0", &registry, std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

TEST(MetricsHttpServerTest, ServesTheRegistryAtMetrics) {
  Registry registry;
  CounterFamily* rpcs = *registry.AddCounter("rpcs_total", "RPCs \"handled\".", {"method"});
  ASSERT_TRUE(registry.AddHistogram("latency_seconds", "L.", {}, LatencyBucketsSeconds()).ok());
  rpcs->WithLabels({"Search"}).Increment(7);
  std::unique_ptr<MetricsHttpServer> server = StartOrDie(registry);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);

  httplib::Client client("127.0.0.1", server->port());
  httplib::Result result = client.Get("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(result->body, registry.Render());
  EXPECT_TRUE(absl::StrContains(result->body, "rpcs_total{method=\"Search\"} 7\n"));

  // Each scrape renders afresh.
  rpcs->WithLabels({"Search"}).Increment();
  result = client.Get("/metrics");
  ASSERT_TRUE(result);
  EXPECT_TRUE(absl::StrContains(result->body, "rpcs_total{method=\"Search\"} 8\n"));
}

TEST(MetricsHttpServerTest, OtherPathsAre404) {
  Registry registry;
  std::unique_ptr<MetricsHttpServer> server = StartOrDie(registry);
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  for (const char* path : {"/", "/metrics/x", "/metricsx", "/readyz"}) {
    httplib::Result result = client.Get(path);
    ASSERT_TRUE(result) << path;
    EXPECT_EQ(result->status, 404) << path;
  }
}

TEST(MetricsHttpServerTest, ReadyzFollowsTheCallback) {
  Registry registry;
  std::atomic<bool> ready{false};
  MetricsHttpServer::Options options;
  options.ready = [&ready] { return ready.load(); };
  std::unique_ptr<MetricsHttpServer> server = StartOrDie(registry, std::move(options));
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  httplib::Result result = client.Get("/readyz");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 503);
  EXPECT_EQ(result->body, "not ready\n");
  ready = true;
  result = client.Get("/readyz");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "ok\n");
}

TEST(MetricsHttpServerTest, SecondServerOnTheSamePortFailsNamingTheAddress) {
  Registry registry;
  std::unique_ptr<MetricsHttpServer> first = StartOrDie(registry);
  ASSERT_NE(first, nullptr);
  const std::string address = absl::StrCat("127.0.0.1:", first->port());
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> second =
      MetricsHttpServer::Start(address, &registry);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_TRUE(absl::StrContains(second.status().message(), address)) << second.status();
  EXPECT_TRUE(absl::StrContains(second.status().message(), "in use")) << second.status();

  // The first one still serves.
  httplib::Client client("127.0.0.1", first->port());
  httplib::Result result = client.Get("/metrics");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
}

TEST(MetricsHttpServerTest, BadAddressesAreInvalidArgument) {
  Registry registry;
  for (const char* address :
       {"", "9090", "127.0.0.1", "127.0.0.1:", ":9090", "127.0.0.1:x", "127.0.0.1:-1",
        "127.0.0.1:65536", "::1:9090", "no-such-host.invalid:9090", "192.0.2.1:0"}) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start(address, &registry);
    ASSERT_FALSE(server.ok()) << address;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument)
        << address << ": " << server.status();
    EXPECT_TRUE(absl::StrContains(server.status().message(), address)) << server.status();
  }
}

TEST(MetricsHttpServerTest, ListensOnIpv6Loopback) {
  Registry registry;
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::Start("[::1]:0", &registry);
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << server.status();
  httplib::Client client("::1", (*server)->port());
  httplib::Result result = client.Get("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
}

TEST(MetricsHttpServerTest, StopIsIdempotentAndClosesThePort) {
  Registry registry;
  std::unique_ptr<MetricsHttpServer> server = StartOrDie(registry);
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  server->Stop();
  server->Stop();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  EXPECT_FALSE(client.Get("/metrics"));
  // The port is free again: a new server can take it.
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> again =
      MetricsHttpServer::Start(absl::StrCat("127.0.0.1:", port), &registry);
  EXPECT_TRUE(again.ok()) << again.status();
  server.reset();  // the destructor after Stop is fine too
}

TEST(MetricsHttpServerTest, StopRightAfterStartReturns) {
  Registry registry;
  for (int i = 0; i < 20; ++i) {
    std::unique_ptr<MetricsHttpServer> server = StartOrDie(registry);
    ASSERT_NE(server, nullptr);
  }  // each destructor stops its server at once
}

}  // namespace
}  // namespace retrace::metrics
