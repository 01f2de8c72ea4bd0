// Writing items (core/store/item_store.h), on both stores (store_fixture.h): replacing, a batch
// refused whole, deletes, thumbnails, and checked puts — a put that replaces a stored item only
// when a check accepts it, in the same transaction, so that a tenant's id cannot be taken
// between the check and the write (the engine's scoped Index relies on it).
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

StoredItem OwnedBy(const std::string& id, const std::string& tenant, uint32_t seed = 0) {
  StoredItem item = MakeItem(id, 8, seed);
  item.attributes = {{"tenant", tenant}};
  return item;
}

ReplaceCheck OwnerIs(const std::string& tenant, std::vector<std::string>* checked = nullptr) {
  return [tenant, checked](const StoredItem& stored) {
    if (checked != nullptr) checked->push_back(stored.id);
    auto it = stored.attributes.find("tenant");
    return it != stored.attributes.end() && it->second == tenant;
  };
}

TEST_P(StoreFixture, UpsertReplacesAndMovesTheItemsPosition) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  auto first = store_->PutItems("art", {MakeItem("x", 8, 1), MakeItem("y")});
  ASSERT_TRUE(first.ok()) << first.status();
  StoredItem replacement = MakeItem("x", 16, 2);
  replacement.caption = "a new caption";
  replacement.attributes = {{"only", "this"}};
  auto second = store_->PutItems("art", {replacement});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*store_->CountItems("art"), 2);
  auto got = store_->GetItems("art", {"x", "y"});
  ASSERT_TRUE(got.ok() && (*got)[0].has_value() && (*got)[1].has_value());
  EXPECT_TRUE(SameItem(replacement, *(*got)[0]));
  EXPECT_EQ((*got)[0]->position, *second);
  EXPECT_EQ((*got)[1]->position, *first);
}

TEST_P(StoreFixture, ADuplicateIdInABatchIsRejectedAndNothingIsStored) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  StoredItem original = MakeItem("b", 8, 1);
  ASSERT_TRUE(store_->PutItems("art", {original}).ok());
  const int64_t last = Last();
  const std::string dup("dup\0id", 6);
  auto put = store_->PutItems("art", {MakeItem("a"), MakeItem(dup), MakeItem("b", 8, 2),
                                      MakeItem(dup)});
  EXPECT_EQ(put.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(put.status().message()), HasSubstr("'dup\\x00id'"));
  EXPECT_EQ(Last(), last);
  EXPECT_EQ(*store_->CountItems("art"), 1);
  auto got = store_->GetItems("art", {"a", "b"});
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE((*got)[0].has_value());
  ASSERT_TRUE((*got)[1].has_value());
  EXPECT_TRUE(SameItem(original, *(*got)[1]));
}

TEST_P(StoreFixture, DeleteReportsPresenceAndDropRemovesEverything) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store_->CreateCollection(TestCollection("other")).ok());
  ASSERT_TRUE(store_->PutItems("art", {MakeItem("a"), MakeItem("b"), MakeItem("c")}).ok());
  ASSERT_TRUE(store_->PutItems("other", {MakeItem("a")}).ok());
  auto deleted = store_->DeleteItems("art", {"a", "zz", "a", "c"});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->present, (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(*store_->CountItems("art"), 1);
  EXPECT_EQ(*store_->CountItems("other"), 1);  // same id, other collection: untouched

  ASSERT_TRUE(store_->DropCollection("art").ok());
  auto created = store_->CreateCollection(TestCollection("art"));
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(*store_->CountItems("art"), 0);
  // Neither items nor deletions of the old collection show in the new one's feed.
  State state;
  auto applied = Follow(*store_, "art", *created, {*created - 1, std::nullopt}, 10, &state);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_TRUE(state.empty());
  auto page = store_->ReadChanges("art", *created, {0, std::nullopt}, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->changes.empty());
}

TEST_P(StoreFixture, ThumbnailsAreWrittenWithTheirItemsAndGoWithThem) {
  CollectionRecord art = TestCollection("art");
  art.thumbnail_side = 128;
  ASSERT_TRUE(store_->CreateCollection(art).ok());
  ASSERT_TRUE(store_->CreateCollection(TestCollection("other")).ok());
  auto state = store_->ReadState();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->collections[0].thumbnail_side, 128);
  EXPECT_EQ(state->collections[1].thumbnail_side, 0);

  StoredItem a = MakeItem("a");
  a.thumbnail = std::string("\xff\xd8jpeg of a\0with a NUL", 23);
  StoredItem b = MakeItem("b");
  b.thumbnail = "jpeg of b";
  ASSERT_TRUE(store_->PutItems("art", {a, b, MakeItem("c")}).ok());
  ASSERT_TRUE(store_->PutItems("other", {a}).ok());
  auto got = store_->GetThumbnails("art", {"a", "c", "zz", "b"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0], a.thumbnail);  // byte exact
  EXPECT_EQ((*got)[1], std::nullopt);
  EXPECT_EQ((*got)[2], std::nullopt);
  EXPECT_EQ((*got)[3], "jpeg of b");
  // Reads of the items never carry them (the feed and the index rebuilds do not need them).
  auto items = store_->GetItems("art", {"a"});
  ASSERT_TRUE(items.ok());
  EXPECT_TRUE((*items)[0]->thumbnail.empty());

  // A new version replaces the thumbnail, or removes it when it has none.
  StoredItem a2 = MakeItem("a");
  a2.caption = "a, again";
  b.thumbnail = "jpeg of b, again";
  ASSERT_TRUE(store_->PutItems("art", {a2, b}).ok());
  got = store_->GetThumbnails("art", {"a", "b"});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[0], std::nullopt);
  EXPECT_EQ((*got)[1], "jpeg of b, again");

  // Deleting an item deletes its thumbnail; dropping the collection drops them all, and only
  // its own.
  ASSERT_TRUE(store_->DeleteItems("art", {"b"}).ok());
  EXPECT_EQ((*store_->GetThumbnails("art", {"b"}))[0], std::nullopt);
  ASSERT_TRUE(store_->PutItems("art", {a}).ok());
  ASSERT_TRUE(store_->DropCollection("art").ok());
  ASSERT_TRUE(store_->CreateCollection(art).ok());
  EXPECT_EQ((*store_->GetThumbnails("art", {"a"}))[0], std::nullopt);
  EXPECT_EQ((*store_->GetThumbnails("other", {"a"}))[0], a.thumbnail);
  EXPECT_EQ(store_->GetThumbnails("nope", {"a"}).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreFixture, ACheckedPutReplacesOnlyWhatTheCheckAcceptsAndWritesNewIds) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  const StoredItem theirs = OwnedBy("y", "b", 1);
  ASSERT_TRUE(store_->PutItems("art", {OwnedBy("x", "a", 1), theirs}).ok());
  std::vector<std::string> checked;
  const StoredItem x2 = OwnedBy("x", "a", 2), y2 = OwnedBy("y", "a", 2), z = OwnedBy("z", "a", 2);
  auto put = store_->PutItemsChecked("art", {x2, y2, z}, OwnerIs("a", &checked));
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_THAT(put->refused, ElementsAre(1));
  EXPECT_EQ(put->position, Last());
  // The check saw the stored items (with their attributes), not the new ones, nor absent ids.
  EXPECT_THAT(checked, ::testing::UnorderedElementsAre("x", "y"));
  auto got = store_->GetItems("art", {"x", "y", "z"});
  ASSERT_TRUE(got.ok() && (*got)[0] && (*got)[1] && (*got)[2]);
  EXPECT_TRUE(SameItem(x2, *(*got)[0]));
  EXPECT_TRUE(SameItem(theirs, *(*got)[1]));
  EXPECT_TRUE(SameItem(z, *(*got)[2]));
  EXPECT_EQ((*got)[0]->position, put->position);
  EXPECT_EQ((*got)[2]->position, put->position);
}

TEST_P(StoreFixture, ACheckedPutThatRefusesEveryItemWritesNothing) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  const StoredItem theirs = OwnedBy("y", "b", 1);
  ASSERT_TRUE(store_->PutItems("art", {theirs}).ok());
  const int64_t last = Last();
  auto put = store_->PutItemsChecked("art", {OwnedBy("y", "a", 2)}, OwnerIs("a"));
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_THAT(put->refused, ElementsAre(0));
  EXPECT_EQ(put->position, last);
  EXPECT_EQ(Last(), last);
  auto got = store_->GetItems("art", {"y"});
  ASSERT_TRUE(got.ok() && (*got)[0]);
  EXPECT_TRUE(SameItem(theirs, *(*got)[0]));
  // The next write takes the next position: the refused put gave its position back.
  auto next = store_->PutItems("art", {OwnedBy("w", "a")});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, last + 1);
}

TEST_P(StoreFixture, ACheckedPutKeepsTheBatchRules) {
  auto absent = store_->PutItemsChecked("nope", {OwnedBy("x", "a")}, OwnerIs("a"));
  EXPECT_EQ(absent.status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  auto dup = store_->PutItemsChecked("art", {OwnedBy("x", "a"), OwnedBy("x", "a", 1)},
                                     OwnerIs("a"));
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  auto empty = store_->PutItemsChecked("art", {}, OwnerIs("a"));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->position, Last());
  EXPECT_EQ(*store_->CountItems("art"), 0);
  // No check at all: every stored item is replaced, as by PutItems.
  ASSERT_TRUE(store_->PutItems("art", {OwnedBy("x", "b")}).ok());
  const StoredItem mine = OwnedBy("x", "a", 3);
  auto unchecked = store_->PutItemsChecked("art", {mine}, ReplaceCheck());
  ASSERT_TRUE(unchecked.ok()) << unchecked.status();
  EXPECT_TRUE(unchecked->refused.empty());
  auto got = store_->GetItems("art", {"x"});
  ASSERT_TRUE(got.ok() && (*got)[0]);
  EXPECT_TRUE(SameItem(mine, *(*got)[0]));
}

// Tenants race to create the same new ids, each accepting only its own items: for every id
// exactly one put is accepted and the stored item is that tenant's. A check made outside the
// write's transaction lets two tenants both find the id absent and both write (the later one
// silently replacing the other's item).
TEST_P(StoreFixture, TenantsRacingForOneNewIdLeaveItWithExactlyOneOfThem) {
  ASSERT_TRUE(store_->CreateCollection(TestCollection("art")).ok());
  constexpr int kTenants = 6, kIds = 25;
  absl::Mutex mu;
  std::vector<std::vector<std::string>> accepted(kIds);  // tenants whose put of id i was accepted
  std::atomic<int> errors{0};
  std::vector<std::thread> tenants;
  for (int t = 0; t < kTenants; ++t) {
    tenants.emplace_back([&, t] {
      const std::string tenant = absl::StrCat("tenant-", t);
      for (int i = 0; i < kIds; ++i) {
        auto put = store_->PutItemsChecked(
            "art", {OwnedBy(absl::StrCat("id-", i), tenant, static_cast<uint32_t>(t))},
            OwnerIs(tenant));
        if (!put.ok()) {
          ++errors;
          continue;
        }
        if (put->refused.empty()) {
          absl::MutexLock lock(&mu);
          accepted[i].push_back(tenant);
        }
      }
    });
  }
  for (std::thread& t : tenants) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (int i = 0; i < kIds; ++i) {
    ASSERT_EQ(accepted[i].size(), 1u) << "id-" << i << " was written by "
                                      << accepted[i].size() << " tenants";
    auto got = store_->GetItems("art", {absl::StrCat("id-", i)});
    ASSERT_TRUE(got.ok() && (*got)[0]);
    EXPECT_EQ((*got)[0]->attributes.at("tenant"), accepted[i][0]) << "id-" << i;
  }
}

}  // namespace
}  // namespace retrace::store
