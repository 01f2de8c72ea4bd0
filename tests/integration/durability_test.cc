// Nothing acknowledged is ever lost: the real server is killed with SIGKILL at random moments
// while several clients stream Index requests, restarted on the same data directory, and every
// acknowledged item must be there — with its caption, and found by Search. Items of an
// unacknowledged request may be absent, but never half-present (all or none of a request, and a
// present item is complete). Also: a restart after a crash answers as before, and a collection is
// refused, never mixed, when the server runs other models.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

using PoolImage = testing::OracleImage;

// Sent: what a client sent in one request and whether the server acknowledged it.
struct Sent {
  std::vector<std::string> ids;
  std::vector<std::string> labels;
  bool acknowledged = false;
};

class DurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/clip/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir();
    }
    data_dir_ = testing::NewTempDir("durable");
    pool_ = testing::LoadOracleImages();
    ASSERT_FALSE(pool_.empty());
  }

  // StartServer runs the server on this test's data directory, snapshotting every
  // `snapshot_seconds` (default 1) so that recovery after a kill goes through snapshot + replay
  // as well as full rebuilds.
  // `extra_config` is appended to the config file (text-format ServerConfig fields).
  std::unique_ptr<testing::ServerProcess> StartServer(const std::string& models = "oracle",
                                                      int snapshot_seconds = 1,
                                                      const std::string& extra_config = "") {
    const std::string config = data_dir_ + ".textproto";
    std::ofstream(config) << "snapshot_interval_seconds: " << snapshot_seconds << "\n"
                          << extra_config;
    auto server = std::make_unique<testing::ServerProcess>(testing::ServerOptions{
        FixtureDir() + "/" + models, data_dir_, {"--config", config}});
    absl::Status started = server->Start();
    EXPECT_TRUE(started.ok()) << started << server->LogTail();
    return server;
  }

  static void CreateCollection(v1::Retrace::Stub& stub, const std::string& name) {
    grpc::ClientContext context;
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name(name);
    request.mutable_collection()->set_shards(3);
    v1::Collection created;
    ASSERT_TRUE(stub.CreateCollection(&context, request, &created).ok());
  }

  // StreamUntilBroken sends requests of `batch` items until the stream breaks or `stop`; each
  // request acknowledged counts in `acknowledged`.
  void StreamUntilBroken(std::shared_ptr<grpc::Channel> channel, const std::string& prefix,
                         int batch, std::atomic<bool>& stop, std::vector<Sent>& sent,
                         std::atomic<int>& acknowledged) {
    auto stub = v1::Retrace::NewStub(channel);
    grpc::ClientContext context;
    auto stream = stub->Index(&context);
    std::mt19937 rng(std::hash<std::string>()(prefix));
    for (int request_number = 0; !stop.load(); ++request_number) {
      v1::IndexRequest request;
      request.set_collection("durable");
      Sent record;
      for (int i = 0; i < batch; ++i) {
        const PoolImage& image = pool_[rng() % pool_.size()];
        v1::Item* item = request.add_items();
        item->set_id(absl::StrCat(prefix, "/", request_number, "/", i));
        item->set_image(image.bytes);
        record.ids.push_back(item->id());
        record.labels.push_back(image.label);
      }
      sent.push_back(record);
      if (!stream->Write(request)) break;
      v1::IndexResponse response;
      if (!stream->Read(&response)) break;
      bool all_ok = response.results_size() == batch;
      for (const v1::IndexResult& result : response.results()) all_ok &= result.status().code() == 0;
      EXPECT_TRUE(all_ok) << "a request was answered with failures: " << response.DebugString();
      sent.back().acknowledged = all_ok;
      if (all_ok) ++acknowledged;
    }
    context.TryCancel();
    stream->Finish();
  }

  std::string data_dir_;
  std::vector<PoolImage> pool_;
};

TEST_F(DurabilityTest, SigkillWhileStreamingLosesNothingAcknowledged) {
  constexpr int kTrials = 10, kClients = 3, kBatch = 4;
  std::mt19937 rng(20261122);
  std::vector<Sent> all_sent;
  {
    auto server = StartServer();
    CreateCollection(*server->NewStub(), "durable");
  }
  for (int trial = 0; trial < kTrials; ++trial) {
    auto server = StartServer();
    // The clients get their own reference: Kill() below resets the server's, maybe before a
    // client thread has started (a data race TSan reported).
    const std::shared_ptr<grpc::Channel> channel = server->channel();
    ASSERT_NE(channel, nullptr);
    std::atomic<bool> stop{false};
    std::atomic<int> acknowledged{0};
    std::vector<std::vector<Sent>> sent(kClients);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        StreamUntilBroken(channel, absl::StrCat("t", trial, "c", c), kBatch, stop, sent[c],
                          acknowledged);
      });
    }
    // Kill at a random moment once the server has acknowledged something, so every trial kills
    // a server that is writing (under TSan the first answer can take longer than the delay).
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (acknowledged.load() == 0 && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 600));
    server->Kill();  // SIGKILL: no drain, no clean shutdown
    stop = true;
    for (std::thread& t : clients) t.join();
    for (auto& per_client : sent) all_sent.insert(all_sent.end(), per_client.begin(), per_client.end());
  }

  // Restart once more and check every item ever sent.
  auto server = StartServer();
  auto stub = server->NewStub();
  size_t acknowledged = 0, unacknowledged_present = 0, losses = 0, present_total = 0;
  std::map<std::string, std::set<std::string>> present_by_label;
  for (const Sent& request : all_sent) {
    grpc::ClientContext context;
    v1::GetRequest get;
    get.set_collection("durable");
    for (const std::string& id : request.ids) get.add_ids(id);
    v1::GetResponse got;
    ASSERT_TRUE(stub->Get(&context, get, &got).ok());
    size_t present = 0;
    for (int i = 0; i < got.results_size(); ++i) {
      if (got.results(i).status().code() != 0) continue;
      ++present;
      EXPECT_EQ(got.results(i).item().caption(), "a picture of a " + request.labels[i])
          << request.ids[i];
      present_by_label[request.labels[i]].insert(request.ids[i]);
    }
    present_total += present;
    if (request.acknowledged) {
      acknowledged += request.ids.size();
      losses += request.ids.size() - present;
    } else {
      EXPECT_TRUE(present == 0 || present == request.ids.size())
          << "an unacknowledged request is half-present: " << present << " of "
          << request.ids.size();
      unacknowledged_present += present;
    }
  }
  EXPECT_EQ(losses, 0u);
  EXPECT_GT(acknowledged, 0u);

  // Every present item is searchable: a text query naming its class finds all of that class.
  for (const auto& [label, ids] : present_by_label) {
    grpc::ClientContext context;
    v1::SearchRequest search;
    search.set_collection("durable");
    search.set_text("a picture of a " + label);
    search.set_top_k(1000);
    v1::SearchResponse response;
    ASSERT_TRUE(stub->Search(&context, search, &response).ok());
    std::set<std::string> found;
    for (const v1::SearchHit& hit : response.hits()) found.insert(hit.id());
    for (const std::string& id : ids) EXPECT_TRUE(found.count(id)) << id << " is not searchable";
  }
  grpc::ClientContext describe_context;
  v1::DescribeCollectionRequest describe;
  describe.set_name("durable");
  v1::Collection info;
  ASSERT_TRUE(stub->DescribeCollection(&describe_context, describe, &info).ok());
  EXPECT_EQ(static_cast<size_t>(info.item_count()), present_total);
  std::cout << "[ crash test ] " << kTrials << " SIGKILL trials, " << kClients
            << " streaming clients: " << acknowledged << " items acknowledged, " << losses
            << " lost; " << unacknowledged_present << " unacknowledged items present in whole"
            << std::endl;
}

TEST_F(DurabilityTest, AfterACrashSearchAnswersAsBeforeAndDeletesStayDeleted) {
  auto server = StartServer();
  auto stub = server->NewStub();
  CreateCollection(*stub, "durable");
  {
    grpc::ClientContext context;
    auto stream = stub->Index(&context);
    v1::IndexRequest request;
    request.set_collection("durable");
    for (int i = 0; i < 12; ++i) {
      v1::Item* item = request.add_items();
      item->set_id(absl::StrCat("item", i));
      item->set_image(pool_[i % pool_.size()].bytes);
    }
    ASSERT_TRUE(stream->Write(request));
    stream->WritesDone();
    v1::IndexResponse response;
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_TRUE(stream->Finish().ok());
  }
  {
    grpc::ClientContext context;
    v1::DeleteRequest del;
    del.set_collection("durable");
    del.add_ids("item3");
    v1::DeleteResponse deleted;
    ASSERT_TRUE(stub->Delete(&context, del, &deleted).ok());
  }
  v1::SearchRequest query;
  query.set_collection("durable");
  query.set_image(pool_[3].bytes);
  query.set_top_k(20);
  auto search = [&](v1::Retrace::Stub& s) {
    grpc::ClientContext context;
    v1::SearchResponse response;
    EXPECT_TRUE(s.Search(&context, query, &response).ok());
    return response;
  };
  v1::SearchResponse before = search(*stub);
  ASSERT_EQ(before.hits_size(), 11);

  server->Kill();
  server = StartServer();
  stub = server->NewStub();
  v1::SearchResponse after = search(*stub);
  ASSERT_EQ(after.hits_size(), before.hits_size());
  std::multiset<std::pair<float, std::string>> a, b;
  for (int i = 0; i < after.hits_size(); ++i) {
    EXPECT_NE(after.hits(i).id(), "item3");
    EXPECT_FLOAT_EQ(after.hits(i).score(), before.hits(i).score());
    a.insert({after.hits(i).score(), after.hits(i).id()});
    b.insert({before.hits(i).score(), before.hits(i).id()});
  }
  EXPECT_EQ(a, b);
}

TEST_F(DurabilityTest, ACollectionIsRefusedUnderOtherModels) {
  {
    auto server = StartServer("oracle");
    auto stub = server->NewStub();
    CreateCollection(*stub, "durable");
  }
  auto server = StartServer("demo");
  auto stub = server->NewStub();
  grpc::ClientContext context;
  v1::SearchRequest query;
  query.set_collection("durable");
  query.set_text("a dog");
  v1::SearchResponse response;
  grpc::Status status = stub->Search(&context, query, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("oracle-clip"), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("demo-clip"), std::string::npos) << status.error_message();

  grpc::ClientContext describe_context;  // still listed and describable
  v1::DescribeCollectionRequest describe;
  describe.set_name("durable");
  v1::Collection info;
  EXPECT_TRUE(stub->DescribeCollection(&describe_context, describe, &info).ok());
}

// A float32 collection refuses the same CLIP file run at bfloat16 (embeddings of two precisions
// must not mix), and keeps working under float32, named or by default: the identities it stored
// before dtypes existed are float32's.
TEST_F(DurabilityTest, ACollectionIsRefusedUnderAnotherPrecisionOfItsModel) {
  {
    auto server = StartServer("oracle");
    auto stub = server->NewStub();
    CreateCollection(*stub, "durable");
  }
  auto search = [](v1::Retrace::Stub& stub) {
    grpc::ClientContext context;
    v1::SearchRequest query;
    query.set_collection("durable");
    query.set_text("a dog");
    v1::SearchResponse response;
    return stub.Search(&context, query, &response);
  };
  {
    auto server = StartServer("oracle", 1, "model_runtimes { clip { dtype: \"bfloat16\" } }\n");
    auto stub = server->NewStub();
    grpc::Status status = search(*stub);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    const std::string& message = status.error_message();
    // Both identities: the stored float32 one ("...]' (dimension") and the bfloat16 one.
    EXPECT_NE(message.find("]' (dimension"), std::string::npos) << message;
    EXPECT_NE(message.find("] (bfloat16)' (dimension"), std::string::npos) << message;
  }
  auto server = StartServer("oracle", 1, "model_runtimes { clip { dtype: \"float32\" } }\n");
  auto stub = server->NewStub();
  EXPECT_TRUE(search(*stub).ok());
}

// IndexItems sends one request of `count` pool images with ids prefix0..prefixN.
void IndexItems(v1::Retrace::Stub& stub, const std::vector<PoolImage>& pool,
                const std::string& prefix, int count) {
  grpc::ClientContext context;
  auto stream = stub.Index(&context);
  v1::IndexRequest request;
  request.set_collection("durable");
  for (int i = 0; i < count; ++i) {
    v1::Item* item = request.add_items();
    item->set_id(absl::StrCat(prefix, i));
    item->set_image(pool[i % pool.size()].bytes);
  }
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  v1::IndexResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(stream->Finish().ok());
  for (const auto& r : response.results()) ASSERT_EQ(r.status().code(), 0) << r.status().message();
}

std::set<std::string> AllIds(v1::Retrace::Stub& stub) {
  std::set<std::string> ids;
  for (const char* label : {"dog", "cat", "horse", "house", "guitar", "bird", "tree", "car"}) {
    grpc::ClientContext context;
    v1::SearchRequest search;
    search.set_collection("durable");
    search.set_text(absl::StrCat("a picture of a ", label));
    search.set_top_k(1000);
    v1::SearchResponse response;
    EXPECT_TRUE(stub.Search(&context, search, &response).ok());
    for (const auto& hit : response.hits()) {
      if (hit.score() > 0.99f) ids.insert(hit.id());  // exactly its class: the item is there
    }
  }
  return ids;
}

TEST_F(DurabilityTest, RecoveryReplaysChangesAfterTheSnapshotAndSurvivesACorruptOne) {
  // Only the clean stop snapshots: a periodic snapshot that a kill interrupts between its two
  // spaces leaves a mismatched pair, which (correctly) means a rebuild, not a replay.
  constexpr int kNoPeriodicSnapshot = 86400;
  auto server = StartServer("oracle", kNoPeriodicSnapshot);
  auto stub = server->NewStub();
  CreateCollection(*stub, "durable");
  IndexItems(*stub, pool_, "before", 10);
  ASSERT_EQ(server->Stop(), 0);  // the clean stop writes the snapshot of the first 10 items
  server = StartServer("oracle", kNoPeriodicSnapshot);
  stub = server->NewStub();
  IndexItems(*stub, pool_, "after", 5);
  {
    grpc::ClientContext context;
    v1::DeleteRequest del;
    del.set_collection("durable");
    del.add_ids("before2");
    v1::DeleteResponse deleted;
    ASSERT_TRUE(stub->Delete(&context, del, &deleted).ok());
  }
  const std::set<std::string> expected = AllIds(*stub);
  ASSERT_EQ(expected.size(), 14u);
  server->Kill();

  // The kill left a snapshot of the first 10 items: the start follows the store's feed from it,
  // applying the 5 puts and 1 delete.
  server = StartServer();
  stub = server->NewStub();
  EXPECT_EQ(AllIds(*stub), expected);
  EXPECT_NE(server->LogTail().find("snapshot at position"), std::string::npos) << server->LogTail();
  EXPECT_NE(server->LogTail().find("6 changes applied"), std::string::npos) << server->LogTail();
  EXPECT_EQ(server->Stop(), 0);

  // A corrupt snapshot is logged and rebuilt from the store, with the same answers.
  for (const auto& entry : fs::recursive_directory_iterator(data_dir_ + "/snapshots")) {
    if (!entry.is_regular_file()) continue;
    std::fstream f(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(entry.path()) / 2));
    f.put('\x5a');
    f.put('\xa5');
  }
  server = StartServer();
  stub = server->NewStub();
  EXPECT_EQ(AllIds(*stub), expected);
  EXPECT_NE(server->LogTail().find("built from the store's items"), std::string::npos)
      << server->LogTail();
}

}  // namespace
}  // namespace retrace
