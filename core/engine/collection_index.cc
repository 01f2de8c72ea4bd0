#include "core/engine/collection_index.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/common/status_macros.h"

namespace retrace::engine {
namespace {

// Batch collects upserts and removals and applies them to the index in chunks.
class Batch {
 public:
  explicit Batch(index::ShardedIndex& index) : index_(index) {}

  absl::Status Put(const store::StoredItem& item) {
    ids_.push_back(item.id);
    vectors_.insert(vectors_.end(), item.caption_text.begin(), item.caption_text.end());
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
    RETRACE_RETURN_IF_ERROR(index_.Add(ids_, vectors_.data(), ids_.size()));
    ids_.clear();
    vectors_.clear();
    return absl::OkStatus();
  }
  absl::Status FlushRemovals() {
    if (removals_.empty()) return absl::OkStatus();
    RETRACE_RETURN_IF_ERROR(index_.Remove(removals_).status());
    removals_.clear();
    return absl::OkStatus();
  }

  index::ShardedIndex& index_;
  std::vector<std::string> ids_;
  std::vector<float> vectors_;
  std::vector<std::string> removals_;
  int64_t puts_ = 0, deletes_ = 0;
};

absl::StatusOr<RecoveredIndex> Rebuild(const store::ItemStore& store,
                                       const store::CollectionRecord& record, std::string why) {
  RecoveredIndex recovered;
  RETRACE_ASSIGN_OR_RETURN(recovered.index,
                           index::ShardedIndex::Create(CaptionIndexOptions(record)));
  Batch batch(*recovered.index);
  RETRACE_RETURN_IF_ERROR(store.ForEachItem(
      record.name, [&](const store::StoredItem& item) { return batch.Put(item); }));
  RETRACE_RETURN_IF_ERROR(batch.Flush());
  recovered.how = absl::StrCat("rebuilt from the store (", why, "): ", batch.puts(), " items");
  return recovered;
}

}  // namespace

index::IndexOptions CaptionIndexOptions(const store::CollectionRecord& record) {
  index::IndexOptions options;
  options.dim = record.caption_dim;
  options.shards = record.shards;
  options.factory = record.caption_index;
  return options;
}

std::string CaptionSnapshotDir(const std::string& snapshot_root, const std::string& collection) {
  // Collection names are [A-Za-z0-9_.-] starting with a letter or digit: safe as a path part.
  return (std::filesystem::path(snapshot_root) / collection / "caption").string();
}

absl::StatusOr<RecoveredIndex> RecoverCaptionIndex(const store::ItemStore& store,
                                                   const store::CollectionRecord& record,
                                                   const std::string& snapshot_root) {
  if (snapshot_root.empty()) return Rebuild(store, record, "snapshots are off");
  const absl::Time start = absl::Now();
  auto loaded = index::ShardedIndex::LoadSnapshot(CaptionSnapshotDir(snapshot_root, record.name),
                                                  CaptionIndexOptions(record));
  if (!loaded.ok()) {
    return Rebuild(store, record,
                   loaded.status().code() == absl::StatusCode::kNotFound
                       ? std::string("no snapshot")
                       : absl::StrCat("snapshot unusable: ", loaded.status().ToString()));
  }
  int64_t tag = -1;
  if (!absl::SimpleAtoi(loaded->tag, &tag) || tag != record.created_seq) {
    return Rebuild(store, record, "the snapshot is of an earlier collection of the same name");
  }
  if (loaded->sequence > store.LastSequence()) {
    return Rebuild(store, record, absl::StrCat("the snapshot (sequence ", loaded->sequence,
                                               ") is newer than the store (",
                                               store.LastSequence(), ")"));
  }
  const absl::Time loaded_at = absl::Now();
  RecoveredIndex recovered;
  recovered.index = std::move(loaded->index);
  recovered.snapshot_sequence = loaded->sequence;
  Batch batch(*recovered.index);
  absl::Status replayed = store.ForEachChangeSince(
      record.name, loaded->sequence, [&](const store::StoredItem& item) { return batch.Put(item); },
      [&](const std::string& id) { return batch.Delete(id); });
  if (replayed.ok()) replayed = batch.Flush();
  if (replayed.code() == absl::StatusCode::kOutOfRange) {
    return Rebuild(store, record, "the store no longer holds the deletions since the snapshot");
  }
  RETRACE_RETURN_IF_ERROR(replayed);
  recovered.how = absl::StrFormat(
      "snapshot at sequence %d loaded in %.2f s, + %d puts and %d deletions replayed in %.2f s",
      loaded->sequence, absl::ToDoubleSeconds(loaded_at - start), batch.puts(), batch.deletes(),
      absl::ToDoubleSeconds(absl::Now() - loaded_at));
  return recovered;
}

absl::Status SaveCaptionSnapshot(const index::ShardedIndex& index,
                                 const store::CollectionRecord& record, int64_t sequence,
                                 const std::string& snapshot_root) {
  return index.SaveSnapshot(CaptionSnapshotDir(snapshot_root, record.name), sequence,
                            absl::StrCat(record.created_seq));
}

}  // namespace retrace::engine
