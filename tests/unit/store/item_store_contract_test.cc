// The ItemStore contract (core/store/item_store.h), run against both stores: SQLite (embedded)
// and PostgreSQL (a real server this binary starts on loopback; store_fixture.h). Collections,
// positions, the change feed a follower reads, compaction, replicas' records, WaitForChange and
// caption search; writing items is in item_store_writes_test.cc. The
// central checks: a follower paging the feed from any cursor ends with the store's state, and
// while writers run concurrently it never skips a change. Store-specific behaviour (SQLite's
// lock and migrations, PostgreSQL's commit ordering with a transaction held open) is in
// sqlite_item_store_test.cc and postgres_item_store_test.cc.
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/store/caption_terms.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/store/store_fixture.h"
#include "tests/unit/store/store_test_util.h"

namespace retrace::store {
namespace {

using ::retrace::store::testing::MakeItem;
using ::retrace::store::testing::SameItem;
using ::retrace::store::testing::TestCollection;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

::testing::AssertionResult SameState(const State& expected, const State& actual) {
  for (const auto& [id, item] : expected) {
    auto it = actual.find(id);
    if (it == actual.end()) {
      return ::testing::AssertionFailure() << "missing '" << absl::CHexEscape(id) << "'";
    }
    ::testing::AssertionResult same = SameItem(item, it->second);
    if (!same) return same << " (item '" << absl::CHexEscape(id) << "')";
  }
  for (const auto& [id, item] : actual) {
    if (expected.count(id) == 0) {
      return ::testing::AssertionFailure() << "unexpected '" << absl::CHexEscape(id) << "'";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST_P(StoreFixture, CreatesListsAndDropsCollections) {
  CollectionRecord art = TestCollection("art");
  CollectionRecord photos = TestCollection("photos");
  photos.shards = 1;
  photos.caption_dim = 1024;
  auto p = store_->CreateCollection(photos);
  auto a = store_->CreateCollection(art);
  ASSERT_TRUE(p.ok() && a.ok()) << p.status() << a.status();
  EXPECT_EQ(*a, *p + 1);

  auto state = store_->ReadState();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->last_position, *a);
  ASSERT_EQ(state->collections.size(), 2u);
  const CollectionRecord& first = state->collections[0];  // sorted by name
  EXPECT_EQ(first.name, "art");
  EXPECT_EQ(first.shards, 3);
  EXPECT_EQ(first.caption_index, "HNSW32");
  EXPECT_EQ(first.caption_dim, 8);
  EXPECT_EQ(first.clip_model, "clip-test@1");
  EXPECT_EQ(first.captioner_model, "captioner-test@2");
  EXPECT_EQ(first.image_index, "IVF4,Flat");
  EXPECT_EQ(first.image_dim, 12);
  EXPECT_EQ(first.image_encoder_model, "encoder-test@3");
  EXPECT_EQ(first.created_position, *a);
  EXPECT_EQ(first.last_change_position, *a);
  EXPECT_EQ(state->collections[1].name, "photos");
  EXPECT_EQ(state->collections[1].caption_dim, 1024);

  absl::Status again = store_->CreateCollection(art).status();
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_THAT(std::string(again.message()), HasSubstr("'art'"));
  EXPECT_EQ(store_->DropCollection("sketches").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Last(), *a) << "failed writes take no position";

  auto dropped = store_->DropCollection("art");
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(*dropped, *a + 1);
  state = store_->ReadState();
  ASSERT_EQ(state->collections.size(), 1u);
  EXPECT_EQ(state->collections[0].name, "photos");

  // Every item operation names a missing collection NOT_FOUND.
  const auto kNotFound = absl::StatusCode::kNotFound;
  EXPECT_EQ(store_->PutItems("art", {MakeItem("a")}).status().code(), kNotFound);
  EXPECT_EQ(store_->PutItems("art", {}).status().code(), kNotFound);
  EXPECT_EQ(store_->GetItems("art", {"a"}).status().code(), kNotFound);
  EXPECT_EQ(store_->GetItemsWithoutEmbeddings("art", {"a"}).status().code(), kNotFound);
  EXPECT_EQ(store_->GetItemVersions("art", {"a"}).status().code(), kNotFound);
  EXPECT_EQ(store_->DeleteItems("art", {"a"}).status().code(), kNotFound);
  EXPECT_EQ(store_->CountItems("art").status().code(), kNotFound);
  EXPECT_EQ(store_->ForEachItem("art", [](const StoredItem&) { return absl::OkStatus(); }).code(),
            kNotFound);
  EXPECT_EQ(store_->ReadChanges("art", *a, {}, 10).status().code(), kNotFound);
  EXPECT_EQ(store_->CompactDeletions("art", 0).code(), kNotFound);
  EXPECT_EQ(Last(), *dropped);
}

TEST_P(StoreFixture, RoundTripsItemsByteExact) {
  const std::string collection("c\0l", 3);
  ASSERT_TRUE(store_->CreateCollection(TestCollection(collection)).ok());
  std::vector<StoredItem> items;
  items.push_back(MakeItem("plain"));
  items.push_back(MakeItem(std::string("nul\0inside", 10)));
  items.push_back(MakeItem("naïve — 日本語 🎨"));
  items.push_back(MakeItem(""));                          // the empty id is just another key
  items.push_back(MakeItem(std::string("\xff\xfe", 2)));  // not UTF-8 at all
  items[0].caption = std::string("line one\nline two\r\n\0after a NUL", 31);
  items[1].attributes = {{"", ""}, {std::string("k\0", 2), std::string("\0v\xff", 3)}};
  items[2].attributes.clear();
  items[2].caption.clear();
  items[3].clip_image = {-0.0f, std::numeric_limits<float>::denorm_min(),
                         std::numeric_limits<float>::infinity(), std::nanf("0x2a")};
  items[4].clip_image.clear();
  items[4].caption_text.clear();
  std::vector<StoredItem> expected = items;

  auto position = store_->PutItems(collection, std::move(items));
  ASSERT_TRUE(position.ok()) << position.status();
  for (StoredItem& item : expected) item.position = *position;
  EXPECT_EQ(*store_->CountItems(collection), 5);

  std::vector<std::string> ids = {"missing",      expected[4].id, expected[0].id, expected[1].id,
                                  expected[2].id, expected[3].id, "nul"};
  auto got = store_->GetItems(collection, ids);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), ids.size());
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_FALSE((*got)[6].has_value());  // a prefix of "nul\0inside" is a different id
  for (int i : {1, 2, 3, 4, 5}) {
    ASSERT_TRUE((*got)[i].has_value()) << i;
    EXPECT_TRUE(SameItem(i == 1 ? expected[4] : expected[i - 2], *(*got)[i]));
    EXPECT_EQ((*got)[i]->position, *position);
  }
  auto texts = store_->GetItemsWithoutEmbeddings(collection, ids);
  ASSERT_TRUE(texts.ok()) << texts.status();
  for (int i : {1, 2, 3, 4, 5}) {
    ASSERT_TRUE((*texts)[i].has_value()) << i;
    StoredItem want = i == 1 ? expected[4] : expected[i - 2];
    want.clip_image.clear();
    want.caption_text.clear();
    want.image_features.clear();
    EXPECT_TRUE(SameItem(want, *(*texts)[i])) << i;
  }
  auto versions = store_->GetItemVersions(collection, ids);
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_FALSE((*versions)[0].has_value());
  ASSERT_TRUE((*versions)[2].has_value());
  EXPECT_EQ((*versions)[2]->content_hash, expected[0].content_hash);  // all 64 bits
  EXPECT_EQ((*versions)[2]->position, *position);
}

TEST_P(StoreFixture, PositionsAdvanceOncePerChangeAndSurviveARestart) {
  EXPECT_EQ(Last(), 0);
  auto created = store_->CreateCollection(TestCollection("art"));
  ASSERT_TRUE(created.ok());
  int64_t previous = *created;
  for (int batch = 0; batch < 4; ++batch) {
    std::vector<StoredItem> items;
    for (int i = 0; i < 10; ++i) items.push_back(MakeItem(absl::StrCat("b", batch, "-", i)));
    auto position = store_->PutItems("art", std::move(items));
    ASSERT_TRUE(position.ok()) << position.status();
    EXPECT_EQ(*position, previous + 1);  // one position per batch, not per item
    EXPECT_EQ(Last(), *position);
    previous = *position;
  }
  // An empty batch and a delete that removes nothing change nothing.
  auto empty = store_->PutItems("art", {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, previous);
  auto none = store_->DeleteItems("art", {"nobody"});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->position, previous);
  EXPECT_EQ(Last(), previous);
  auto removed = store_->DeleteItems("art", {"b0-0", "b0-1"});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->position, previous + 1);
  auto state = store_->ReadState();
  EXPECT_EQ(state->collections[0].last_change_position, previous + 1);

  Reopen();
  EXPECT_EQ(Last(), previous + 1);
  auto next = store_->PutItems("art", {MakeItem("after-reopen")});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, previous + 2);
}

TEST_P(StoreFixture, EverythingSurvivesARestartAndForEachVisitsAllOnce) {
  std::vector<StoredItem> expected;
  for (int i = 0; i < 600; ++i) expected.push_back(MakeItem(absl::StrCat("item-", i), 32, i));
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store_->CreateCollection(TestCollection("empty")).ok());
  for (size_t start = 0; start < expected.size(); start += 64) {
    std::vector<StoredItem> batch(expected.begin() + start,
                                  expected.begin() + std::min(start + 64, expected.size()));
    ASSERT_TRUE(store_->PutItems("art", std::move(batch)).ok());
  }
  Reopen();
  EXPECT_EQ(store_->ReadState()->collections.size(), 2u);
  EXPECT_EQ(*store_->CountItems("art"), 600);
  std::map<std::string, int> visits;
  ASSERT_TRUE(store_->ForEachItem("art", [&](const StoredItem& item) {
    ++visits[item.id];
    return item.clip_image.size() == 32 ? absl::OkStatus() : absl::DataLossError("torn");
  }).ok());
  ASSERT_EQ(visits.size(), expected.size());  // more than two pages of 256
  for (const StoredItem& item : expected) EXPECT_EQ(visits[item.id], 1) << item.id;
  EXPECT_TRUE(Dump("empty").empty());

  // The visitor runs with no lock or connection held: it may read and write the store.
  int visited = 0;
  absl::Status status = store_->ForEachItem("art", [&](const StoredItem& item) {
    if (++visited == 3) return absl::CancelledError(absl::StrCat("stop at ", item.id));
    return store_->PutItems("art", {MakeItem(item.id, 32, 7)}).status();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(visited, 3);
}

// For every position recorded during a run of puts, deletes, re-puts and upserts, a follower
// that had applied the state at that position and follows the feed from there (in small pages,
// so page boundaries fall inside positions) ends with the current state.
TEST_P(StoreFixture, FollowingTheFeedFromAnyPositionGivesTheCurrentState) {
  auto created = store_->CreateCollection(TestCollection("art"));
  ASSERT_TRUE(created.ok());
  std::mt19937 random(42);
  std::map<int64_t, State> states = {{*created, {}}};
  for (int step = 0; step < 40; ++step) {
    const int kind = static_cast<int>(random() % 3);
    std::vector<StoredItem> batch;
    std::set<std::string> ids;
    const int n = 1 + static_cast<int>(random() % 7);
    for (int i = 0; i < n; ++i) ids.insert(absl::StrCat("id", random() % 30));
    absl::StatusOr<int64_t> position;
    if (kind < 2) {
      for (const std::string& id : ids) batch.push_back(MakeItem(id, 8, step));
      position = store_->PutItems("art", std::move(batch));
    } else {
      auto deleted = store_->DeleteItems("art", {ids.begin(), ids.end()});
      position = deleted.ok() ? absl::StatusOr<int64_t>(deleted->position) : deleted.status();
    }
    ASSERT_TRUE(position.ok()) << position.status();
    states[*position] = Dump("art");
  }
  const State now = Dump("art");
  for (const auto& [position, then] : states) {
    for (int limit : {1, 3, 1000}) {
      State state = then;
      auto applied = Follow(*store_, "art", *created, {position, std::nullopt}, limit, &state);
      ASSERT_TRUE(applied.ok()) << applied.status();
      EXPECT_EQ(*applied, Last());
      EXPECT_TRUE(SameState(now, state)) << "from position " << position << ", pages of " << limit;
    }
  }
  // Changes come in (position, id) order, each item once, with its latest change only.
  auto page = store_->ReadChanges("art", *created, {0, std::nullopt}, 1000);
  ASSERT_TRUE(page.ok());
  std::set<std::string> seen;
  for (size_t i = 0; i < page->changes.size(); ++i) {
    EXPECT_TRUE(seen.insert(page->changes[i].id).second) << page->changes[i].id;
    if (i > 0) {
      EXPECT_LT(std::tie(page->changes[i - 1].position, page->changes[i - 1].id),
                std::tie(page->changes[i].position, page->changes[i].id));
    }
  }
}

TEST_P(StoreFixture, TheDeletionOfAnIdPutAgainIsForgotten) {
  auto created = store_->CreateCollection(TestCollection("art"));
  ASSERT_TRUE(store_->PutItems("art", {MakeItem("a"), MakeItem("b"), MakeItem("c")}).ok());
  const int64_t before = Last();
  auto deleted = store_->DeleteItems("art", {"a", "b", "zz"});
  ASSERT_TRUE(deleted.ok());
  StoredItem again = MakeItem("a", 8, 5);
  auto put = store_->PutItems("art", {again});
  ASSERT_TRUE(put.ok());

  auto page = store_->ReadChanges("art", *created, {before, std::nullopt}, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->changes.size(), 2u);
  EXPECT_EQ(page->changes[0].kind, Change::Kind::kDelete);
  EXPECT_EQ(page->changes[0].id, "b");
  EXPECT_EQ(page->changes[0].position, deleted->position);
  EXPECT_EQ(page->changes[1].kind, Change::Kind::kPut);
  EXPECT_TRUE(SameItem(again, page->changes[1].item));
  EXPECT_EQ(page->changes[1].position, *put);
  EXPECT_FALSE(page->more);
  EXPECT_EQ(page->last_position, *put);
  EXPECT_EQ(page->next.position, *put);
  EXPECT_EQ(page->next.id, std::optional<std::string>("a"));

  // Deleted again: the latest change, a deletion at the latest position.
  auto again_deleted = store_->DeleteItems("art", {"a"});
  page = store_->ReadChanges("art", *created, {before, std::nullopt}, 100);
  ASSERT_EQ(page->changes.size(), 2u);
  EXPECT_EQ(page->changes[1].id, "a");
  EXPECT_EQ(page->changes[1].kind, Change::Kind::kDelete);
  EXPECT_EQ(page->changes[1].position, again_deleted->position);
  page = store_->ReadChanges("art", *created, page->next, 100);
  EXPECT_TRUE(page->changes.empty());
  EXPECT_EQ(page->next.position, again_deleted->position);
}

TEST_P(StoreFixture, AFeedReadOfADroppedOrCompactedCollectionSaysSo) {
  auto created = store_->CreateCollection(TestCollection("art"));
  ASSERT_TRUE(store_->PutItems("art", {MakeItem("a"), MakeItem("b")}).ok());
  auto deleted = store_->DeleteItems("art", {"a"});
  ASSERT_TRUE(deleted.ok());
  ASSERT_TRUE(store_->PutItems("art", {MakeItem("c")}).ok());

  // Compaction: deletions at or below the position are forgotten, and so is the right to
  // read the feed from below it.
  EXPECT_EQ(store_->CompactDeletions("art", Last() + 1).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store_->CompactDeletions("art", deleted->position).ok());
  auto page = store_->ReadChanges("art", *created, {deleted->position - 1, std::nullopt}, 10);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kOutOfRange) << page.status();
  EXPECT_THAT(std::string(page.status().message()), HasSubstr("read every item instead"));
  page = store_->ReadChanges("art", *created, {deleted->position, std::nullopt}, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->changes.size(), 1u);
  EXPECT_EQ(page->changes[0].id, "c");
  ASSERT_TRUE(store_->CompactDeletions("art", 1).ok());  // lower: nothing more, no error
  EXPECT_TRUE(store_->ReadChanges("art", *created, {deleted->position, std::nullopt}, 10).ok());

  // Dropped, and created again: a follower of the old collection hears ABORTED.
  ASSERT_TRUE(store_->DropCollection("art").ok());
  EXPECT_EQ(store_->ReadChanges("art", *created, {0, std::nullopt}, 10).status().code(),
            absl::StatusCode::kNotFound);
  auto recreated = store_->CreateCollection(TestCollection("art"));
  ASSERT_TRUE(recreated.ok());
  EXPECT_GT(*recreated, *created);
  auto stale = store_->ReadChanges("art", *created, {0, std::nullopt}, 10);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted) << stale.status();
  EXPECT_THAT(std::string(stale.status().message()), HasSubstr("was dropped"));
  EXPECT_TRUE(store_->ReadChanges("art", *recreated, {0, std::nullopt}, 10).ok());
}

TEST_P(StoreFixture, ReplicasRecordTheirPositionsAndHeartbeats) {
  auto art = store_->CreateCollection(TestCollection("art"));
  ASSERT_TRUE(store_->CreateCollection(TestCollection("other")).ok());
  const absl::Time before = absl::Now() - absl::Seconds(1);
  ReplicaRecord a{"replica-a", "127.0.0.1:1", absl::FromUnixSeconds(1000), {}, {}};
  a.positions = {{"art", *art, 5, 3}, {"other", *art + 1, 5, -1}};
  ReplicaRecord b{"replica-b", "127.0.0.1:2", absl::FromUnixSeconds(2000), {}, {}};
  b.positions = {{"art", *art, 4, 4}};
  ASSERT_TRUE(store_->ReportReplica(a).ok());
  ASSERT_TRUE(store_->ReportReplica(b).ok());
  a.positions[0].applied = 6;  // a later report replaces the earlier one
  ASSERT_TRUE(store_->ReportReplica(a).ok());

  auto replicas = store_->ListReplicas();
  ASSERT_TRUE(replicas.ok()) << replicas.status();
  ASSERT_EQ(replicas->size(), 2u);
  const ReplicaRecord& ra = (*replicas)[0];
  EXPECT_EQ(ra.replica, "replica-a");
  EXPECT_EQ(ra.address, "127.0.0.1:1");
  EXPECT_EQ(ra.started, absl::FromUnixSeconds(1000));
  EXPECT_GE(ra.heartbeat, before);
  EXPECT_LE(ra.heartbeat, absl::Now() + absl::Seconds(1));
  ASSERT_EQ(ra.positions.size(), 2u);
  EXPECT_EQ(ra.positions[0].collection, "art");
  EXPECT_EQ(ra.positions[0].applied, 6);
  EXPECT_EQ(ra.positions[0].resume, 3);
  EXPECT_EQ(ra.positions[1].resume, -1);
  EXPECT_EQ((*replicas)[1].positions.size(), 1u);

  // Dropping a collection drops the replicas' positions for it; forgetting a replica, the rest.
  ASSERT_TRUE(store_->DropCollection("art").ok());
  replicas = store_->ListReplicas();
  ASSERT_EQ((*replicas)[0].positions.size(), 1u);
  EXPECT_EQ((*replicas)[0].positions[0].collection, "other");
  EXPECT_TRUE((*replicas)[1].positions.empty());
  ASSERT_TRUE(store_->ForgetReplica("replica-b").ok());
  EXPECT_EQ(store_->ForgetReplica("replica-b").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListReplicas()->size(), 1u);
  Reopen();
  EXPECT_EQ(store_->ListReplicas()->size(), 1u);
}

TEST_P(StoreFixture, WaitForChangeWakesOnAWriteAndTimesOutWithout) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  const int64_t last = Last();
  const absl::Time start = absl::Now();
  auto unchanged = store_->WaitForChange(last, absl::Milliseconds(200));
  ASSERT_TRUE(unchanged.ok());
  EXPECT_EQ(*unchanged, last);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));

  // A write through another store object (for PostgreSQL, as another server process would).
  std::unique_ptr<ItemStore> other;
  if (GetParam() == "postgresql") other = Open();
  ItemStore& writer = other != nullptr ? *other : *store_;
  std::thread write([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_TRUE(writer.PutItems("art", {MakeItem("x")}).ok());
  });
  auto woken = store_->WaitForChange(last, absl::Seconds(30));
  write.join();
  ASSERT_TRUE(woken.ok()) << woken.status();
  EXPECT_EQ(*woken, last + 1);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

// Writers on several threads (and, for PostgreSQL, several store objects: as several server
// processes) while a follower reads the feed in small pages and records positions as applied.
// Whenever it records P, its state must hold every change up to P — checked against the
// positions the writers were told — and at the end it must equal the store.
TEST_P(StoreFixture, AFollowerNeverSkipsAChangeWhileWritersCommitConcurrently) {
  auto created = store_->CreateCollection(TestCollection("art"));
  ASSERT_TRUE(created.ok());
  constexpr int kWriters = 4, kBatches = 25;
  std::vector<std::unique_ptr<ItemStore>> writers;
  for (int w = 0; w < kWriters; ++w) {
    if (GetParam() == "postgresql") writers.push_back(Open());
  }
  absl::Mutex mu;
  std::map<int64_t, std::vector<std::string>> acknowledged;  // position -> ids it put
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      ItemStore& store = writers.empty() ? *store_ : *writers[w];
      std::mt19937 random(w);
      for (int b = 0; b < kBatches; ++b) {
        std::vector<StoredItem> batch;
        std::vector<std::string> ids;
        for (int i = 0; i < 3; ++i) {
          ids.push_back(absl::StrCat("w", w, "-", random() % 40));
        }
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        for (const std::string& id : ids) batch.push_back(MakeItem(id, 8, b));
        auto position = store.PutItems("art", std::move(batch));
        ASSERT_TRUE(position.ok()) << position.status();
        absl::MutexLock lock(&mu);
        acknowledged[*position] = ids;
      }
    });
  }
  State state;
  ChangeCursor cursor{*created, std::nullopt};
  int64_t applied = *created;
  int checks = 0;
  while (true) {
    const bool last_round = done.load();
    auto page = store_->ReadChanges("art", *created, cursor, 5);
    ASSERT_TRUE(page.ok()) << page.status();
    for (Change& change : page->changes) state[change.id] = std::move(change.item);
    cursor = page->next;
    if (page->more) continue;
    applied = page->last_position;
    // Every id acknowledged at or below `applied` is in the state, at that version or later.
    absl::MutexLock lock(&mu);
    for (auto it = acknowledged.begin(); it != acknowledged.end() && it->first <= applied; ++it) {
      for (const std::string& id : it->second) {
        auto found = state.find(id);
        ASSERT_NE(found, state.end()) << id << " acknowledged at " << it->first
                                      << " missing at applied position " << applied;
        ASSERT_GE(found->second.position, it->first) << id;
        ++checks;
      }
    }
    if (last_round) break;
    if (acknowledged.size() == static_cast<size_t>(kWriters * kBatches)) done = true;
  }
  for (std::thread& t : threads) t.join();
  EXPECT_GT(checks, kWriters * kBatches);
  EXPECT_TRUE(SameState(Dump("art"), state));
}

// Lexical search over captions (SearchCaptions). Items with hand-written captions; every other
// field from MakeItem.
void PutCaptions(ItemStore& store, const std::string& collection,
                 const std::vector<std::pair<std::string, std::string>>& captions) {
  std::vector<StoredItem> items;
  for (const auto& [id, caption] : captions) {
    StoredItem item = MakeItem(id);
    item.caption = caption;
    items.push_back(std::move(item));
  }
  ASSERT_TRUE(store.PutItems(collection, std::move(items)).ok());
}

std::vector<std::string> FoundIds(const ItemStore& store, const std::string& collection,
                                  const std::string& text, int limit = 100) {
  auto found = store.SearchCaptions(collection, CaptionTerms(text), limit);
  EXPECT_TRUE(found.ok()) << found.status();
  std::vector<std::string> ids;
  if (!found.ok()) return ids;
  for (size_t i = 0; i < found->size(); ++i) {
    EXPECT_GT((*found)[i].score, 0) << (*found)[i].id;
    if (i > 0) {
      EXPECT_LE((*found)[i].score, (*found)[i - 1].score) << "not best first";
    }
    ids.push_back((*found)[i].id);
  }
  return ids;
}

TEST_P(StoreFixture, SearchCaptionsRanksMoreMatchesFirstAndOnlyThisCollection) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store_->CreateCollection(TestCollection("other")).ok());
  // "red" and "upper" match one word at the same place in captions as long: a tie, by id.
  PutCaptions(*store_, "art",
              {{"both", "a red bicycle by a red wall"},
               {"red", "a red car"},
               {"none", "a green tree in a field"},
               {"upper", "A RED Umbrella"}});
  PutCaptions(*store_, "other", {{"elsewhere", "a red bicycle"}});
  EXPECT_THAT(FoundIds(*store_, "art", "red bicycle"), ElementsAre("both", "red", "upper"));
  EXPECT_THAT(FoundIds(*store_, "art", "red bicycle", 1), ElementsAre("both"));
  EXPECT_THAT(FoundIds(*store_, "art", "umbrella"), ElementsAre("upper"));  // case folded
  EXPECT_THAT(FoundIds(*store_, "art", "unicorn"), ElementsAre());
  EXPECT_THAT(FoundIds(*store_, "other", "bicycle"), ElementsAre("elsewhere"));
  auto nothing = store_->SearchCaptions("art", {}, 10);
  ASSERT_TRUE(nothing.ok()) << nothing.status();
  EXPECT_TRUE(nothing->empty());
  EXPECT_EQ(store_->SearchCaptions("absent", {"red"}, 10).status().code(),
            absl::StatusCode::kNotFound);
}

// BM25 weighs a rare word above a common one; PostgreSQL's ts_rank_cd does not weigh rarity
// (item_store.h), so there the two one-word matches only have to be found.
TEST_P(StoreFixture, SearchCaptionsPrefersTheRarerWordOnSqlite) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  PutCaptions(*store_, "art",
              {{"common", "a red car"},
               {"rare", "a blue bicycle"},
               {"r1", "red roses"},
               {"r2", "red sky"},
               {"r3", "a red door"}});
  std::vector<std::string> ids = FoundIds(*store_, "art", "red bicycle");
  ASSERT_EQ(ids.size(), 5u);
  if (GetParam() == "sqlite") {
    EXPECT_EQ(ids[0], "rare");
  }
}

TEST_P(StoreFixture, SearchCaptionsFollowsReplacesDeletesAndDrops) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  PutCaptions(*store_, "art", {{"a", "a red bicycle"}, {"b", "a red car"}});
  PutCaptions(*store_, "art", {{"a", "a blue boat"}});  // replaced: its old words are gone
  EXPECT_THAT(FoundIds(*store_, "art", "bicycle"), ElementsAre());
  EXPECT_THAT(FoundIds(*store_, "art", "boat"), ElementsAre("a"));
  EXPECT_THAT(FoundIds(*store_, "art", "red"), ElementsAre("b"));
  ASSERT_TRUE(store_->DeleteItems("art", {"b"}).ok());
  EXPECT_THAT(FoundIds(*store_, "art", "red"), ElementsAre());
  ASSERT_TRUE(store_->DropCollection("art").ok());
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  EXPECT_THAT(FoundIds(*store_, "art", "boat"), ElementsAre());
  PutCaptions(*store_, "art", {{"c", "a boat again"}});
  Reopen();
  EXPECT_THAT(FoundIds(*store_, "art", "boat"), ElementsAre("c"));
}

// Terms are literal words: query syntax of either store (FTS5's quotes, OR/NOT/NEAR, '*', '^',
// column filters; tsquery's '&', '|', '!', ':*', quotes) in a term is matched as text or
// ignored, never parsed, and never an error.
TEST_P(StoreFixture, QuerySyntaxInTermsIsHarmless) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  PutCaptions(*store_, "art", {{"a", "a red bicycle"}, {"b", "not a car"}});
  for (const std::vector<std::string>& terms : std::vector<std::vector<std::string>>{
           {"red\" OR \"car"},
           {"NOT"},
           {"NEAR(red", "bicycle)"},
           {"bi*"},
           {"^red"},
           {"caption:red"},
           {"red & car", "!bicycle", "car:*", "'"},
           {"\"", "\\", ")", "(", "-"},
           {"\xe2\x80\x94"}}) {
    auto found = store_->SearchCaptions("art", terms, 10);
    ASSERT_TRUE(found.ok()) << found.status() << " for " << terms[0];
    for (const CaptionMatch& m : *found) EXPECT_THAT(m.id, ::testing::AnyOf("a", "b"));
  }
  // Through CaptionTerms the syntax characters only separate words.
  EXPECT_THAT(FoundIds(*store_, "art", "\"bicycle\" NOT (car)*"),
              ::testing::UnorderedElementsAre("a", "b"));
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreFixture, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace retrace::store
