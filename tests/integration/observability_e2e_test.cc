// Observability, end to end against the real server on 127.0.0.1 (demo models): JSON logs whose
// call lines carry request ids (the client's, echoed, or one the server makes), and Prometheus
// metrics counting calls, stages and queues.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

using testing::FixtureDir;
using testing::FreePort;
using testing::NoiseImage;
using testing::ServerProcess;

TEST(ObservabilityTest, JsonLogsCarryRequestIdsAndMetricsCountCallsAndStages) {
  RETRACE_REQUIRE_DEMO_MODELS();
  const int metrics_port = FreePort();
  ServerProcess server({FixtureDir() + "/demo",
                        testing::NewTempDir("observe"),
                        {"--log-format", "json", "--access-log", "--metrics-listen",
                         absl::StrCat("127.0.0.1:", metrics_port)}});
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  auto stub = server.NewStub();

  // The client's request id is echoed; without one the server makes one.
  {
    grpc::ClientContext context;
    context.AddMetadata("x-request-id", "audit-run-42");
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name("c");
    v1::Collection response;
    ASSERT_TRUE(stub->CreateCollection(&context, request, &response).ok());
    auto echoed = context.GetServerInitialMetadata().find("x-request-id");
    ASSERT_NE(echoed, context.GetServerInitialMetadata().end());
    EXPECT_EQ(std::string(echoed->second.data(), echoed->second.size()), "audit-run-42");
  }
  {
    grpc::ClientContext context;
    v1::ListCollectionsResponse response;
    ASSERT_TRUE(stub->ListCollections(&context, {}, &response).ok());
    auto made = context.GetServerInitialMetadata().find("x-request-id");
    ASSERT_NE(made, context.GetServerInitialMetadata().end());
    EXPECT_EQ(made->second.size(), 16u);
  }
  // Two items indexed, one search, one search of a missing collection.
  {
    grpc::ClientContext context;
    auto stream = stub->Index(&context);
    v1::IndexRequest request;
    request.set_collection("c");
    for (int i = 0; i < 2; ++i) {
      v1::Item* item = request.add_items();
      item->set_id(absl::StrCat("item-", i));
      item->set_image(NoiseImage(48, 32, i + 1, ".jpg"));
    }
    stream->Write(request);
    stream->WritesDone();
    v1::IndexResponse response;
    while (stream->Read(&response)) {
    }
    ASSERT_TRUE(stream->Finish().ok());
  }
  for (const char* collection : {"c", "missing"}) {
    grpc::ClientContext context;
    v1::SearchRequest request;
    request.set_collection(collection);
    request.set_image(NoiseImage(48, 32, 9, ".png"));
    v1::SearchResponse response;
    stub->Search(&context, request, &response);
  }

  httplib::Client http("127.0.0.1", metrics_port);
  auto scraped = http.Get("/metrics");
  ASSERT_TRUE(scraped);
  ASSERT_EQ(scraped->status, 200);
  EXPECT_TRUE(absl::StartsWith(scraped->get_header_value("Content-Type"), "text/plain"));
  const std::string& text = scraped->body;
  for (const char* line : {
           "retrace_rpc_calls_total{rpc=\"Search\",code=\"OK\"} 1\n",
           "retrace_rpc_calls_total{rpc=\"Search\",code=\"NOT_FOUND\"} 1\n",
           "retrace_rpc_calls_total{rpc=\"Index\",code=\"OK\"} 1\n",
           "retrace_rpc_calls_total{rpc=\"CreateCollection\",code=\"OK\"} 1\n",
           "retrace_rpc_duration_seconds_count{rpc=\"Search\"} 2\n",
           "retrace_collection_items{collection=\"c\"} 2\n",
           "retrace_ready 1\n",
           "retrace_index_streams_open 0\n",
           "retrace_batcher_queue_depth{batcher=\"CLIP image\",lane=\"interactive\"} 0\n",
           "retrace_batcher_queue_depth{batcher=\"vector search\",lane=\"bulk\"} 0\n",
           // Decoded: 2 indexed images and 1 query; the missing collection fails before decoding.
           "retrace_stage_duration_seconds_count{stage=\"decode\"} 3\n",
           "retrace_stage_batch_size_sum{stage=\"caption\"} 2\n",
           "retrace_stage_duration_seconds_count{stage=\"search\"} 1\n",
           "retrace_stage_batch_size_sum{stage=\"store\"} 2\n",
       }) {
    EXPECT_TRUE(absl::StrContains(text, line)) << "missing: " << line << "\n" << text;
  }
  EXPECT_TRUE(absl::StrContains(text, "# TYPE retrace_worker_queue_depth gauge"));

  // Every log line is a JSON object; the call lines carry rpc, code and request id.
  bool found_request = false;
  for (absl::string_view line : absl::StrSplit(server.Log(), '\n', absl::SkipEmpty())) {
    nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(json.is_discarded()) << "not JSON: " << line;
    ASSERT_TRUE(json.contains("ts") && json.contains("level")) << line;
    if (json.value("request_id", "") == "audit-run-42") {
      found_request = true;
      EXPECT_EQ(json.value("rpc", ""), "CreateCollection");
      EXPECT_EQ(json.value("code", ""), "OK");
      EXPECT_EQ(json.value("principal", ""), "anonymous");
    }
  }
  EXPECT_TRUE(found_request) << server.LogTail();
}

}  // namespace
}  // namespace retrace
