// Capacity limits, end to end against the real server on 127.0.0.1 (demo models): Index streams
// and items per stream bounded, the default deadline, the worker queue's bound (unary calls and
// Index alike), and searches that wait for no queued Index request (lanes).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

using testing::FixtureDir;
using testing::FreePort;
using testing::NoiseImage;
using testing::ServerOptions;
using testing::ServerProcess;

class LimitsTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& config, std::vector<std::string> extra = {}) {
    const std::string dir = testing::NewTempDir("limits");
    testing::WriteFileBytes(dir + "/config.txtpb", config);
    extra.insert(extra.begin(), {"--config", dir + "/config.txtpb"});
    server_ = std::make_unique<ServerProcess>(
        ServerOptions{FixtureDir() + "/demo", dir + "/data", extra});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();
    grpc::ClientContext context;  // with a deadline of its own: the server's may be 1 ms
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name("c");
    v1::Collection response;
    ASSERT_TRUE(stub_->CreateCollection(&context, request, &response).ok());
  }

  static v1::IndexRequest Request(std::vector<std::string> ids) {
    v1::IndexRequest request;
    request.set_collection("c");
    for (size_t i = 0; i < ids.size(); ++i) {
      v1::Item* item = request.add_items();
      item->set_id(ids[i]);
      item->set_image(NoiseImage(32, 24, static_cast<int>(i) + 1, ".png"));
      item->set_caption("noise");
    }
    return request;
  }

  // SearchBurst sends `n` concurrent image searches (with `deadline_s` > 0, else none) and
  // returns their status codes.
  std::multiset<grpc::StatusCode> SearchBurst(int n, int deadline_s, std::string* message) {
    std::vector<std::future<grpc::Status>> calls;
    const std::string image = NoiseImage(200, 150, 3, ".jpg");
    for (int i = 0; i < n; ++i) {
      calls.push_back(std::async(std::launch::async, [&, i] {
        grpc::ClientContext context;
        if (deadline_s > 0) {
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(deadline_s));
        }
        v1::SearchRequest request;
        request.set_collection("c");
        request.set_image(image);
        v1::SearchResponse response;
        return stub_->Search(&context, request, &response);
      }));
    }
    std::multiset<grpc::StatusCode> codes;
    for (auto& call : calls) {
      grpc::Status status = call.get();
      if (!status.ok()) *message = status.error_message();
      codes.insert(status.error_code());
    }
    return codes;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
};

TEST_F(LimitsTest, IndexStreamsAtOnceAreBounded) {
  RETRACE_REQUIRE_DEMO_MODELS();
  StartServer("limits { max_index_streams: 1 }");
  grpc::ClientContext first_context;
  auto first = stub_->Index(&first_context);
  ASSERT_TRUE(first->Write(Request({"a"})));
  v1::IndexResponse response;
  ASSERT_TRUE(first->Read(&response));  // the first stream is open and admitted

  grpc::ClientContext second_context;
  auto second = stub_->Index(&second_context);
  second->Write(Request({"b"}));
  second->WritesDone();
  while (second->Read(&response)) {
  }
  grpc::Status refused = second->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "limits.max_index_streams"))
      << refused.error_message();

  first->WritesDone();
  EXPECT_TRUE(first->Finish().ok());
  // The slot is given back once the first stream is done.
  grpc::Status later;
  for (int attempt = 0; attempt < 50; ++attempt) {
    grpc::ClientContext context;
    auto third = stub_->Index(&context);
    third->Write(Request({"c"}));
    third->WritesDone();
    while (third->Read(&response)) {
    }
    later = third->Finish();
    if (later.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(later.ok()) << later.error_message();
}

TEST_F(LimitsTest, AStreamOverItsItemBoundKeepsWhatItStored) {
  RETRACE_REQUIRE_DEMO_MODELS();
  StartServer("limits { max_items_per_stream: 3 }");
  grpc::ClientContext context;
  auto stream = stub_->Index(&context);
  v1::IndexResponse response;
  ASSERT_TRUE(stream->Write(Request({"s1", "s2"})));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.results_size(), 2);
  stream->Write(Request({"s3", "s4"}));
  stream->WritesDone();
  while (stream->Read(&response)) {
  }
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "limits.max_items_per_stream"))
      << status.error_message();

  grpc::ClientContext get_context;
  v1::GetRequest get;
  get.set_collection("c");
  for (const char* id : {"s1", "s2", "s3", "s4"}) get.add_ids(id);
  v1::GetResponse got;
  ASSERT_TRUE(stub_->Get(&get_context, get, &got).ok());
  ASSERT_EQ(got.results_size(), 4);
  EXPECT_EQ(got.results(0).status().code(), 0);
  EXPECT_EQ(got.results(1).status().code(), 0);
  EXPECT_EQ(got.results(2).status().code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(got.results(3).status().code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
}

TEST_F(LimitsTest, QueuedWorkPastTheDefaultDeadlineIsDroppedAndClientDeadlinesWin) {
  RETRACE_REQUIRE_DEMO_MODELS();
  // One worker, and 1 ms for calls without a deadline: of 16 concurrent searches, those that
  // queue behind another are dropped.
  StartServer("limits { default_deadline_ms: 1 }", {"--workers", "1"});
  std::string message;
  std::multiset<grpc::StatusCode> codes = SearchBurst(16, 0, &message);
  EXPECT_GE(codes.count(grpc::StatusCode::DEADLINE_EXCEEDED), 1u) << message;
  EXPECT_EQ(codes.count(grpc::StatusCode::DEADLINE_EXCEEDED) + codes.count(grpc::StatusCode::OK),
            16u);
  // A client's own deadline replaces the default.
  codes = SearchBurst(8, 60, &message);
  EXPECT_EQ(codes.count(grpc::StatusCode::OK), 8u) << message;
  EXPECT_EQ(server_->HealthStatus(), "SERVING");
}

TEST_F(LimitsTest, AFullQueueAnswersResourceExhausted) {
  RETRACE_REQUIRE_DEMO_MODELS();
  StartServer("limits { max_pending_calls: 1 }", {"--workers", "1"});
  std::string message;
  std::multiset<grpc::StatusCode> codes = SearchBurst(24, 60, &message);
  EXPECT_GE(codes.count(grpc::StatusCode::RESOURCE_EXHAUSTED), 1u);
  EXPECT_GE(codes.count(grpc::StatusCode::OK), 1u);
  EXPECT_EQ(codes.count(grpc::StatusCode::RESOURCE_EXHAUSTED) + codes.count(grpc::StatusCode::OK),
            24u);
  EXPECT_TRUE(absl::StrContains(message, "limits.max_pending_calls")) << message;
}

TEST_F(LimitsTest, IndexRequestsPassTheSameQueueBoundAsUnaryCalls) {
  RETRACE_REQUIRE_DEMO_MODELS();
  const int metrics_port = FreePort();
  StartServer("limits { max_pending_calls: 1 }",
              {"--workers", "1", "--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port)});
  // One worker per lane and one queue slot: a burst of Index streams (with searches beside them)
  // finds the bulk lane's queue full, and is refused as unary calls are rather than queued.
  // Bursts repeat until one is.
  grpc::Status refused;
  for (int attempt = 0; attempt < 20 && refused.ok(); ++attempt) {
    std::vector<std::future<grpc::Status>> streams;
    for (int i = 0; i < 8; ++i) {
      streams.push_back(std::async(std::launch::async, [this, attempt, i] {
        grpc::ClientContext context;
        auto stream = stub_->Index(&context);
        stream->Write(Request({absl::StrCat("burst-", attempt, "-", i)}));
        stream->WritesDone();
        v1::IndexResponse response;
        while (stream->Read(&response)) {
        }
        return stream->Finish();
      }));
    }
    std::string message;
    SearchBurst(16, 60, &message);
    for (auto& stream : streams) {
      grpc::Status status = stream.get();
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        refused = status;
      } else {
        EXPECT_TRUE(status.ok()) << status.error_message();
      }
    }
  }
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "limits.max_pending_calls"))
      << refused.error_message();

  // Every call of the bursts was answered, so nothing is queued: Index works again.
  grpc::ClientContext context;
  auto stream = stub_->Index(&context);
  ASSERT_TRUE(stream->Write(Request({"after"})));
  stream->WritesDone();
  v1::IndexResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).status().code(), 0) << response.results(0).status().message();
  EXPECT_TRUE(stream->Finish().ok());

  // The refusal counts where a unary call's does.
  httplib::Client http("127.0.0.1", metrics_port);
  auto scraped = http.Get("/metrics");
  ASSERT_TRUE(scraped) << "no answer from the metrics endpoint";
  EXPECT_TRUE(absl::StrContains(
      scraped->body, "retrace_rpc_calls_total{rpc=\"Index\",code=\"RESOURCE_EXHAUSTED\"}"))
      << scraped->body;
}

// MetricValue: the value of `series` (name and labels, as rendered) in a /metrics text; -1 when
// absent.
double MetricValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, series + " ")) {
      double value = 0;
      if (absl::SimpleAtod(line, &value)) return value;
    }
  }
  return -1;
}

// Lanes hold end to end: a search waits for no Index request, however many are queued. With one
// worker per lane, a search sent while D Index requests wait would, in one shared FIFO pool,
// finish only after all D had; here it finishes while they still wait.
TEST_F(LimitsTest, SearchesDoNotWaitBehindQueuedIngest) {
  RETRACE_REQUIRE_DEMO_MODELS();
  const int metrics_port = FreePort();
  StartServer("", {"--workers", "1", "--index-workers", "1", "--metrics-listen",
                   absl::StrCat("127.0.0.1:", metrics_port)});
  std::atomic<bool> stop{false};
  std::vector<std::future<void>> writers;
  for (int w = 0; w < 6; ++w) {
    writers.push_back(std::async(std::launch::async, [this, &stop, w] {
      grpc::ClientContext context;
      auto stream = stub_->Index(&context);
      for (int r = 0; !stop; ++r) {
        v1::IndexRequest request;
        request.set_collection("c");
        for (int i = 0; i < 8; ++i) {  // no captions: the captioner runs, so each request is slow
          v1::Item* item = request.add_items();
          item->set_id(absl::StrCat("w", w, "-", r, "-", i));
          item->set_image(NoiseImage(320, 240, w * 1000 + r * 10 + i, ".jpg"));
        }
        v1::IndexResponse response;
        if (!stream->Write(request) || !stream->Read(&response)) break;
      }
      stream->WritesDone();
      v1::IndexResponse response;
      while (stream->Read(&response)) {
      }
      (void)stream->Finish();
    }));
  }
  httplib::Client http("127.0.0.1", metrics_port);
  const std::string kDepth = "retrace_worker_queue_depth{lane=\"bulk\"}";
  const std::string kIndexed = "retrace_rpc_calls_total{rpc=\"Index\",code=\"OK\"}";
  std::string before;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < give_up) {
    auto scraped = http.Get("/metrics");
    if (scraped && MetricValue(scraped->body, kDepth) >= 2) {
      before = scraped->body;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(before.empty()) << "Index requests never queued";
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::SearchRequest search;
  search.set_collection("c");
  search.set_text("a noisy picture");
  v1::SearchResponse response;
  const grpc::Status searched = stub_->Search(&context, search, &response);
  auto after = http.Get("/metrics");
  stop = true;
  for (auto& writer : writers) writer.get();
  ASSERT_TRUE(searched.ok()) << searched.error_message();
  ASSERT_TRUE(after);
  const double queued = MetricValue(before, kDepth);
  const double indexed_meanwhile = std::max(0.0, MetricValue(after->body, kIndexed)) -
                                   std::max(0.0, MetricValue(before, kIndexed));
  EXPECT_LT(indexed_meanwhile, queued)
      << "the search waited for the Index requests queued before it";
}

}  // namespace
}  // namespace retrace
