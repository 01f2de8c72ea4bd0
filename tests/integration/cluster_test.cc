// The sharded cluster (ARCHITECTURE.md, "Cluster"; issue 15): real retrace-server processes in
// the three roles and a PostgreSQL server, all on loopback, started by the test.
// - A frontend over shard groups answers every search mode exactly as one `--role all` process
//   over the same store: ids, order, scores, captions and score parts, with and without a filter.
// - One replica of a group killed (SIGKILL) under a stream of searches: no search fails after
//   the kill (the frontend fails over within the call); both replicas of a group killed:
//   UNAVAILABLE naming the group's shards, or with allow_partial an answer marked with them;
//   the replicas restarted: complete answers again.
// - A frontend killed (SIGKILL) during a streaming Index: every item it acknowledged is found
//   by a search through another frontend at the acknowledged position.
// - A shard map with a replica listed twice, or that does not name the server, stops the start
//   with the entry named; a bad map written over a frontend's is refused and the old one stays;
//   a shard server asked for another group answers FAILED_PRECONDITION.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/index/sharded_index.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrace/v1/shard.grpc.pb.h"
#include "tests/support/postgres_server.h"
#include "tests/support/server_process.h"
#include "tests/support/shared_data.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::Context;
using testing::FixtureDir;
using ::testing::HasSubstr;

constexpr int kShards = 6;
constexpr int kItems = 36;

class ClusterTest : public testing::SharedPostgres<> {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/clip/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir();
    }
    ASSERT_NE(postgres(), nullptr);
    uri_ = postgres()->NewDatabase("cluster");
    pool_ = testing::LoadOracleImages();
    ASSERT_FALSE(pool_.empty());
    dir_ = absl::StrCat(testing::BinaryDir(), "/test_tmp/cluster-", postgres()->port(), "-",
                        uri_.substr(uri_.rfind('/') + 1));
    fs::create_directories(dir_);
  }

  // WriteMap writes a shard map of `groups` x `replicas` fresh loopback addresses to `path` and
  // returns them, by group.
  static std::vector<std::vector<std::string>> WriteMap(const std::string& path, int groups,
                                                        int replicas) {
    std::vector<std::vector<std::string>> addresses(groups);
    std::ofstream out(path);
    for (int g = 0; g < groups; ++g) {
      out << "groups {\n";
      for (int r = 0; r < replicas; ++r) {
        addresses[g].push_back(absl::StrCat("127.0.0.1:", testing::FreePort()));
        out << "  replicas: \"" << addresses[g].back() << "\"\n";
      }
      out << "}\n";
    }
    return addresses;
  }

  // Server starts a server named `name` on the shared store with `args` (its role, ...).
  std::unique_ptr<testing::ServerProcess> Server(const std::string& name,
                                                 std::vector<std::string> args,
                                                 bool expect_start = true) {
    const std::string dir = absl::StrCat(dir_, "/", name);
    fs::create_directories(dir);
    const std::string config = dir + ".textproto";
    std::ofstream(config) << "replication { poll_interval_ms: 100 }\n"
                          << "cluster { shard_map_poll_ms: 100 }\n";
    args.insert(args.end(), {"--config", config, "--store", uri_, "--replica-id", name});
    auto server = std::make_unique<testing::ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/oracle", dir, args, nullptr, "", true});
    absl::Status started = server->Start();
    if (expect_start) EXPECT_TRUE(started.ok()) << started << server->LogTail();
    return server;
  }
  std::unique_ptr<testing::ServerProcess> Shard(const std::string& name,
                                                const std::string& address) {
    return Server(name, {"--role", "shard", "--shard-map", map_, "--listen", address});
  }

  // StartCluster: the shard map, a shard server per address and one frontend.
  void StartCluster(int groups, int replicas) {
    map_ = dir_ + "/shard-map.txtpb";
    addresses_ = WriteMap(map_, groups, replicas);
    for (int g = 0; g < groups; ++g) {
      for (int r = 0; r < replicas; ++r) {
        shards_[{g, r}] = Shard(absl::StrCat("shard-", g, "-", r), addresses_[g][r]);
      }
    }
    frontend_ = Server("frontend", {"--role", "frontend", "--shard-map", map_});
  }

  // Populate creates collection c (kShards shards) through `stub` and indexes kItems pool images
  // with attributes, returning the write's position.
  int64_t Populate(v1::Retrace::Stub& stub) {
    v1::CreateCollectionRequest create;
    create.mutable_collection()->set_name("c");
    create.mutable_collection()->set_shards(kShards);
    v1::Collection created;
    grpc::Status status = stub.CreateCollection(Context().get(), create, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    auto context = Context(120);
    auto stream = stub.Index(context.get());
    v1::IndexRequest request;
    request.set_collection("c");
    for (int i = 0; i < kItems; ++i) {
      v1::Item* item = request.add_items();
      item->set_id(absl::StrCat("item-", i));
      item->set_image(pool_[i % pool_.size()].bytes);
      (*item->mutable_attributes())["parity"] = i % 2 == 0 ? "even" : "odd";
    }
    v1::IndexResponse response;
    EXPECT_TRUE(stream->Write(request) && stream->Read(&response));
    stream->WritesDone();
    status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    for (const v1::IndexResult& r : response.results()) {
      EXPECT_EQ(r.status().code(), 0) << r.DebugString();
    }
    return response.position();
  }

  // Answer: everything a search answers that must match, as text.
  static std::string Answer(v1::Retrace::Stub& stub, v1::SearchRequest request, int64_t position,
                            grpc::Status* status_out = nullptr, v1::SearchResponse* out = nullptr) {
    request.set_collection("c");
    request.set_min_position(position);
    v1::SearchResponse response;
    grpc::Status status = stub.Search(Context().get(), request, &response);
    if (status_out != nullptr) *status_out = status;
    if (out != nullptr) *out = response;
    if (!status.ok())
      return absl::StrCat("error ", status.error_code(), ": ", status.error_message());
    std::string text = absl::StrCat("q_t=", response.query_caption(), "\n");
    for (v1::SearchHit hit : response.hits()) {
      absl::StrAppend(&text, hit.ShortDebugString(), "\n");
    }
    return text;
  }

  // Requests: a search of every mode and query kind, with and without a filter.
  std::vector<v1::SearchRequest> Requests() const {
    std::vector<v1::SearchRequest> requests;
    const std::string label = pool_[0].label;
    for (bool filtered : {false, true}) {
      v1::SearchRequest text;
      text.set_text(absl::StrCat("a picture of a ", label));
      text.set_top_k(12);
      v1::SearchRequest image;
      image.set_image(pool_[1].bytes);
      image.set_top_k(12);
      for (v1::SearchRequest r : {text, image}) {
        for (v1::SearchMode mode : {v1::CAPTION_MATCH, v1::PROVENANCE, v1::HYBRID}) {
          r.set_mode(mode);
          r.mutable_provenance()->set_candidates(20);
          if (filtered) {
            v1::FilterCondition& c = *r.mutable_filter()->mutable_condition();
            c.set_attribute("parity");
            c.set_equals("even");
          }
          requests.push_back(r);
        }
      }
      v1::SearchRequest lexical = text;
      lexical.set_mode(v1::HYBRID);
      lexical.mutable_hybrid()->set_lexical(true);
      requests.push_back(lexical);
      v1::SearchRequest words = text;
      words.set_mode(v1::CAPTION_TEXT);
      requests.push_back(words);
      v1::SearchRequest by_item;
      by_item.set_item_id("item-3");
      by_item.set_mode(v1::PROVENANCE);
      requests.push_back(by_item);
    }
    return requests;
  }

  std::string uri_, dir_, map_;
  std::vector<testing::OracleImage> pool_;
  std::vector<std::vector<std::string>> addresses_;
  std::map<std::pair<int, int>, std::unique_ptr<testing::ServerProcess>> shards_;
  std::unique_ptr<testing::ServerProcess> frontend_;
};

TEST_F(ClusterTest, AFrontendAnswersEveryModeAsOneProcessDoes) {
  StartCluster(/*groups=*/3, /*replicas=*/1);
  ASSERT_TRUE(frontend_ && frontend_->pid() > 0);
  auto whole = Server("all", {});
  auto front = frontend_->NewStub(), one = whole->NewStub();
  const int64_t position = Populate(*front);
  ASSERT_GT(position, 0);
  int compared = 0;
  for (const v1::SearchRequest& request : Requests()) {
    v1::SearchResponse response;
    const std::string expected = Answer(*one, request, position);
    ASSERT_THAT(expected, ::testing::Not(HasSubstr("error"))) << request.ShortDebugString();
    EXPECT_EQ(Answer(*front, request, position, nullptr, &response), expected)
        << request.ShortDebugString();
    EXPECT_GE(response.applied_position(), position);
    EXPECT_TRUE(response.missing_shards().empty());
    ++compared;
  }
  EXPECT_EQ(compared, 18);
  // A filter that passes items of every shard still ranks them all: the answer is not one
  // group's.
  v1::SearchRequest all;
  all.set_text("a picture");
  all.set_top_k(kItems);
  v1::SearchResponse response;
  Answer(*front, all, position, nullptr, &response);
  EXPECT_EQ(response.hits_size(), kItems);
}

TEST_F(ClusterTest, AFrontendFailsOverAndAnswersPartiallyWhenAGroupIsDown) {
  StartCluster(/*groups=*/3, /*replicas=*/2);
  ASSERT_TRUE(frontend_ && frontend_->pid() > 0);
  auto front = frontend_->NewStub();
  const int64_t position = Populate(*front);
  v1::SearchRequest request;
  request.set_text("a picture");
  request.set_top_k(kItems);
  const std::string complete = Answer(*front, request, position);
  ASSERT_EQ(std::count(complete.begin(), complete.end(), '\n'), kItems + 1) << complete;

  // One replica of group 1 killed under a stream of searches: none fails once it is dead.
  std::atomic<bool> killed{false}, stop{false};
  std::atomic<int> after_kill{0}, failed_after_kill{0};
  std::vector<std::string> failures;
  std::mutex failures_mu;
  std::thread searcher([&] {
    auto stub = frontend_->NewStub();
    while (!stop) {
      const bool dead = killed.load();
      grpc::Status status;
      const std::string answer = Answer(*stub, request, position, &status);
      if (!dead) continue;
      ++after_kill;
      if (!status.ok() || answer != complete) {
        ++failed_after_kill;
        std::lock_guard<std::mutex> lock(failures_mu);
        failures.push_back(answer);
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  shards_[{1, 0}]->Kill();
  killed = true;
  while (after_kill < 30) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  searcher.join();
  EXPECT_EQ(failed_after_kill, 0) << absl::StrJoin(failures, "\n---\n");

  // cluster status through the frontend: the map, the killed replica unreachable, the others
  // serving and known by their records in the store.
  v1::ClusterStatus cluster;
  ASSERT_TRUE(front->GetClusterStatus(Context().get(), {}, &cluster).ok());
  ASSERT_EQ(cluster.shard_groups_size(), 3);
  std::set<std::string> recorded;
  for (const v1::ReplicaStatus& r : cluster.replicas()) recorded.insert(r.address());
  for (const v1::ShardGroupStatus& g : cluster.shard_groups()) {
    ASSERT_EQ(g.replicas_size(), 2);
    for (int r = 0; r < 2; ++r) {
      EXPECT_EQ(g.replicas(r).address(), addresses_[g.group()][r]);
      EXPECT_TRUE(recorded.count(g.replicas(r).address())) << g.replicas(r).address();
      if (g.group() == 1 && r == 0) {
        EXPECT_THAT(g.replicas(r).health(), HasSubstr("UNREACHABLE"));
      } else {
        EXPECT_EQ(g.replicas(r).health(), "SERVING");
      }
    }
  }

  // Both replicas of group 1 down: UNAVAILABLE naming its shards (1 and 4 of 6) ...
  shards_[{1, 1}]->Kill();
  grpc::Status status;
  Answer(*front, request, position, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("group 1 (shards 1, 4)"));
  // ... or, allowed, an answer from the other groups marked with the shards it lacks.
  v1::SearchRequest partial = request;
  partial.set_allow_partial(true);
  v1::SearchResponse response;
  Answer(*front, partial, position, &status, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(response.missing_shards(), ::testing::ElementsAre(1, 4));
  int expected_hits = 0;
  for (int i = 0; i < kItems; ++i) {
    const int shard =
        static_cast<int>(index::ShardedIndex::ShardOf(absl::StrCat("item-", i), kShards));
    if (shard % 3 != 1) ++expected_hits;
  }
  EXPECT_EQ(response.hits_size(), expected_hits);
  for (const v1::SearchHit& hit : response.hits()) {
    EXPECT_NE(index::ShardedIndex::ShardOf(hit.id(), kShards) % 3, 1u) << hit.id();
  }

  // Restarted (on their addresses): complete answers again, once the frontend reconnects
  // (within defaults::kShardReconnectBackoffMaxMs).
  for (int r : {0, 1}) {
    shards_[{1, r}] = Shard(absl::StrCat("shard-1-", r, "-again"), addresses_[1][r]);
  }
  std::string again;
  for (int i = 0; i < 50 && again != complete; ++i) {
    again = Answer(*front, request, position);
    if (again != complete) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(again, complete);
  EXPECT_EQ(Answer(*front, partial, position, nullptr, &response), complete);
  EXPECT_TRUE(response.missing_shards().empty());
}

TEST_F(ClusterTest, AFrontendKilledDuringIngestLosesNothingAcknowledged) {
  StartCluster(/*groups=*/2, /*replicas=*/1);
  ASSERT_TRUE(frontend_ && frontend_->pid() > 0);
  auto other = Server("frontend-b", {"--role", "frontend", "--shard-map", map_});
  auto sb = other->NewStub();
  Populate(*sb);
  std::set<std::string> acknowledged;
  int64_t position = 0;
  std::atomic<int> answered{0};
  std::thread client([&] {
    auto stub = frontend_->NewStub();
    grpc::ClientContext context;
    auto stream = stub->Index(&context);
    for (int n = 0;; ++n) {
      v1::IndexRequest request;
      request.set_collection("c");
      for (int i = 0; i < 3; ++i) {
        v1::Item* item = request.add_items();
        item->set_id(absl::StrCat("streamed-", n, "-", i));
        item->set_image(pool_[(n + i) % pool_.size()].bytes);
      }
      v1::IndexResponse response;
      if (!stream->Write(request) || !stream->Read(&response)) break;
      for (int i = 0; i < response.results_size(); ++i) {
        if (response.results(i).status().code() == 0) acknowledged.insert(request.items(i).id());
      }
      position = std::max(position, response.position());
      ++answered;
    }
    context.TryCancel();
    stream->Finish();
  });
  for (int i = 0; i < 3000 && answered.load() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  frontend_->Kill();
  client.join();
  ASSERT_GE(acknowledged.size(), 9u);
  v1::SearchRequest request;
  request.set_collection("c");
  request.set_text("a picture");
  request.set_top_k(1000);
  request.set_min_position(position);
  v1::SearchResponse response;
  grpc::Status status = sb->Search(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::set<std::string> found;
  for (const v1::SearchHit& hit : response.hits()) found.insert(hit.id());
  for (const std::string& id : acknowledged) EXPECT_TRUE(found.count(id)) << id;
}

TEST_F(ClusterTest, BadShardMapsAreRefusedAtStartAndAtReload) {
  map_ = dir_ + "/shard-map.txtpb";
  const std::string address = absl::StrCat("127.0.0.1:", testing::FreePort());
  // The same replica in two groups: a server with two owners.
  const std::string twice = dir_ + "/twice.txtpb";
  std::ofstream(twice) << "groups { replicas: \"" << address << "\" }\n"
                       << "groups { replicas: \"" << address << "\" }\n";
  auto refused = Server("twice", {"--role", "frontend", "--shard-map", twice}, false);
  EXPECT_LT(refused->pid(), 0);
  EXPECT_THAT(refused->Log(), HasSubstr("groups[1].replicas[0]: '" + address +
                                        "' is listed already as groups[0].replicas[0]"));
  // A shard server the map does not name.
  std::ofstream(map_) << "groups { replicas: \"" << address << "\" }\n";
  auto stranger = Server("stranger", {"--role", "shard", "--shard-map", map_}, false);
  EXPECT_LT(stranger->pid(), 0);
  EXPECT_THAT(stranger->Log(), HasSubstr("the shard map lists no replica"));
  // Role all takes no map; a frontend needs one.
  auto needs = Server("needs", {"--role", "frontend"}, false);
  EXPECT_THAT(needs->Log(), HasSubstr("needs cluster.shard_map (--shard-map)"));

  // A working pair; then a bad map written over the frontend's is refused, the old one stays.
  auto shard = Shard("shard", address);
  frontend_ = Server("frontend", {"--role", "frontend", "--shard-map", map_});
  auto front = frontend_->NewStub();
  const int64_t position = Populate(*front);
  v1::SearchRequest request;
  request.set_text("a picture");
  request.set_top_k(5);
  const std::string before = Answer(*front, request, position);
  ASSERT_THAT(before, ::testing::Not(HasSubstr("error")));
  std::ofstream(map_) << "groups { }\n";
  for (int i = 0; i < 100 && !absl::StrContains(frontend_->Log(), "stays"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_THAT(frontend_->Log(),
              HasSubstr("groups[0].replicas: 0 replicas, not 1..64; the shard map in force stays"));
  EXPECT_EQ(Answer(*front, request, position), before);

  // The shard server refuses a request for another group (another map's view of it).
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::ShardService::NewStub(channel);
  v1::SearchSpacesRequest other;
  other.set_collection("c");
  other.set_group(1);
  other.set_groups(2);
  v1::SearchSpacesResponse unused;
  grpc::Status status = stub->SearchSpaces(Context().get(), other, &unused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("serves group 0 of 1, not group 1 of 2"));
  // Its own group, asked badly: errors name the field.
  v1::SearchSpacesRequest bad;
  bad.set_collection("c");
  bad.set_groups(1);
  status = stub->SearchSpaces(Context().get(), bad, &unused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("queries: 0 queries, not 1..4"));
  v1::SpaceQuery& query = *bad.add_queries();
  query.add_vector(1.f);
  query.set_k(5);
  status = stub->SearchSpaces(Context().get(), bad, &unused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("queries[0].vector: 1 values, but the space has"));
}

}  // namespace
}  // namespace retrace
