// The store is the log (ARCHITECTURE.md): the engine, in process with the demo models and a
// real store (SQLite, or a PostgreSQL server the test starts), with faults injected where a
// write can fail halfway.
// - An item whose commit the index cannot apply is never acknowledged, never answered
//   "unchanged" while missing from the index, and becomes searchable once the fault clears —
//   across a snapshot and a restart too (the defect: stored but never searchable).
// - The same for a deletion.
// - A delete by filter that fails part way (a batch deleted from the store but not applied) keeps
//   what it did, leaves the rest, and the same call finishes it; item times filter searches and
//   lists, across a snapshot and a restart.
// - Deletions are compacted only below every live replica's resume position.
// - A collection's creation blocked in the store does not stall searches of other collections
//   (the defect: the engine-wide mutex held across fsync).
#include <algorithm>
#include <atomic>
#include <limits>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/engine/engine.h"
#include "core/store/internal/pg_connection.h"
#include "core/store/postgres_item_store.h"
#include "core/store/sqlite_item_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/logging.h"
#include "server/model_folder.h"
#include "tests/support/postgres_server.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class StoreLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(testing::FixtureDir() + "/demo/clip/model.pt")) {
      GTEST_SKIP() << "demo models not found in " << testing::FixtureDir();
    }
    dir_ = testing::NewTempDir("store-log");
  }

  // Open starts an engine on the SQLite store in dir_ (or `uri`), with snapshots in `snapshots`.
  std::unique_ptr<engine::Engine> Open(const std::string& replica, const std::string& uri = "",
                                       const std::string& snapshots = "") {
    auto models = server::LoadModelSet(testing::FixtureDir() + "/demo");
    EXPECT_TRUE(models.ok()) << models.status();
    if (!models.ok()) return nullptr;
    std::unique_ptr<store::ItemStore> store;
    if (uri.empty()) {
      auto sqlite = store::SqliteItemStore::Open(dir_ + "/data");
      EXPECT_TRUE(sqlite.ok()) << sqlite.status();
      store = std::move(*sqlite);
    } else {
      store::PostgresItemStore::Options options;
      options.conninfo = uri;
      options.poll_interval = absl::Milliseconds(50);
      auto postgres = store::PostgresItemStore::Open(options);
      EXPECT_TRUE(postgres.ok()) << postgres.status();
      if (!postgres.ok()) return nullptr;
      store = std::move(*postgres);
    }
    engine::EngineOptions options;
    options.snapshot_dir = snapshots.empty() ? dir_ + "/snapshots" : snapshots;
    options.snapshot_interval_seconds = -1;  // only when asked
    options.replication.replica_id = replica;
    options.replication.ack_timeout = absl::Milliseconds(400);
    options.replication.retry_min = absl::Milliseconds(20);
    options.replication.retry_max = absl::Milliseconds(100);
    options.replication.poll_interval = absl::Milliseconds(50);
    options.apply_fault_hook = [this](const std::string&,
                                      const std::vector<store::Change>& page) {
      const bool deletes = std::any_of(page.begin(), page.end(), [](const store::Change& c) {
        return c.kind == store::Change::Kind::kDelete;
      });
      if (deletes && delete_pages_before_failing_.fetch_sub(1) == 0) failing_ = true;
      return failing_.load() ? absl::ResourceExhaustedError("injected: the index is full")
                             : absl::OkStatus();
    };
    auto engine = engine::Engine::Open(std::move(options), std::move(*models), std::move(store),
                                       server::MakeServerLoggers(server::LogFormat::kText,
                                                                 spdlog::level::warn)
                                           .events);
    EXPECT_TRUE(engine.ok()) << engine.status();
    if (!engine.ok()) return nullptr;
    // Ready: caught up with the store, as the server waits for before SERVING.
    for (int i = 0; i < 500 && !(*engine)->Ready(); ++i) absl::SleepFor(absl::Milliseconds(10));
    return std::move(*engine);
  }

  static engine::IndexItem Item(const std::string& id, int seed) {
    engine::IndexItem item;
    item.id = id;
    item.image = testing::NoiseImage(32, 32, seed, ".png");
    item.caption = absl::StrCat("caption of ", id);
    return item;
  }

  // Found: whether a search by the item's own caption embedding returns it.
  static bool Found(engine::Engine& engine, const std::string& collection, const std::string& id) {
    auto stored = engine.Get(collection, {id}, engine::GetFields{/*embeddings=*/true});
    if (!stored.ok() || !(*stored)[0].status.ok()) return false;
    engine::SearchQuery query;
    query.kind = engine::SearchQuery::Kind::kEmbedding;
    query.embedding = (*stored)[0].item.caption_text;
    query.top_k = 50;
    auto found = engine.Search(collection, query);
    EXPECT_TRUE(found.ok()) << found.status();
    if (!found.ok()) return false;
    for (const engine::SearchHit& hit : found->hits) {
      if (hit.id == id) return true;
    }
    return false;
  }

  static engine::SearchQuery Text(const std::string& text) {
    engine::SearchQuery query;
    query.text = text;
    return query;
  }

  static bool Eventually(const std::function<bool()>& condition) {
    for (int i = 0; i < 300; ++i) {
      if (condition()) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return condition();
  }

  // Ids of a List over everything that satisfies `f` (all pages).
  static std::vector<std::string> ListIds(engine::Engine& engine, const std::string& collection,
                                          const filter::Filter& f) {
    std::vector<std::string> ids;
    std::string cursor;
    do {
      auto page = engine.List(collection, cursor, 7, {}, f);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const engine::ItemRecord& item : page->items) ids.push_back(item.id);
      cursor = page->next_cursor;
    } while (!cursor.empty());
    return ids;
  }

  std::string dir_;
  std::atomic<bool> failing_{false};
  // The follower fails (failing_) from the page after this many pages that hold deletions.
  std::atomic<int> delete_pages_before_failing_{std::numeric_limits<int>::max()};
};

TEST_F(StoreLogTest, AnItemTheIndexCannotApplyIsNeverAcknowledgedAndIsSearchableOnceItCan) {
  auto engine = Open("r1");
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->CreateCollection({"c"}).ok());
  ASSERT_TRUE(engine->Index("c", {Item("before", 1)}).ok());

  failing_ = true;
  auto written = engine->Index("c", {Item("x", 2)});
  ASSERT_TRUE(written.ok()) << written.status();
  const absl::Status& x = written->items[0].status;
  EXPECT_EQ(x.code(), absl::StatusCode::kUnavailable) << x;
  EXPECT_THAT(std::string(x.message()), HasSubstr("stored at position"));
  EXPECT_THAT(std::string(x.message()), HasSubstr("injected: the index is full"));
  EXPECT_GT(written->position, 0);
  auto described = engine->DescribeCollection("c");
  ASSERT_TRUE(described.ok());
  EXPECT_FALSE(described->degraded.ok());
  EXPECT_LT(described->applied_position, written->position);
  EXPECT_FALSE(Found(*engine, "c", "x"));

  // A retry is not "unchanged" while the item is missing from the index.
  auto retried = engine->Index("c", {Item("x", 2)});
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->items[0].status.code(), absl::StatusCode::kUnavailable);

  // A snapshot now records what is applied, not what is stored, and a restart with the fault
  // still there does not lose the pending change.
  ASSERT_TRUE(engine->SnapshotAll().ok());
  engine.reset();
  engine = Open("r1");
  ASSERT_NE(engine, nullptr);
  EXPECT_TRUE(Found(*engine, "c", "before"));
  EXPECT_FALSE(Found(*engine, "c", "x"));
  EXPECT_FALSE(engine->DescribeCollection("c")->degraded.ok());

  // The fault clears: the follower's retry applies it, with no client doing anything.
  failing_ = false;
  EXPECT_TRUE(Eventually([&] { return Found(*engine, "c", "x"); }));
  EXPECT_TRUE(engine->DescribeCollection("c")->degraded.ok());
  retried = engine->Index("c", {Item("x", 2)});
  ASSERT_TRUE(retried.ok());
  EXPECT_TRUE(retried->items[0].status.ok()) << retried->items[0].status;
  EXPECT_TRUE(retried->items[0].unchanged);
  EXPECT_EQ(retried->position, written->position);  // the stored version's

  ASSERT_TRUE(engine->SnapshotAll().ok());
  engine.reset();
  engine = Open("r1");
  ASSERT_NE(engine, nullptr);
  EXPECT_TRUE(Found(*engine, "c", "x"));
  EXPECT_TRUE(Found(*engine, "c", "before"));
}

TEST_F(StoreLogTest, ADeletionTheIndexCannotApplyStaysPendingUntilItCan) {
  auto engine = Open("r1");
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->CreateCollection({"c"}).ok());
  ASSERT_TRUE(engine->Index("c", {Item("x", 1), Item("y", 2)}).ok());
  ASSERT_TRUE(Found(*engine, "c", "x"));

  failing_ = true;
  auto deleted = engine->Delete("c", {"x", "absent"});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->items[0].status.code(), absl::StatusCode::kUnavailable)
      << deleted->items[0].status;
  EXPECT_THAT(std::string(deleted->items[0].status.message()), HasSubstr("deleted from the store"));
  EXPECT_EQ(deleted->items[1].status.code(), absl::StatusCode::kNotFound);
  engine.reset();  // a restart in between: the deletion is in the store's log
  engine = Open("r1");
  ASSERT_NE(engine, nullptr);
  failing_ = false;
  EXPECT_TRUE(Eventually([&] {
    auto described = engine->DescribeCollection("c");
    return described.ok() && described->item_count == 1 && described->degraded.ok();
  }));
  EXPECT_TRUE(Found(*engine, "c", "y"));
  engine::SearchQuery query;
  query.kind = engine::SearchQuery::Kind::kText;
  query.text = "caption of x";
  query.top_k = 50;
  auto found = engine->Search("c", query);
  ASSERT_TRUE(found.ok());
  for (const engine::SearchHit& hit : found->hits) EXPECT_NE(hit.id, "x");
}

TEST_F(StoreLogTest, ADeleteByFilterThatFailsPartWayKeepsWhatItDidAndTheRetryFinishes) {
  auto engine = Open("r1");
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->CreateCollection({"c"}).ok());
  // 300 items; 200 of them ("keep" = "no") are to go: more than two delete batches of 64.
  std::vector<std::string> doomed_ids, kept_ids;
  for (int call = 0; call < 6; ++call) {
    std::vector<engine::IndexItem> items;
    for (int i = call * 50; i < (call + 1) * 50; ++i) {
      engine::IndexItem item = Item(absl::StrCat("item-", 1000 + i), i);
      item.attributes["keep"] = i % 3 == 0 ? "yes" : "no";
      (i % 3 == 0 ? kept_ids : doomed_ids).push_back(item.id);
      items.push_back(std::move(item));
    }
    auto written = engine->Index("c", std::move(items));
    ASSERT_TRUE(written.ok()) << written.status();
  }
  const filter::Filter doomed = filter::Filter::Equals("keep", "no");
  auto counted = engine->DeleteMatching("c", doomed, /*dry_run=*/true);
  ASSERT_TRUE(counted.ok()) << counted.status();
  EXPECT_EQ(counted->matched, 200);
  EXPECT_EQ(counted->deleted, 0);
  EXPECT_EQ(engine->DescribeCollection("c")->item_count, 300);

  // The first batch is applied; the second is deleted from the store but not applied here.
  delete_pages_before_failing_ = 1;
  auto stopped = engine->DeleteMatching("c", doomed, /*dry_run=*/false);
  ASSERT_EQ(stopped.status().code(), absl::StatusCode::kUnavailable) << stopped.status();
  EXPECT_THAT(std::string(stopped.status().message()),
              HasSubstr("filter: stopped after deleting 128 of the 200 matching items read so "
                        "far (the same call again deletes the rest)"));
  EXPECT_THAT(std::string(stopped.status().message()), HasSubstr("injected: the index is full"));
  EXPECT_EQ(ListIds(*engine, "c", doomed).size(), 72u);  // the store's view

  // The fault clears: the pending batch is applied, and the same call deletes the rest.
  failing_ = false;
  delete_pages_before_failing_ = std::numeric_limits<int>::max();
  EXPECT_TRUE(Eventually([&] { return engine->DescribeCollection("c")->degraded.ok(); }));
  auto finished = engine->DeleteMatching("c", doomed, /*dry_run=*/false);
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->matched, 72);
  EXPECT_EQ(finished->deleted, 72);
  EXPECT_GT(finished->position, 0);

  EXPECT_TRUE(ListIds(*engine, "c", doomed).empty());
  EXPECT_EQ(ListIds(*engine, "c", filter::Filter::Equals("keep", "yes")), kept_ids);
  EXPECT_TRUE(Eventually([&] { return engine->DescribeCollection("c")->item_count == 100; }));
  // Nothing deleted is found, nothing kept is lost: one from each batch, and kept ones.
  for (const std::string& id : {doomed_ids[0], doomed_ids[100], doomed_ids[199]}) {
    auto got = engine->Get("c", {id}, {});
    ASSERT_TRUE(got.ok());
    EXPECT_EQ((*got)[0].status.code(), absl::StatusCode::kNotFound) << id;
  }
  engine::SearchQuery query;
  query.kind = engine::SearchQuery::Kind::kText;
  query.text = "caption of item";
  query.top_k = 300;
  auto found = engine->Search("c", query);
  ASSERT_TRUE(found.ok()) << found.status();
  std::vector<std::string> hits;
  for (const engine::SearchHit& hit : found->hits) hits.push_back(hit.id);
  std::sort(hits.begin(), hits.end());
  EXPECT_EQ(hits, kept_ids);

  // Bad requests name the field.
  auto bad = engine->DeleteMatching("c", filter::Filter::In("keep", {}), true);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("filter.condition.in.values"));
}

TEST_F(StoreLogTest, ItemTimesFilterSearchesAndListsAcrossASnapshotAndARestart) {
  auto engine = Open("r1");
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->CreateCollection({"c"}).ok());
  ASSERT_TRUE(engine->Index("c", {Item("early", 1)}).ok());
  absl::SleepFor(absl::Milliseconds(20));
  const double cut = static_cast<double>(absl::ToUnixMillis(absl::Now()));
  absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(engine->Index("c", {Item("late", 2)}).ok());
  const filter::Filter recent =
      filter::Filter::Time(filter::Condition::Subject::kCreated, filter::Bound{cut, true}, {});

  auto check = [&](const std::string& when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(ListIds(*engine, "c", recent), std::vector<std::string>{"late"});
    engine::SearchQuery query = Text("caption of early");
    query.kind = engine::SearchQuery::Kind::kText;
    query.top_k = 10;
    query.filter = recent;
    auto found = engine->Search("c", query);
    ASSERT_TRUE(found.ok()) << found.status();
    ASSERT_EQ(found->hits.size(), 1u);
    EXPECT_EQ(found->hits[0].id, "late");
  };
  check("served as applied");
  ASSERT_TRUE(engine->SnapshotAll().ok());
  engine.reset();
  engine = Open("r1");
  ASSERT_NE(engine, nullptr);
  check("after a restart from the snapshot");
}

// Lexical search (CAPTION_TEXT) ranks in the store, which may be ahead of this replica: an item
// stored but not applied here is never a hit until it is, and when a filter cuts the store's
// first answer the engine reads deeper until top_k pass (search.h's banner).
TEST_F(StoreLogTest, CaptionTextHitsOnlyItemsThisReplicaHoldsAndReadsDeeperForAFilter) {
  auto engine = Open("r1");
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->CreateCollection({"c"}).ok());
  // Ten equal captions (a tie, ranked by id); only the last passes the filter.
  std::vector<engine::IndexItem> zebras;
  for (int i = 0; i < 10; ++i) {
    engine::IndexItem item = Item(absl::StrCat("z", i), 10 + i);
    item.caption = "a zebra";
    item.attributes["license"] = i == 9 ? "cc-by" : "proprietary";
    zebras.push_back(std::move(item));
  }
  ASSERT_TRUE(engine->Index("c", zebras).ok());
  engine::SearchQuery query = Text("zebra");
  query.mode = engine::SearchMode::kCaptionText;
  query.top_k = 1;
  query.filter = filter::Filter::Equals("license", "cc-by");
  auto found = engine->Search("c", query);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->hits.size(), 1u);  // past the first read of top_k x 4 matches
  EXPECT_EQ(found->hits[0].id, "z9");
  EXPECT_EQ(found->hits[0].attributes.at("license"), "cc-by");

  failing_ = true;
  engine::IndexItem okapi = Item("okapi", 30);
  okapi.caption = "an okapi";
  auto written = engine->Index("c", {okapi});
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->items[0].status.code(), absl::StatusCode::kUnavailable);
  query = Text("okapi");
  query.mode = engine::SearchMode::kCaptionText;
  found = engine->Search("c", query);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(found->hits.empty()) << "stored, but not applied on this replica";
  failing_ = false;
  EXPECT_TRUE(Eventually([&] {
    auto again = engine->Search("c", query);
    return again.ok() && again->hits.size() == 1 && again->hits[0].id == "okapi";
  }));
}

using PostgresStoreLogTest = testing::SharedPostgres<StoreLogTest>;

// Two replicas share a store; A deletes and snapshots. The deletions stay recorded while B, which
// has not snapshotted since, would need them to resume; once B has snapshotted past them, A's
// next snapshot compacts them.
TEST_F(PostgresStoreLogTest, DeletionsAreCompactedOnlyBelowEveryLiveReplicasResumePosition) {
  ASSERT_NE(postgres(), nullptr);
  const std::string uri = postgres()->NewDatabase("compaction");
  auto a = Open("replica-a", uri, dir_ + "/snapshots-a");
  auto b = Open("replica-b", uri, dir_ + "/snapshots-b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->CreateCollection({"c"}).ok());
  auto put = a->Index("c", {Item("x", 1), Item("y", 2)});
  ASSERT_TRUE(put.ok());
  engine::CallOptions at_put;
  at_put.min_position = put->position;
  at_put.deadline = absl::Now() + absl::Seconds(10);
  ASSERT_TRUE(b->Search("c", Text("x"), at_put).ok());
  ASSERT_TRUE(b->SnapshotAll().ok());  // B resumes from the put

  auto deleted = a->Delete("c", {"x"});
  ASSERT_TRUE(deleted.ok() && deleted->items[0].status.ok());
  ASSERT_TRUE(a->SnapshotAll().ok());  // A resumes from the deletion; B still from the put

  store::PostgresItemStore::Options options;
  options.conninfo = uri;
  auto store = store::PostgresItemStore::Open(options);
  ASSERT_TRUE(store.ok());
  const int64_t created = a->DescribeCollection("c")->created_position;
  auto page = (*store)->ReadChanges("c", created, {put->position, std::nullopt}, 10);
  ASSERT_TRUE(page.ok()) << "the deletion B needs was compacted: " << page.status();
  ASSERT_EQ(page->changes.size(), 1u);
  EXPECT_EQ(page->changes[0].kind, store::Change::Kind::kDelete);

  // B catches up and snapshots past the deletion; A's next snapshot may now forget it.
  at_put.min_position = deleted->position;
  ASSERT_TRUE(b->Search("c", Text("x"), at_put).ok());
  ASSERT_TRUE(b->SnapshotAll().ok());
  ASSERT_TRUE(a->Index("c", {Item("z", 3)}).ok());  // so A has something to snapshot
  ASSERT_TRUE(a->SnapshotAll().ok());
  page = (*store)->ReadChanges("c", created, {put->position, std::nullopt}, 10);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kOutOfRange) << page.status();
}

// A creation that waits in the store (another transaction holds the position counter) must not
// hold up searches of another collection, nor another replica's view of the cluster.
TEST_F(PostgresStoreLogTest, ACollectionCreationBlockedInTheStoreDoesNotStallSearches) {
  ASSERT_NE(postgres(), nullptr);
  const std::string uri = postgres()->NewDatabase("blocked");
  auto engine = Open("replica-a", uri);
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->CreateCollection({"a"}).ok());
  ASSERT_TRUE(engine->Index("a", {Item("x", 1)}).ok());

  auto held = store::internal::pg::Connection::Open(uri, 5);
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE((*held)->ExecSimple("BEGIN", "begin").ok());
  ASSERT_TRUE((*held)->ExecSimple("UPDATE retrace_meta SET value = value + 1 "
                                  "WHERE key = 'last_position'", "hold").ok());
  auto create = std::async(std::launch::async, [&] { return engine->CreateCollection({"b"}); });
  EXPECT_EQ(create.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  for (int i = 0; i < 5; ++i) {
    const absl::Time start = absl::Now();
    EXPECT_TRUE(Found(*engine, "a", "x"));
    EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "a search waited for the blocked create";
  }
  EXPECT_TRUE(engine->ListCollections().ok());
  ASSERT_TRUE((*held)->ExecSimple("ROLLBACK", "release").ok());
  auto created = create.get();
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->spec.name, "b");
}

}  // namespace
}  // namespace retrace
