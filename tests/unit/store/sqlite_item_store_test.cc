// Behaviour of SqliteItemStore: collections, items, sequence numbers, reopening, locking and
// concurrent use. Failure paths (damaged files, a full disk) are in
// sqlite_item_store_failure_test.cc; crashes in crash_durability_test.cc.
#include "core/store/sqlite_item_store.h"

#include <cmath>
#include <limits>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/store/store_test_util.h"

namespace retrace::store {
namespace {

using ::retrace::store::testing::MakeItem;
using ::retrace::store::testing::SameItem;
using ::retrace::store::testing::ScratchDir;
using ::retrace::store::testing::TestCollection;
using ::testing::HasSubstr;

std::unique_ptr<SqliteItemStore> OpenOrDie(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<SqliteItemStore>> store = SqliteItemStore::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(store).value() : nullptr;
}

TEST(SqliteItemStoreTest, CreatesListsAndDropsCollections) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  CollectionRecord art = TestCollection("art");
  CollectionRecord photos = TestCollection("photos");
  photos.shards = 1;
  photos.caption_dim = 1024;
  ASSERT_TRUE(store->CreateCollection(photos).ok());
  ASSERT_TRUE(store->CreateCollection(art).ok());

  absl::StatusOr<std::vector<CollectionRecord>> list = store->ListCollections();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  const CollectionRecord& first = (*list)[0];  // sorted by name: "art" < "photos"
  EXPECT_EQ(first.name, "art");
  EXPECT_EQ(first.shards, 3);
  EXPECT_EQ(first.caption_index, "HNSW32");
  EXPECT_EQ(first.caption_dim, 8);
  EXPECT_EQ(first.clip_model, "clip-test@1");
  EXPECT_EQ(first.captioner_model, "captioner-test@2");
  EXPECT_EQ(first.image_index, "IVF4,Flat");
  EXPECT_EQ(first.image_dim, 12);
  EXPECT_EQ(first.image_encoder_model, "encoder-test@3");
  EXPECT_EQ((*list)[1].name, "photos");
  EXPECT_EQ((*list)[1].caption_dim, 1024);

  absl::Status again = store->CreateCollection(art).status();
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_THAT(std::string(again.message()), HasSubstr("'art'"));
  EXPECT_EQ(store->DropCollection("sketches").code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(store->DropCollection("art").ok());
  list = store->ListCollections();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "photos");

  // Every item operation names a missing collection NOT_FOUND.
  EXPECT_EQ(store->PutItems("art", {MakeItem("a")}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->PutItems("art", {}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetItems("art", {"a"}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->DeleteItems("art", {"a"}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->CountItems("art").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->ForEachItem("art", [](const StoredItem&) { return absl::OkStatus(); }).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetContentHashes("art", {"a"}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store
                ->ForEachChangeSince(
                    "art", 0, [](const StoredItem&) { return absl::OkStatus(); },
                    [](const std::string&) { return absl::OkStatus(); })
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->CompactDeletions("art", 0).code(), absl::StatusCode::kNotFound);
}

TEST(SqliteItemStoreTest, RoundTripsItemsByteExact) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection(std::string("c\0l", 3))).ok());
  const std::string collection("c\0l", 3);

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

  absl::StatusOr<int64_t> seq = store->PutItems(collection, std::move(items));
  ASSERT_TRUE(seq.ok()) << seq.status();
  absl::StatusOr<int64_t> count = store->CountItems(collection);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 5);

  std::vector<std::string> ids = {"missing",      expected[4].id, expected[0].id, expected[1].id,
                                  expected[2].id, expected[3].id, "nul"};
  absl::StatusOr<std::vector<std::optional<StoredItem>>> got = store->GetItems(collection, ids);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), ids.size());
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_FALSE((*got)[6].has_value());  // a prefix of "nul\0inside" is a different id
  for (int i : {1, 2, 3, 4, 5}) {
    ASSERT_TRUE((*got)[i].has_value()) << i;
    const StoredItem& want = i == 1 ? expected[4] : expected[i - 2];
    EXPECT_TRUE(SameItem(want, *(*got)[i]));
  }

  // Without embeddings: the same items and order, every embedding empty.
  auto texts = store->GetItemsWithoutEmbeddings(collection, ids);
  ASSERT_TRUE(texts.ok()) << texts.status();
  ASSERT_EQ(texts->size(), ids.size());
  EXPECT_FALSE((*texts)[0].has_value());
  EXPECT_FALSE((*texts)[6].has_value());
  for (int i : {1, 2, 3, 4, 5}) {
    ASSERT_TRUE((*texts)[i].has_value()) << i;
    StoredItem want = i == 1 ? expected[4] : expected[i - 2];
    want.clip_image.clear();
    want.caption_text.clear();
    want.image_features.clear();
    EXPECT_TRUE(SameItem(want, *(*texts)[i])) << i;
  }
  EXPECT_EQ(store->GetItemsWithoutEmbeddings("nope", ids).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SqliteItemStoreTest, UpsertReplacesKeepsCountAndCreatedAt) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  absl::StatusOr<int64_t> first = store->PutItems("art", {MakeItem("x", 8, 1), MakeItem("y")});
  ASSERT_TRUE(first.ok()) << first.status();
  const int64_t created_at =
      testing::QueryInt64(dir.db(), "SELECT created_at FROM items WHERE id = CAST('x' AS BLOB)");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));

  StoredItem replacement = MakeItem("x", 16, 2);
  replacement.caption = "a new caption";
  replacement.attributes = {{"only", "this"}};
  absl::StatusOr<int64_t> second = store->PutItems("art", {replacement});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT(*second, *first);

  absl::StatusOr<int64_t> count = store->CountItems("art");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 2);
  auto got = store->GetItems("art", {"x"});
  ASSERT_TRUE(got.ok() && (*got)[0].has_value());
  EXPECT_TRUE(SameItem(replacement, *(*got)[0]));

  const std::string where_x = " FROM items WHERE id = CAST('x' AS BLOB)";
  EXPECT_EQ(testing::QueryInt64(dir.db(), "SELECT created_at" + where_x), created_at);
  EXPECT_GT(testing::QueryInt64(dir.db(), "SELECT updated_at" + where_x), created_at);
  EXPECT_EQ(testing::QueryInt64(dir.db(), "SELECT seq" + where_x), *second);
  EXPECT_EQ(testing::QueryInt64(dir.db(), "SELECT seq FROM items WHERE id = CAST('y' AS BLOB)"),
            *first);
}

TEST(SqliteItemStoreTest, SequenceAdvancesOncePerChangeAndSurvivesReopen) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LastSequence(), 0);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  const int64_t after_create = store->LastSequence();
  EXPECT_GT(after_create, 0);

  int64_t previous = after_create;
  for (int batch = 0; batch < 4; ++batch) {
    std::vector<StoredItem> items;
    for (int i = 0; i < 10; ++i) items.push_back(MakeItem(absl::StrCat("b", batch, "-", i)));
    absl::StatusOr<int64_t> seq = store->PutItems("art", std::move(items));
    ASSERT_TRUE(seq.ok()) << seq.status();
    EXPECT_EQ(*seq, previous + 1);  // one number per batch, not per item
    EXPECT_EQ(store->LastSequence(), *seq);
    EXPECT_EQ(testing::QueryInt64(dir.db(),
                                  absl::StrCat("SELECT count(*) FROM items WHERE seq = ", *seq)),
              10);
    previous = *seq;
  }
  // An empty batch and a delete that removes nothing change nothing.
  absl::StatusOr<int64_t> empty = store->PutItems("art", {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, previous);
  ASSERT_TRUE(store->DeleteItems("art", {"nobody"}).ok());
  EXPECT_EQ(store->LastSequence(), previous);
  // A delete that removes something is a change.
  ASSERT_TRUE(store->DeleteItems("art", {"b0-0"}).ok());
  EXPECT_EQ(store->LastSequence(), previous + 1);

  store.reset();
  store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LastSequence(), previous + 1);
  absl::StatusOr<int64_t> next = store->PutItems("art", {MakeItem("after-reopen")});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, previous + 2);
}

TEST(SqliteItemStoreTest, DuplicateIdInBatchIsRejectedAndNothingIsStored) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  StoredItem original = MakeItem("b", 8, 1);
  ASSERT_TRUE(store->PutItems("art", {original}).ok());
  const int64_t seq = store->LastSequence();

  const std::string dup("dup\0id", 6);
  absl::StatusOr<int64_t> put =
      store->PutItems("art", {MakeItem("a"), MakeItem(dup), MakeItem("b", 8, 2), MakeItem(dup)});
  EXPECT_EQ(put.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(put.status().message()), HasSubstr("'dup\\x00id'"));

  EXPECT_EQ(store->LastSequence(), seq);
  absl::StatusOr<int64_t> count = store->CountItems("art");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);
  auto got = store->GetItems("art", {"a", "b"});
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE((*got)[0].has_value());
  ASSERT_TRUE((*got)[1].has_value());
  EXPECT_TRUE(SameItem(original, *(*got)[1]));  // not replaced by the rejected batch
}

TEST(SqliteItemStoreTest, DeleteReportsPresenceAndDropRemovesItems) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store->CreateCollection(TestCollection("other")).ok());
  ASSERT_TRUE(store->PutItems("art", {MakeItem("a"), MakeItem("b"), MakeItem("c")}).ok());
  ASSERT_TRUE(store->PutItems("other", {MakeItem("a")}).ok());

  absl::StatusOr<std::vector<bool>> deleted = store->DeleteItems("art", {"a", "zz", "a", "c"});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(*store->CountItems("art"), 1);
  EXPECT_EQ(*store->CountItems("other"), 1);  // same id, other collection: untouched

  ASSERT_TRUE(store->DropCollection("art").ok());
  EXPECT_EQ(testing::QueryInt64(dir.db(),
                                "SELECT count(*) FROM items WHERE collection = "
                                "CAST('art' AS BLOB)"),
            0);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  EXPECT_EQ(*store->CountItems("art"), 0);
  auto got = store->GetItems("art", {"b"});
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_EQ(*store->CountItems("other"), 1);
}

TEST(SqliteItemStoreTest, EverythingSurvivesReopenAndForEachVisitsAllOnce) {
  ScratchDir dir;
  std::vector<StoredItem> expected;
  for (int i = 0; i < 600; ++i) expected.push_back(MakeItem(absl::StrCat("item-", i), 32, i));
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
    ASSERT_TRUE(store->CreateCollection(TestCollection("empty")).ok());
    for (size_t start = 0; start < expected.size(); start += 64) {
      std::vector<StoredItem> batch(expected.begin() + start,
                                    expected.begin() + std::min(start + 64, expected.size()));
      ASSERT_TRUE(store->PutItems("art", std::move(batch)).ok());
    }
  }
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  auto list = store->ListCollections();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ(*store->CountItems("art"), 600);

  std::map<std::string, int> visits;
  absl::Status status = store->ForEachItem("art", [&](const StoredItem& item) {
    ++visits[item.id];
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(visits.size(), expected.size());  // more than two pages of 256
  std::vector<std::string> ids;
  for (const StoredItem& item : expected) {
    EXPECT_EQ(visits[item.id], 1) << item.id;
    ids.push_back(item.id);
  }
  auto got = store->GetItems("art", ids);
  ASSERT_TRUE(got.ok());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_TRUE((*got)[i].has_value()) << expected[i].id;
    EXPECT_TRUE(SameItem(expected[i], *(*got)[i]));
  }
  int empty_visits = 0;
  EXPECT_TRUE(store
                  ->ForEachItem("empty",
                                [&](const StoredItem&) {
                                  ++empty_visits;
                                  return absl::OkStatus();
                                })
                  .ok());
  EXPECT_EQ(empty_visits, 0);
}

TEST(SqliteItemStoreTest, ForEachStopsOnFirstErrorAndAllowsCallsIntoTheStore) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  std::vector<StoredItem> items;
  for (int i = 0; i < 300; ++i) items.push_back(MakeItem(absl::StrCat("i", i)));
  ASSERT_TRUE(store->PutItems("art", std::move(items)).ok());

  int visited = 0;
  absl::Status status = store->ForEachItem("art", [&](const StoredItem& item) {
    if (++visited == 3) return absl::CancelledError(absl::StrCat("stop at ", item.id));
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(status.message()), HasSubstr("stop at"));
  EXPECT_EQ(visited, 3);

  // The visitor runs with no lock held: it may read and even write the store.
  visited = 0;
  status = store->ForEachItem("art", [&](const StoredItem& item) {
    ++visited;
    auto got = store->GetItems("art", {item.id});
    if (!got.ok()) return got.status();
    if (!(*got)[0].has_value()) return absl::InternalError("visited item is missing");
    return store->PutItems("art", {MakeItem(item.id, 8, 7)}).status();
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(visited, 300);
}

TEST(SqliteItemStoreTest, SecondOpenOfTheSameDirectoryFailsUntilTheFirstCloses) {
  ScratchDir dir;
  auto first = OpenOrDie(dir.path());
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<SqliteItemStore>> second = SqliteItemStore::Open(dir.path());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("is in use by another process (LOCK held)"));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(dir.path()));
  // The failed Open must not have disturbed the first store.
  ASSERT_TRUE(first->CreateCollection(TestCollection("art")).ok());

  first.reset();
  auto third = OpenOrDie(dir.path());
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->ListCollections()->size(), 1u);
}

TEST(SqliteItemStoreTest, ConcurrentPutsAndReadsSucceed) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  constexpr int kWriters = 4, kBatches = 15, kBatchSize = 8;
  std::atomic<bool> writing{true};
  std::atomic<int> errors{0};
  std::vector<std::string> messages(kWriters + 2);

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<StoredItem> batch;
        for (int i = 0; i < kBatchSize; ++i) {
          batch.push_back(MakeItem(absl::StrCat("w", w, "-b", b, "-i", i), 8, w));
        }
        absl::StatusOr<int64_t> seq = store->PutItems("art", std::move(batch));
        // Read back what this thread just wrote, and a neighbour's items.
        auto got = store->GetItems("art", {absl::StrCat("w", w, "-b", b, "-i0"),
                                           absl::StrCat("w", (w + 1) % kWriters, "-b0-i0")});
        if (!seq.ok() || !got.ok() || !(*got)[0].has_value()) {
          ++errors;
          messages[w] = absl::StrCat(seq.status().ToString(), " ", got.status().ToString());
        }
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      while (writing.load()) {
        absl::StatusOr<int64_t> count = store->CountItems("art");
        absl::Status scan = store->ForEachItem("art", [](const StoredItem& item) {
          return item.clip_image.size() == 8 ? absl::OkStatus() : absl::DataLossError("torn item");
        });
        if (!count.ok() || !scan.ok()) {
          ++errors;
          messages[kWriters + r] = absl::StrCat(count.status().ToString(), " ", scan.ToString());
        }
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  writing = false;
  for (size_t t = kWriters; t < threads.size(); ++t) threads[t].join();

  EXPECT_EQ(errors.load(), 0) << ::testing::PrintToString(messages);
  EXPECT_EQ(*store->CountItems("art"), kWriters * kBatches * kBatchSize);
  EXPECT_EQ(store->LastSequence(), 1 + kWriters * kBatches);  // 1: CreateCollection
}

}  // namespace
}  // namespace retrace::store
