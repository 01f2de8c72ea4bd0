#include "core/engine/collection_index.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/common/status_macros.h"
#include "core/engine/image_space.h"

namespace retrace::engine {
namespace {

// Batch collects upserts and removals and applies them to both indexes in chunks.
class Batch {
 public:
  Batch(CollectionIndexes& indexes, const store::CollectionRecord& record)
      : indexes_(indexes), record_(record) {}

  absl::Status Put(const store::StoredItem& item) {
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
    caption_vectors_.insert(caption_vectors_.end(), item.caption_text.begin(),
                            item.caption_text.end());
    image_vectors_.insert(image_vectors_.end(), image->begin(), image->end());
    ++puts_;
    return ids_.size() >= kChunk ? FlushPuts() : absl::OkStatus();
  }
  absl::Status Delete(const std::string& id) {
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
    ids_.clear();
    caption_vectors_.clear();
    image_vectors_.clear();
    return absl::OkStatus();
  }
  absl::Status FlushRemovals() {
    if (removals_.empty()) return absl::OkStatus();
    RETRACE_RETURN_IF_ERROR(RemoveItems(indexes_, removals_));
    removals_.clear();
    return absl::OkStatus();
  }

  CollectionIndexes& indexes_;
  const store::CollectionRecord& record_;
  std::vector<std::string> ids_;
  std::vector<float> caption_vectors_;
  std::vector<float> image_vectors_;
  std::vector<std::string> removals_;
  int64_t puts_ = 0, deletes_ = 0;
};

absl::StatusOr<RecoveredIndexes> Rebuild(const store::ItemStore& store,
                                         const store::CollectionRecord& record, std::string why) {
  RecoveredIndexes recovered;
  RETRACE_ASSIGN_OR_RETURN(recovered.indexes, CreateIndexes(record));
  Batch batch(recovered.indexes, record);
  RETRACE_RETURN_IF_ERROR(store.ForEachItem(
      record.name, [&](const store::StoredItem& item) { return batch.Put(item); }));
  RETRACE_RETURN_IF_ERROR(batch.Flush());
  recovered.how = absl::StrCat("rebuilt from the store (", why, "): ", batch.puts(), " items");
  return recovered;
}

const char* SpaceName(Space space) { return space == Space::kCaption ? "caption" : "image"; }

}  // namespace

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

absl::StatusOr<CollectionIndexes> CreateIndexes(const store::CollectionRecord& record) {
  CollectionIndexes indexes;
  for (Space space : {Space::kCaption, Space::kImage}) {
    auto created = index::ShardedIndex::Create(IndexOptionsFor(record, space));
    if (!created.ok()) {
      return absl::Status(created.status().code(),
                          absl::StrCat(SpaceName(space), "_index: ", created.status().message()));
    }
    (space == Space::kCaption ? indexes.captions : indexes.images) = std::move(*created);
  }
  return indexes;
}

std::string SnapshotDir(const std::string& snapshot_root, const std::string& collection,
                        Space space) {
  // Collection names are [A-Za-z0-9_.-] starting with a letter or digit: safe as a path part.
  return (std::filesystem::path(snapshot_root) / collection / SpaceName(space)).string();
}

absl::Status AddItems(CollectionIndexes& indexes, const store::CollectionRecord& record,
                      const std::vector<const store::StoredItem*>& items) {
  Batch batch(indexes, record);
  for (const store::StoredItem* item : items) RETRACE_RETURN_IF_ERROR(batch.Put(*item));
  return batch.Flush();
}

absl::Status RemoveItems(CollectionIndexes& indexes, const std::vector<std::string>& ids) {
  RETRACE_RETURN_IF_ERROR(indexes.captions->Remove(ids).status());
  return indexes.images->Remove(ids).status();
}

absl::StatusOr<RecoveredIndexes> RecoverIndexes(const store::ItemStore& store,
                                                const store::CollectionRecord& record,
                                                const std::string& snapshot_root) {
  if (snapshot_root.empty()) return Rebuild(store, record, "snapshots are off");
  const absl::Time start = absl::Now();
  std::vector<index::LoadedIndex> loaded;
  for (Space space : {Space::kCaption, Space::kImage}) {
    auto snapshot = index::ShardedIndex::LoadSnapshot(
        SnapshotDir(snapshot_root, record.name, space), IndexOptionsFor(record, space));
    if (!snapshot.ok()) {
      return Rebuild(store, record,
                     snapshot.status().code() == absl::StatusCode::kNotFound
                         ? absl::StrCat("no ", SpaceName(space), " snapshot")
                         : absl::StrCat(SpaceName(space),
                                        " snapshot unusable: ", snapshot.status().ToString()));
    }
    int64_t tag = -1;
    if (!absl::SimpleAtoi(snapshot->tag, &tag) || tag != record.created_seq) {
      return Rebuild(store, record, "the snapshot is of an earlier collection of the same name");
    }
    loaded.push_back(std::move(*snapshot));
  }
  const int64_t sequence = loaded[0].sequence;
  if (loaded[1].sequence != sequence) {
    return Rebuild(store, record,
                   absl::StrCat("the caption and image snapshots are of sequences ", sequence,
                                " and ", loaded[1].sequence));
  }
  if (sequence > store.LastSequence()) {
    return Rebuild(store, record, absl::StrCat("the snapshot (sequence ", sequence,
                                               ") is newer than the store (",
                                               store.LastSequence(), ")"));
  }
  const absl::Time loaded_at = absl::Now();
  RecoveredIndexes recovered;
  recovered.indexes.captions = std::move(loaded[0].index);
  recovered.indexes.images = std::move(loaded[1].index);
  recovered.snapshot_sequence = sequence;
  Batch batch(recovered.indexes, record);
  absl::Status replayed = store.ForEachChangeSince(
      record.name, sequence, [&](const store::StoredItem& item) { return batch.Put(item); },
      [&](const std::string& id) { return batch.Delete(id); });
  if (replayed.ok()) replayed = batch.Flush();
  if (replayed.code() == absl::StatusCode::kOutOfRange) {
    return Rebuild(store, record, "the store no longer holds the deletions since the snapshot");
  }
  RETRACE_RETURN_IF_ERROR(replayed);
  recovered.how = absl::StrFormat(
      "snapshots at sequence %d loaded in %.2f s, + %d puts and %d deletions replayed in %.2f s",
      sequence, absl::ToDoubleSeconds(loaded_at - start), batch.puts(), batch.deletes(),
      absl::ToDoubleSeconds(absl::Now() - loaded_at));
  return recovered;
}

absl::Status SaveSnapshots(const CollectionIndexes& indexes, const store::CollectionRecord& record,
                           int64_t sequence, const std::string& snapshot_root) {
  const std::string tag = absl::StrCat(record.created_seq);
  RETRACE_RETURN_IF_ERROR(indexes.captions->SaveSnapshot(
      SnapshotDir(snapshot_root, record.name, Space::kCaption), sequence, tag));
  return indexes.images->SaveSnapshot(SnapshotDir(snapshot_root, record.name, Space::kImage),
                                      sequence, tag);
}

}  // namespace retrace::engine
