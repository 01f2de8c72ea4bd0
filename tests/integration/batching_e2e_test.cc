// End to end: dynamic batching through the real server (demo models, FAISS, SQLite). The
// batcher's own rules (grouping, lanes, deadlines, back-pressure) are unit-tested in
// tests/unit/batching; here the server's wiring: concurrent calls share model and FAISS
// batches with the answers they get alone, and a call whose deadline passes while it waits for
// a batch never reaches the model.
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;
using testing::FreePort;
using testing::NoiseImage;
using testing::ServerProcess;

#define SKIP_WITHOUT_MODELS()                                                         \
  if (!fs::exists(FixtureDir() + "/demo/clip/model.pt")) {                            \
    GTEST_SKIP() << "test models not found in " << FixtureDir()                       \
                 << " (the make_test_fixtures step needs ../shared/data)";            \
  }

constexpr int kQueries = 6;

// A config whose text and search batchers wait up to 1 s (the most a config allows) for kQueries inputs: kQueries
// concurrent calls can only finish quickly, and as one batch, if they were batched together.
// CLIP image and the image encoder wait 1 s too (an image query queues on both at once).
std::string WriteBatchingConfig(const std::string& dir) {
  const std::string path = dir + "/config.txtpb";
  std::ofstream(path) << "batching {\n"
                      << "  clip_text { max_batch_size: " << kQueries
                      << " max_queue_delay_us: 1000000 }\n"
                      << "  search { max_batch_size: " << kQueries
                      << " max_queue_delay_us: 1000000 threads: 1 }\n"
                      << "  clip_image { max_batch_size: 64 max_queue_delay_us: 1000000 }\n"
                      << "  image_encoder { max_batch_size: 64 max_queue_delay_us: 1000000 }\n"
                      << "}\n";
  return path;
}

testing::ServerOptions Options(const std::string& dir, std::vector<std::string> args) {
  testing::ServerOptions options;
  options.models_dir = FixtureDir() + "/demo";
  options.data_dir = dir + "/data";
  // Enough workers that every concurrent call waits in the batchers at once (the harness's
  // default is 2).
  options.extra_args = {"--workers", "16"};
  options.extra_args.insert(options.extra_args.end(), args.begin(), args.end());
  return options;
}

std::string Scrape(int port) {
  httplib::Client http("127.0.0.1", port);
  auto got = http.Get("/metrics");
  return got && got->status == 200 ? got->body : std::string();
}

void MakeCollection(v1::Retrace::Stub& stub) {
  grpc::ClientContext create_context;
  v1::CreateCollectionRequest create;
  create.mutable_collection()->set_name("c");
  v1::Collection info;
  ASSERT_TRUE(stub.CreateCollection(&create_context, create, &info).ok());
  grpc::ClientContext context;
  auto stream = stub.Index(&context);
  v1::IndexRequest request;
  request.set_collection("c");
  for (int i = 0; i < 12; ++i) {
    v1::Item* item = request.add_items();
    item->set_id(absl::StrCat("item-", i));
    item->set_image(NoiseImage(40, 40, i + 1, ".png"));
    item->set_caption(absl::StrCat("a picture of thing number ", i, i % 3 ? " in red" : ""));
  }
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  v1::IndexResponse response;
  while (stream->Read(&response)) {
  }
  ASSERT_TRUE(stream->Finish().ok());
}

v1::SearchRequest TextQuery(int i) {
  v1::SearchRequest request;
  request.set_collection("c");
  request.set_text(absl::StrCat("thing number ", i * 2));
  request.set_top_k(3 + i);  // a different k per query: each must get its own
  return request;
}

TEST(BatchingE2eTest, ConcurrentSearchesShareOneBatchAndGetTheirOwnAnswers) {
  SKIP_WITHOUT_MODELS();
  const std::string dir = testing::NewTempDir("batching");
  const int metrics_port = FreePort();
  std::vector<v1::SearchResponse> batched(kQueries);
  {
    ServerProcess server(Options(dir, {"--config", WriteBatchingConfig(dir), "--metrics-listen",
                                       absl::StrCat("127.0.0.1:", metrics_port)}));
    ASSERT_TRUE(server.Start().ok()) << server.LogTail();
    auto stub = server.NewStub();
    MakeCollection(*stub);

    std::vector<grpc::Status> status(kQueries);
    std::vector<std::thread> clients;
    for (int i = 0; i < kQueries; ++i) {
      clients.emplace_back([&, i] {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        status[i] = stub->Search(&context, TextQuery(i), &batched[i]);
      });
    }
    for (std::thread& t : clients) t.join();
    for (int i = 0; i < kQueries; ++i) ASSERT_TRUE(status[i].ok()) << i << status[i].error_message();

    const std::string metrics = Scrape(metrics_port);
    // One CLIP text batch and one FAISS call for all the queries (the Index above embedded its
    // 12 captions in two bulk-lane batches of its own).
    for (const std::string& line : {
             absl::StrCat("retrace_stage_batch_size_sum{stage=\"search\"} ", kQueries, "\n"),
             std::string("retrace_stage_batch_size_count{stage=\"search\"} 1\n"),
             absl::StrCat("retrace_stage_batch_size_sum{stage=\"embed_text\"} ", 12 + kQueries,
                          "\n"),
             std::string("retrace_stage_batch_size_count{stage=\"embed_text\"} 3\n"),
         }) {
      EXPECT_TRUE(absl::StrContains(metrics, line)) << "missing: " << line << metrics;
    }
    EXPECT_EQ(server.Stop(), 0);
  }

  // The same queries one at a time without batching: the same answers.
  ServerProcess unbatched(Options(dir, {"--no-batching"}));
  ASSERT_TRUE(unbatched.Start().ok()) << unbatched.LogTail();
  auto stub = unbatched.NewStub();
  for (int i = 0; i < kQueries; ++i) {
    grpc::ClientContext context;
    v1::SearchResponse alone;
    ASSERT_TRUE(stub->Search(&context, TextQuery(i), &alone).ok());
    ASSERT_EQ(alone.hits_size(), 3 + i);
    ASSERT_EQ(batched[i].hits_size(), alone.hits_size()) << i;
    for (int h = 0; h < alone.hits_size(); ++h) {
      EXPECT_EQ(batched[i].hits(h).id(), alone.hits(h).id()) << i << "/" << h;
      EXPECT_NEAR(batched[i].hits(h).score(), alone.hits(h).score(), 1e-5) << i << "/" << h;
    }
  }
}

TEST(BatchingE2eTest, ACallWhoseDeadlinePassesWhileQueuedNeverReachesTheModel) {
  SKIP_WITHOUT_MODELS();
  const std::string dir = testing::NewTempDir("batching-deadline");
  const int metrics_port = FreePort();
  // The image batcher waits 1 s for a fuller batch; the call's deadline is 200 ms.
  ServerProcess server(Options(dir, {"--config", WriteBatchingConfig(dir), "--metrics-listen",
                                     absl::StrCat("127.0.0.1:", metrics_port)}));
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  auto stub = server.NewStub();
  MakeCollection(*stub);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  v1::SearchRequest request;
  request.set_collection("c");
  request.set_image(NoiseImage(40, 40, 99, ".png"));
  v1::SearchResponse response;
  EXPECT_EQ(stub->Search(&context, request, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);

  // The server answers the call itself once the batch forms, and counts it.
  std::string metrics;
  for (int i = 0; i < 50; ++i) {
    metrics = Scrape(metrics_port);
    if (absl::StrContains(metrics, "rpc=\"Search\",code=\"DEADLINE_EXCEEDED\"")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(absl::StrContains(metrics,
                                "retrace_rpc_calls_total{rpc=\"Search\",code=\"DEADLINE_EXCEEDED\"} 1"))
      << metrics;
  // The Index above ran CLIP's image tower and the image encoder once each (one bulk batch
  // apiece); the query, queued on both at once, reached neither.
  EXPECT_TRUE(absl::StrContains(metrics,
                                "retrace_stage_duration_seconds_count{stage=\"embed_image\"} 2\n"))
      << metrics;
}

}  // namespace
}  // namespace retrace
