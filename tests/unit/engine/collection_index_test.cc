// What a process derives from the store for a collection (core/engine/collection_index.h).
// - A shard server's indexes (engine::ShardGroup): built from the store, followed from its feed
//   and snapshotted, they hold exactly the items of the group's shards; a snapshot of another
//   group (a changed shard map, the same volume) is not loaded, and the indexes are rebuilt.
// - With mmap_snapshots, a trained IVF collection's snapshot loads with its lists mapped, and
//   answers as the index it was saved from.
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/engine/collection_index.h"
#include "core/index/sharded_index.h"
#include "core/store/sqlite_item_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int kShards = 5;
constexpr int kDim = 4;

store::StoredItem Item(int i) {
  store::StoredItem item;
  item.id = absl::StrCat("item-", i);
  item.caption = absl::StrCat("caption ", i);
  item.clip_image.assign(kDim, 0.f);
  item.clip_image[i % kDim] = 1.f;
  item.caption_text = item.clip_image;
  return item;
}

class ShardGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "retrace_shard_group_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
    auto opened = store::SqliteItemStore::Open(root_ + "/data");
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
    store::CollectionRecord record;
    record.name = "c";
    record.shards = kShards;
    record.caption_index = record.image_index = "Flat";
    record.caption_dim = record.image_dim = kDim;
    record.clip_model = "clip";
    record.captioner_model = "captioner";
    ASSERT_TRUE(store_->CreateCollection(record).ok());
    auto state = store_->ReadState();
    ASSERT_TRUE(state.ok());
    record_ = state->collections.at(0);
    std::vector<store::StoredItem> items;
    for (int i = 0; i < 40; ++i) items.push_back(Item(i));
    ASSERT_TRUE(store_->PutItems("c", items).ok());
  }

  // Held: the ids of the 40 items that group g of `groups` holds, by the placement rule.
  static std::set<std::string> Held(int g, int groups) {
    std::set<std::string> held;
    for (int i = 0; i < 40; ++i) {
      const std::string id = absl::StrCat("item-", i);
      if (static_cast<int>(index::ShardedIndex::ShardOf(id, kShards)) % groups == g)
        held.insert(id);
    }
    return held;
  }
  static std::set<std::string> Holds(const CollectionIndexes& indexes) {
    std::set<std::string> held;
    for (int i = 0; i < 40; ++i) {
      const std::string id = absl::StrCat("item-", i);
      const bool caption = indexes.captions->Contains(id), image = indexes.images->Contains(id);
      const bool table = indexes.items->Get({id})[0].has_value();
      EXPECT_EQ(caption, image) << id;
      EXPECT_EQ(caption, table) << id;
      if (caption) held.insert(id);
    }
    return held;
  }

  std::string root_;
  std::unique_ptr<store::SqliteItemStore> store_;
  store::CollectionRecord record_;
};

TEST_F(ShardGroupTest, BuiltAndFollowedIndexesHoldTheGroupsShardsOnly) {
  const ShardGroup group{1, 2};
  auto built = BuildFromItems(*store_, record_, "test", group);
  ASSERT_TRUE(built.ok()) << built.status();
  const std::set<std::string> expected = Held(1, 2);
  ASSERT_FALSE(expected.empty());
  ASSERT_LT(expected.size(), 40u);
  EXPECT_EQ(Holds(built->indexes), expected);
  EXPECT_TRUE(ShardGroup{}.Holds("anything", kShards));

  // The feed: puts of other groups' items are skipped, removals of absent ids ignored.
  std::vector<store::Change> changes;
  for (int i = 40; i < 60; ++i) {
    store::Change put;
    put.kind = store::Change::Kind::kPut;
    put.item = Item(i);
    changes.push_back(put);
  }
  store::Change removal;
  removal.kind = store::Change::Kind::kDelete;
  removal.id = "item-0";
  changes.push_back(removal);
  ASSERT_TRUE(ApplyChanges(built->indexes, record_, changes).ok());
  for (int i = 40; i < 60; ++i) {
    const std::string id = absl::StrCat("item-", i);
    EXPECT_EQ(built->indexes.captions->Contains(id),
              static_cast<int>(index::ShardedIndex::ShardOf(id, kShards)) % 2 == 1)
        << id;
  }
  EXPECT_FALSE(built->indexes.captions->Contains("item-0"));
}

TEST_F(ShardGroupTest, ASnapshotOfAnotherGroupIsNotLoaded) {
  const std::string snapshots = root_ + "/snapshots";
  auto built = BuildFromItems(*store_, record_, "test", ShardGroup{0, 2});
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_TRUE(SaveSnapshots(built->indexes, record_, built->applied, snapshots).ok());

  auto same = RecoverIndexes(*store_, record_, snapshots, ShardGroup{0, 2});
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->snapshot_position, built->applied) << same->how;
  EXPECT_EQ(Holds(same->indexes), Held(0, 2));

  // The map changed: this volume's server is now group 1 of 3.
  auto other = RecoverIndexes(*store_, record_, snapshots, ShardGroup{1, 3});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->snapshot_position, -1);
  EXPECT_THAT(other->how, HasSubstr("another shard group"));
  EXPECT_EQ(Holds(other->indexes), Held(1, 3));
  EXPECT_EQ(other->indexes.group, (ShardGroup{1, 3}));
  // And a whole process does not take a group's snapshot for the whole collection.
  auto whole = RecoverIndexes(*store_, record_, snapshots);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->indexes.items->size(), 40u);
}

TEST_F(ShardGroupTest, IvfSnapshotsLoadMappedWhenAsked) {
  store::CollectionRecord record = record_;
  record.name = "ivf";
  record.caption_index = record.image_index = "IVF2,Flat";
  ASSERT_TRUE(store_->CreateCollection(record).ok());
  auto state = store_->ReadState();
  ASSERT_TRUE(state.ok());
  for (const store::CollectionRecord& r : state->collections) {
    if (r.name == "ivf") record = r;
  }
  // Past FAISS's training threshold (39 x nlist = 78 vectors): trained, then snapshotted.
  std::vector<store::StoredItem> items;
  for (int i = 0; i < 120; ++i) items.push_back(Item(i));
  ASSERT_TRUE(store_->PutItems("ivf", items).ok());
  auto built = BuildFromItems(*store_, record, "test");
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_TRUE(built->indexes.captions->trained());
  const std::string snapshots = root_ + "/snapshots";
  ASSERT_TRUE(SaveSnapshots(built->indexes, record, built->applied, snapshots).ok());

  const std::vector<float> query = {0.f, 1.f, 0.f, 0.f};
  auto hits = [&](const CollectionIndexes& indexes) {
    auto found = indexes.captions->Search(query.data(), 1, 10);
    EXPECT_TRUE(found.ok()) << found.status();
    std::vector<std::string> ids;
    for (const index::IndexHit& hit : (*found)[0]) ids.push_back(hit.id);
    return ids;
  };
  auto mapped = RecoverIndexes(*store_, record, snapshots, {}, /*mmap_snapshots=*/true);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(mapped->snapshot_position, built->applied) << mapped->how;
  EXPECT_EQ(mapped->indexes.captions->mapped_shards(), kShards);
  EXPECT_EQ(mapped->indexes.images->mapped_shards(), kShards);
  EXPECT_EQ(hits(mapped->indexes), hits(built->indexes));
  auto read = RecoverIndexes(*store_, record, snapshots);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->indexes.captions->mapped_shards(), 0);
  EXPECT_EQ(hits(read->indexes), hits(built->indexes));
}

}  // namespace
}  // namespace retrace::engine
