#include "core/engine/collection_index.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/common/files.h"
#include "core/common/status_macros.h"
#include "core/engine/image_space.h"

namespace retrace::engine {
namespace {

// Batch collects upserts and removals and applies them to the indexes in chunks, in order: a
// run of puts is flushed before a removal that follows it, and the other way round.
class Batch {
 public:
  Batch(CollectionIndexes& indexes, const store::CollectionRecord& record)
      : indexes_(indexes), record_(record) {}

  absl::Status Put(const store::StoredItem& item) {
    if (!indexes_.group.Holds(item.id, record_.shards)) return absl::OkStatus();  // another group's
    RETRACE_RETURN_IF_ERROR(FlushRemovals());
    if (item.caption_text.size() != static_cast<size_t>(record_.caption_dim)) {
      return absl::DataLossError(absl::StrCat("item '", item.id, "' of collection '",
                                              record_.name, "': caption embedding has ",
                                              item.caption_text.size(), " floats, not ",
                                              record_.caption_dim));
    }
    auto image = ImageSpaceVector(record_, item.image_features, item.clip_image);
    if (!image.ok()) {
      return absl::DataLossError(absl::StrCat("item '", item.id, "': ", image.status().message()));
    }
    ids_.push_back(item.id);
    entries_.push_back({item.caption, item.attributes, item.created_ms, item.updated_ms});
    caption_vectors_.insert(caption_vectors_.end(), item.caption_text.begin(),
                            item.caption_text.end());
    image_vectors_.insert(image_vectors_.end(), image->begin(), image->end());
    ++puts_;
    return ids_.size() >= kChunk ? FlushPuts() : absl::OkStatus();
  }
  absl::Status Delete(const std::string& id) {
    RETRACE_RETURN_IF_ERROR(FlushPuts());
    removals_.push_back(id);
    ++deletes_;
    return removals_.size() >= kChunk ? FlushRemovals() : absl::OkStatus();
  }
  absl::Status Flush() {
    RETRACE_RETURN_IF_ERROR(FlushPuts());
    return FlushRemovals();
  }
  int64_t puts() const { return puts_; }
  int64_t deletes() const { return deletes_; }

 private:
  static constexpr size_t kChunk = 4096;
  absl::Status FlushPuts() {
    if (ids_.empty()) return absl::OkStatus();
    RETRACE_RETURN_IF_ERROR(indexes_.captions->Add(ids_, caption_vectors_.data(), ids_.size()));
    RETRACE_RETURN_IF_ERROR(indexes_.images->Add(ids_, image_vectors_.data(), ids_.size()));
    // The table last: a hit found in an index but not (yet) in the table is left out of the
    // answer, never shown without its caption.
    for (size_t i = 0; i < ids_.size(); ++i) indexes_.items->Put(ids_[i], std::move(entries_[i]));
    ids_.clear();
    entries_.clear();
    caption_vectors_.clear();
    image_vectors_.clear();
    return absl::OkStatus();
  }
  absl::Status FlushRemovals() {
    if (removals_.empty()) return absl::OkStatus();
    for (const std::string& id : removals_) indexes_.items->Remove(id);
    RETRACE_RETURN_IF_ERROR(indexes_.captions->Remove(removals_).status());
    RETRACE_RETURN_IF_ERROR(indexes_.images->Remove(removals_).status());
    removals_.clear();
    return absl::OkStatus();
  }

  CollectionIndexes& indexes_;
  const store::CollectionRecord& record_;
  std::vector<std::string> ids_;
  std::vector<ItemTable::Entry> entries_;
  std::vector<float> caption_vectors_;
  std::vector<float> image_vectors_;
  std::vector<std::string> removals_;
  int64_t puts_ = 0, deletes_ = 0;
};

const char* SpaceName(Space space) { return space == Space::kCaption ? "caption" : "image"; }

// SnapshotTag: what a snapshot must have been taken of to be loaded: this collection (not an
// earlier one of the same name) and, on a shard server, the same group.
std::string SnapshotTag(const store::CollectionRecord& record, const ShardGroup& group) {
  if (group.count <= 1) return absl::StrCat(record.created_position);
  return absl::StrCat(record.created_position, " group ", group.index, "/", group.count);
}

std::string ItemsDir(const std::string& snapshot_root, const std::string& collection) {
  return (std::filesystem::path(snapshot_root) / collection / "items").string();
}

}  // namespace

bool ShardGroup::Holds(std::string_view id, int shards) const {
  if (count <= 1) return true;
  const uint32_t shard = index::ShardedIndex::ShardOf(id, shards);
  return static_cast<int>(shard % static_cast<uint32_t>(count)) == index;
}

index::IndexOptions IndexOptionsFor(const store::CollectionRecord& record, Space space) {
  index::IndexOptions options;
  options.shards = record.shards;
  if (space == Space::kCaption) {
    options.dim = record.caption_dim;
    options.factory = record.caption_index;
  } else {
    options.dim = record.image_dim;
    options.factory = record.image_index;
  }
  return options;
}

absl::StatusOr<CollectionIndexes> CreateIndexes(const store::CollectionRecord& record,
                                                const ShardGroup& group) {
  CollectionIndexes indexes;
  indexes.group = group;
  for (Space space : {Space::kCaption, Space::kImage}) {
    auto created = index::ShardedIndex::Create(IndexOptionsFor(record, space));
    if (!created.ok()) {
      return absl::Status(created.status().code(),
                          absl::StrCat(SpaceName(space), "_index: ", created.status().message()));
    }
    (space == Space::kCaption ? indexes.captions : indexes.images) = std::move(*created);
  }
  indexes.items = std::make_unique<ItemTable>();
  return indexes;
}

std::string SnapshotDir(const std::string& snapshot_root, const std::string& collection,
                        Space space) {
  // Collection names are [A-Za-z0-9_.-] starting with a letter or digit: safe as a path part.
  return (std::filesystem::path(snapshot_root) / collection / SpaceName(space)).string();
}

absl::Status ApplyChanges(CollectionIndexes& indexes, const store::CollectionRecord& record,
                          const std::vector<store::Change>& changes) {
  Batch batch(indexes, record);
  for (const store::Change& change : changes) {
    RETRACE_RETURN_IF_ERROR(change.kind == store::Change::Kind::kPut ? batch.Put(change.item)
                                                                     : batch.Delete(change.id));
  }
  return batch.Flush();
}

absl::StatusOr<RecoveredIndexes> BuildFromItems(const store::ItemStore& store,
                                                const store::CollectionRecord& record,
                                                const std::string& why,
                                                const ShardGroup& group) {
  const absl::Time start = absl::Now();
  RecoveredIndexes recovered;
  // The position first: whatever the scan misses (a change during it) is after it in the feed.
  RETRACE_ASSIGN_OR_RETURN(recovered.applied, store.LastPosition());
  RETRACE_ASSIGN_OR_RETURN(recovered.indexes, CreateIndexes(record, group));
  Batch batch(recovered.indexes, record);
  RETRACE_RETURN_IF_ERROR(store.ForEachItem(
      record.name, [&](const store::StoredItem& item) { return batch.Put(item); }));
  RETRACE_RETURN_IF_ERROR(batch.Flush());
  recovered.how = absl::StrFormat("built from the store's items (%s): %d items in %.2f s", why,
                                  batch.puts(), absl::ToDoubleSeconds(absl::Now() - start));
  return recovered;
}

absl::StatusOr<RecoveredIndexes> RecoverIndexes(const store::ItemStore& store,
                                                const store::CollectionRecord& record,
                                                const std::string& snapshot_root,
                                                const ShardGroup& group, bool mmap_snapshots) {
  auto build = [&](const std::string& why) { return BuildFromItems(store, record, why, group); };
  if (snapshot_root.empty()) return build("snapshots are off");
  const absl::Time start = absl::Now();
  const std::string tag = SnapshotTag(record, group);
  std::vector<index::LoadedIndex> loaded;
  for (Space space : {Space::kCaption, Space::kImage}) {
    index::IndexOptions options = IndexOptionsFor(record, space);
    options.mmap_snapshots = mmap_snapshots;
    auto snapshot =
        index::ShardedIndex::LoadSnapshot(SnapshotDir(snapshot_root, record.name, space), options);
    if (!snapshot.ok()) {
      return build(snapshot.status().code() == absl::StatusCode::kNotFound
                                ? absl::StrCat("no ", SpaceName(space), " snapshot")
                                : absl::StrCat(SpaceName(space), " snapshot unusable: ",
                                               snapshot.status().ToString()));
    }
    if (snapshot->tag != tag) {
      return build("the snapshot is of an earlier collection of the same name, or another "
                   "shard group");
    }
    loaded.push_back(std::move(*snapshot));
  }
  auto items = ItemTable::Load(ItemsDir(snapshot_root, record.name));
  if (!items.ok()) {
    return build(absl::StrCat("item table unusable: ", items.status().ToString()));
  }
  const int64_t position = loaded[0].sequence;
  if (loaded[1].sequence != position || items->position != position || items->tag != tag) {
    return build(absl::StrCat("the caption, image and item snapshots are of positions ",
                                       position, ", ", loaded[1].sequence, " and ",
                                       items->position));
  }
  RETRACE_ASSIGN_OR_RETURN(int64_t last, store.LastPosition());
  if (position > last) {
    return build(absl::StrCat("the snapshot (position ", position,
                                                      ") is newer than the store (", last, ")"));
  }
  RecoveredIndexes recovered;
  recovered.indexes.group = group;
  recovered.indexes.captions = std::move(loaded[0].index);
  recovered.indexes.images = std::move(loaded[1].index);
  recovered.indexes.items = std::move(items->table);
  recovered.applied = position;
  recovered.snapshot_position = position;
  recovered.how = absl::StrFormat("snapshot at position %d (%d items) loaded in %.2f s", position,
                                  recovered.indexes.items->size(),
                                  absl::ToDoubleSeconds(absl::Now() - start));
  return recovered;
}

absl::Status SaveSnapshots(const CollectionIndexes& indexes, const store::CollectionRecord& record,
                           int64_t position, const std::string& snapshot_root) {
  const std::string tag = SnapshotTag(record, indexes.group);
  RETRACE_RETURN_IF_ERROR(indexes.captions->SaveSnapshot(
      SnapshotDir(snapshot_root, record.name, Space::kCaption), position, tag));
  RETRACE_RETURN_IF_ERROR(indexes.images->SaveSnapshot(
      SnapshotDir(snapshot_root, record.name, Space::kImage), position, tag));
  const std::string items_dir = ItemsDir(snapshot_root, record.name);
  RETRACE_RETURN_IF_ERROR(files::CreateDirectory(items_dir));
  return indexes.items->Save(items_dir, position, tag);
}

}  // namespace retrace::engine
