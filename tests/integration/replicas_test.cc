// Replicas sharing one PostgreSQL store (ARCHITECTURE.md, "Cluster"): three real retrace-server
// processes and a PostgreSQL server, all on loopback, started by the test.
// - A write through one replica is read through the others at its position (min_position);
//   collections created or dropped through one appear or vanish on all.
// - Concurrent writes of the same ids through two replicas converge to identical contents.
// - A replica killed (SIGKILL) during streaming ingest loses nothing it acknowledged (10 trials).
// - PostgreSQL stopped and restarted during ingest: clients see UNAVAILABLE and retry; nothing
//   acknowledged is lost or duplicated; searches go on meanwhile, marked stale.
// - A replica that starts behind reports SERVING only once it has caught up.
// - Bad --store settings stop the start with an error naming the setting; a min_position in
//   the future is DEADLINE_EXCEEDED.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/postgres_server.h"
#include "tests/support/server_process.h"
#include "tests/support/shared_data.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::Context;
using testing::FixtureDir;
using ::testing::HasSubstr;

using PoolImage = testing::OracleImage;

class ReplicasTest : public testing::SharedPostgres<> {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/clip/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir();
    }
    ASSERT_NE(postgres(), nullptr);
    uri_ = postgres()->NewDatabase("replicas");
    pool_ = testing::LoadOracleImages();
    ASSERT_FALSE(pool_.empty());
  }

  // Replica starts (or restarts) replica `name` on the shared store, its snapshots in a folder
  // of its own; `replication` adds fields to its config's replication block.
  std::unique_ptr<testing::ServerProcess> Replica(const std::string& name,
                                                  const std::string& replication = "") {
    // The PostgreSQL server's port tells this test's folders from those of tests running beside
    // it (each test process starts a server of its own).
    const std::string dir = absl::StrCat(testing::BinaryDir(), "/test_tmp/replicas-",
                                         postgres()->port(), "-", uri_.substr(uri_.rfind('/') + 1),
                                         "-", name);
    fs::create_directories(dir);
    const std::string config = dir + ".textproto";
    std::ofstream(config) << "snapshot_interval_seconds: 1\n"
                          << "replication { ack_timeout_ms: 20000 poll_interval_ms: 100 "
                          << replication << " }\n";
    auto server = std::make_unique<testing::ServerProcess>(testing::ServerOptions{
        FixtureDir() + "/oracle", dir,
        {"--config", config, "--store", uri_, "--replica-id", name}, nullptr, "", true});
    absl::Status started = server->Start();
    EXPECT_TRUE(started.ok()) << started << server->LogTail();
    return started.ok() ? std::move(server) : nullptr;
  }

  static int64_t CreateCollection(v1::Retrace::Stub& stub, const std::string& name) {
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name(name);
    request.mutable_collection()->set_shards(2);
    v1::Collection created;
    grpc::Status status = stub.CreateCollection(Context().get(), request, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return created.created_position();
  }

  // Index sends one request of items (id -> pool image) and returns the response.
  v1::IndexResponse Index(v1::Retrace::Stub& stub, const std::map<std::string, int>& items,
                          grpc::Status* status = nullptr) {
    auto context = Context();
    auto stream = stub.Index(context.get());
    v1::IndexRequest request;
    request.set_collection("c");
    for (const auto& [id, image] : items) {
      v1::Item* item = request.add_items();
      item->set_id(id);
      item->set_image(pool_[image % pool_.size()].bytes);
    }
    v1::IndexResponse response;
    if (stream->Write(request)) stream->Read(&response);
    stream->WritesDone();
    grpc::Status finished = stream->Finish();
    if (status != nullptr) *status = finished;
    return response;
  }

  // Stored: every item of collection c, as Get reads it at `position` (id -> caption + vector).
  static std::map<std::string, std::string> Stored(v1::Retrace::Stub& stub,
                                                   const std::vector<std::string>& ids,
                                                   int64_t position) {
    std::map<std::string, std::string> stored;
    for (size_t begin = 0; begin < ids.size(); begin += 64) {
      v1::GetRequest get;
      get.set_collection("c");
      get.set_include_embeddings(true);
      get.set_min_position(position);
      for (size_t i = begin; i < std::min(ids.size(), begin + 64); ++i) get.add_ids(ids[i]);
      v1::GetResponse got;
      grpc::Status status = stub.Get(Context().get(), get, &got);
      EXPECT_TRUE(status.ok()) << status.error_message();
      for (const v1::GetResult& r : got.results()) {
        if (r.status().code() != 0) continue;
        stored[r.item().id()] =
            absl::StrCat(r.item().caption(), "|", r.item().clip_image().ShortDebugString());
      }
    }
    return stored;
  }

  // Ranking: the ids and scores a search by `text` returns at `position` (what the indexes hold).
  static std::vector<std::string> Ranking(v1::Retrace::Stub& stub, const std::string& text,
                                          int64_t position, v1::SearchResponse* out = nullptr) {
    v1::SearchRequest search;
    search.set_collection("c");
    search.set_text(text);
    search.set_top_k(200);
    search.set_min_position(position);
    v1::SearchResponse response;
    grpc::Status status = stub.Search(Context().get(), search, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> ranking;
    for (const v1::SearchHit& hit : response.hits()) {
      ranking.push_back(absl::StrCat(hit.id(), "=", hit.score()));
    }
    if (out != nullptr) *out = response;
    return ranking;
  }

  std::string uri_;
  std::vector<PoolImage> pool_;
};

TEST_F(ReplicasTest, WritesThroughOneReplicaAreReadThroughTheOthersAtTheirPosition) {
  auto a = Replica("a"), b = Replica("b"), c = Replica("c");
  ASSERT_TRUE(a && b && c);
  auto sa = a->NewStub(), sb = b->NewStub(), sc = c->NewStub();
  const int64_t created = CreateCollection(*sa, "c");
  ASSERT_GT(created, 0);
  for (auto* stub : {sb.get(), sc.get()}) {
    v1::DescribeCollectionRequest describe;
    describe.set_name("c");
    describe.set_min_position(created);
    v1::Collection collection;
    grpc::Status status = stub->DescribeCollection(Context().get(), describe, &collection);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(collection.created_position(), created);
  }

  std::map<std::string, int> items;
  for (int i = 0; i < 8; ++i) items[absl::StrCat("item-", i)] = i;
  v1::IndexResponse indexed = Index(*sa, items);
  ASSERT_EQ(indexed.results_size(), 8);
  for (const v1::IndexResult& r : indexed.results()) ASSERT_EQ(r.status().code(), 0) << r.DebugString();
  ASSERT_GT(indexed.position(), created);
  std::vector<std::string> ids;
  for (const auto& [id, image] : items) ids.push_back(id);
  const auto on_a = Stored(*sa, ids, indexed.position());
  EXPECT_EQ(on_a.size(), 8u);
  EXPECT_EQ(Stored(*sb, ids, indexed.position()), on_a);
  EXPECT_EQ(Stored(*sc, ids, indexed.position()), on_a);
  const std::string label = pool_[0].label;
  v1::SearchResponse on_c;
  const auto ranking = Ranking(*sc, absl::StrCat("a picture of a ", label), indexed.position(),
                               &on_c);
  EXPECT_EQ(ranking.size(), 8u);
  EXPECT_GE(on_c.applied_position(), indexed.position());
  EXPECT_FALSE(on_c.stale());
  EXPECT_EQ(Ranking(*sb, absl::StrCat("a picture of a ", label), indexed.position()), ranking);

  // A position in the future: DEADLINE_EXCEEDED at the call's deadline, naming it.
  v1::SearchRequest future;
  future.set_collection("c");
  future.set_text("anything");
  future.set_min_position(indexed.position() + 1000);
  v1::SearchResponse unused;
  grpc::ClientContext short_context;
  short_context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(700));
  grpc::Status late = sb->Search(&short_context, future, &unused);
  EXPECT_EQ(late.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << late.error_message();

  // Dropped through C: gone from A at the drop's position.
  v1::DropCollectionRequest drop;
  drop.set_name("c");
  v1::DropCollectionResponse dropped;
  ASSERT_TRUE(sc->DropCollection(Context().get(), drop, &dropped).ok());
  ASSERT_GT(dropped.position(), indexed.position());
  v1::ListCollectionsRequest list;
  list.set_min_position(dropped.position());
  v1::ListCollectionsResponse listed;
  ASSERT_TRUE(sa->ListCollections(Context().get(), list, &listed).ok());
  EXPECT_EQ(listed.collections_size(), 0);

  // cluster status, through any replica: all three, live, at the store's position.
  v1::ClusterStatus cluster;
  ASSERT_TRUE(sb->GetClusterStatus(Context().get(), v1::GetClusterStatusRequest(), &cluster).ok());
  ASSERT_EQ(cluster.replicas_size(), 3);
  EXPECT_EQ(cluster.replicas(0).replica(), "a");
  for (const v1::ReplicaStatus& r : cluster.replicas()) EXPECT_TRUE(r.live()) << r.replica();
  EXPECT_THAT(cluster.store(), HasSubstr("postgresql retrace@127.0.0.1"));
}

TEST_F(ReplicasTest, ConcurrentWritesOfTheSameIdsThroughTwoReplicasConverge) {
  auto a = Replica("a"), b = Replica("b"), c = Replica("c");
  ASSERT_TRUE(a && b && c);
  auto sa = a->NewStub(), sb = b->NewStub(), sc = c->NewStub();
  CreateCollection(*sa, "c");
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(absl::StrCat("same-", i));
  std::atomic<int64_t> last{0};
  auto writer = [&](v1::Retrace::Stub* stub, int seed) {
    std::mt19937 random(seed);
    for (int round = 0; round < 15; ++round) {
      std::map<std::string, int> items;
      for (const std::string& id : ids) items[id] = static_cast<int>(random() % 1000);
      v1::IndexResponse response = Index(*stub, items);
      int64_t seen = last.load();
      while (response.position() > seen && !last.compare_exchange_weak(seen, response.position())) {
      }
    }
  };
  std::thread ta(writer, sa.get(), 1), tb(writer, sb.get(), 2);
  ta.join();
  tb.join();
  const auto on_a = Stored(*sa, ids, last.load());
  EXPECT_EQ(on_a.size(), ids.size());
  EXPECT_EQ(Stored(*sb, ids, last.load()), on_a);
  EXPECT_EQ(Stored(*sc, ids, last.load()), on_a);
  // And the indexes hold the same: identical rankings, scores included, on all three.
  for (const PoolImage& image : {pool_.front(), pool_.back()}) {
    const std::string text = absl::StrCat("a picture of a ", image.label);
    const auto ranking = Ranking(*sa, text, last.load());
    EXPECT_EQ(Ranking(*sb, text, last.load()), ranking);
    EXPECT_EQ(Ranking(*sc, text, last.load()), ranking);
  }
}

// SIGKILL replica A at random moments while three clients stream Index requests to it; B keeps
// running. After each restart, every request A acknowledged is present, with its caption, on
// both replicas at the acknowledged position.
TEST_F(ReplicasTest, AReplicaKilledDuringIngestLosesNothingAcknowledged) {
  constexpr int kTrials = 10, kClients = 3, kBatch = 4;
  auto b = Replica("b");
  ASSERT_NE(b, nullptr);
  auto sb = b->NewStub();
  CreateCollection(*sb, "c");
  std::mt19937 random(20261206);
  std::map<std::string, std::string> acknowledged;  // id -> expected caption
  int64_t acknowledged_position = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    auto a = Replica("a");
    ASSERT_NE(a, nullptr);
    const std::shared_ptr<grpc::Channel> channel = a->channel();
    std::atomic<bool> stop{false};
    std::atomic<int> answered{0};
    std::mutex mu;
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        auto stub = v1::Retrace::NewStub(channel);
        grpc::ClientContext context;
        auto stream = stub->Index(&context);
        for (int n = 0; !stop.load(); ++n) {
          v1::IndexRequest request;
          request.set_collection("c");
          std::vector<std::string> labels;
          for (int i = 0; i < kBatch; ++i) {
            const PoolImage& image = pool_[(trial * 7 + c * 3 + n + i) % pool_.size()];
            v1::Item* item = request.add_items();
            item->set_id(absl::StrCat("t", trial, "c", c, "n", n, "i", i));
            item->set_image(image.bytes);
            labels.push_back(image.label);
          }
          v1::IndexResponse response;
          if (!stream->Write(request) || !stream->Read(&response)) break;
          ++answered;
          std::lock_guard<std::mutex> lock(mu);
          for (int i = 0; i < response.results_size(); ++i) {
            if (response.results(i).status().code() != 0) continue;
            acknowledged[request.items(i).id()] = "a picture of a " + labels[i];
            acknowledged_position = std::max(acknowledged_position, response.position());
          }
        }
        context.TryCancel();
        stream->Finish();
      });
    }
    for (int i = 0; i < 3000 && answered.load() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
    absl::SleepFor(absl::Milliseconds(100 + random() % 500));
    a->Kill();
    stop = true;
    for (std::thread& t : clients) t.join();
  }
  ASSERT_GT(acknowledged.size(), 0u);
  auto a = Replica("a");
  ASSERT_NE(a, nullptr);
  auto sa = a->NewStub();
  std::vector<std::string> ids;
  for (const auto& [id, caption] : acknowledged) ids.push_back(id);
  for (auto* stub : {sa.get(), sb.get()}) {
    const auto stored = Stored(*stub, ids, acknowledged_position);
    size_t lost = 0;
    for (const auto& [id, caption] : acknowledged) {
      auto it = stored.find(id);
      if (it == stored.end()) {
        ++lost;
        continue;
      }
      EXPECT_EQ(it->second.substr(0, it->second.find('|')), caption) << id;
    }
    EXPECT_EQ(lost, 0u) << "of " << acknowledged.size() << " acknowledged";
  }
  // And found by the indexes of both: a search by each class returns its acknowledged items.
  std::map<std::string, std::set<std::string>> by_caption;
  for (const auto& [id, caption] : acknowledged) by_caption[caption].insert(id);
  for (const auto& [caption, expected] : by_caption) {
    for (auto* stub : {sa.get(), sb.get()}) {
      std::set<std::string> found;
      for (const std::string& hit : Ranking(*stub, caption, acknowledged_position)) {
        found.insert(hit.substr(0, hit.find('=')));
      }
      for (const std::string& id : expected) {
        if (expected.size() <= 200) EXPECT_TRUE(found.count(id)) << id << " for '" << caption << "'";
      }
    }
  }
}

// PostgreSQL stops in the middle of ingest and comes back: clients see UNAVAILABLE and retry;
// in the end every item is stored exactly once (ids are keys; counts match) on every replica,
// and while the store was away, searches were answered from memory and marked stale.
TEST_F(ReplicasTest, PostgresRestartDuringIngestLosesAndDuplicatesNothing) {
  auto a = Replica("a"), b = Replica("b");
  ASSERT_TRUE(a && b);
  auto sa = a->NewStub(), sb = b->NewStub();
  CreateCollection(*sa, "c");
  ASSERT_FALSE(Index(*sa, {{"seed", 0}}).results().empty());
  constexpr int kRequests = 30;
  std::atomic<int> unavailable{0};
  std::atomic<int64_t> last{0};
  auto client = [&](v1::Retrace::Stub* stub, const std::string& prefix) {
    for (int n = 0; n < kRequests; ++n) {
      std::map<std::string, int> items;
      for (int i = 0; i < 3; ++i) items[absl::StrCat(prefix, "-", n, "-", i)] = n + i;
      for (int attempt = 0; attempt < 200; ++attempt) {
        grpc::Status status;
        v1::IndexResponse response = Index(*stub, items, &status);
        bool all_ok = status.ok() && response.results_size() == 3;
        for (const v1::IndexResult& r : response.results()) {
          all_ok &= r.status().code() == 0;
          if (r.status().code() == grpc::StatusCode::UNAVAILABLE) ++unavailable;
        }
        if (status.error_code() == grpc::StatusCode::UNAVAILABLE) ++unavailable;
        if (all_ok) {
          int64_t seen = last.load();
          while (response.position() > seen &&
                 !last.compare_exchange_weak(seen, response.position())) {
          }
          break;
        }
        absl::SleepFor(absl::Milliseconds(100));
      }
      absl::SleepFor(absl::Milliseconds(30));
    }
  };
  std::thread ca(client, sa.get(), "a"), cb(client, sb.get(), "b");
  absl::SleepFor(absl::Milliseconds(600));
  ASSERT_TRUE(postgres()->Stop("fast").ok());
  absl::SleepFor(absl::Milliseconds(1500));
  // Meanwhile: a search is answered from memory, and says so.
  v1::SearchResponse stale;
  Ranking(*sb, "a picture of a " + pool_[0].label, 0, &stale);
  EXPECT_TRUE(stale.stale());
  ASSERT_TRUE(postgres()->Restart().ok());
  ca.join();
  cb.join();
  EXPECT_GT(unavailable.load(), 0) << "no client saw the store go away";

  std::vector<std::string> ids = {"seed"};
  for (const char* prefix : {"a", "b"}) {
    for (int n = 0; n < kRequests; ++n) {
      for (int i = 0; i < 3; ++i) ids.push_back(absl::StrCat(prefix, "-", n, "-", i));
    }
  }
  for (auto* stub : {sa.get(), sb.get()}) {
    EXPECT_EQ(Stored(*stub, ids, last.load()).size(), ids.size());
    v1::DescribeCollectionRequest describe;
    describe.set_name("c");
    describe.set_min_position(last.load());
    v1::Collection collection;
    ASSERT_TRUE(stub->DescribeCollection(Context().get(), describe, &collection).ok());
    EXPECT_EQ(collection.item_count(), static_cast<int64_t>(ids.size()));
  }
}

// A replica that joins behind (the others wrote meanwhile) answers at once when SERVING: it
// says SERVING only after catching up (ready_max_lag 0 here).
TEST_F(ReplicasTest, AJoiningReplicaServesOnlyOnceCaughtUp) {
  auto a = Replica("a");
  ASSERT_NE(a, nullptr);
  auto sa = a->NewStub();
  CreateCollection(*sa, "c");
  std::map<std::string, int> items;
  for (int i = 0; i < 40; ++i) items[absl::StrCat("early-", i)] = i;
  v1::IndexResponse indexed = Index(*sa, items);
  ASSERT_EQ(indexed.results_size(), 40);
  auto late = Replica("late", "ready_max_lag: 0");
  ASSERT_NE(late, nullptr);
  // No min_position: SERVING means caught up.
  v1::DescribeCollectionRequest describe;
  describe.set_name("c");
  v1::Collection collection;
  ASSERT_TRUE(late->NewStub()->DescribeCollection(Context().get(), describe, &collection).ok());
  EXPECT_EQ(collection.item_count(), 40);
  EXPECT_GE(collection.applied_position(), indexed.position());
}

TEST_F(ReplicasTest, BadStoreSettingsStopTheStartWithAClearError) {
  const std::string dir = testing::NewTempDir("bad-store");
  struct Case {
    std::string store;
    std::string says;
  };
  for (const Case& bad :
       {Case{"postgresql://retrace@127.0.0.1:notaport/db", "expected e.g. postgresql://"},
        Case{absl::StrCat("postgresql://secured:wrong@127.0.0.1:", postgres()->port(), "/postgres"),
             "password authentication failed"},
        Case{"postgresql://retrace@127.0.0.1:1/db", "cannot connect to PostgreSQL at "
                                                    "retrace@127.0.0.1:1/db"}}) {
    testing::ServerProcess server(testing::ServerOptions{
        FixtureDir() + "/oracle", dir, {"--store", bad.store}, nullptr, "", false});
    ASSERT_TRUE(server.Start().ok());  // it listens, then the start fails
    const int status = server.Stop();
    const std::string log = server.Log();
    EXPECT_NE(status, 0) << log;
    EXPECT_THAT(log, HasSubstr("--store")) << bad.store;
    EXPECT_THAT(log, HasSubstr(bad.says)) << bad.store;
    EXPECT_THAT(log, ::testing::Not(HasSubstr("wrong@"))) << "a password in the log";
  }
}

}  // namespace
}  // namespace retrace
