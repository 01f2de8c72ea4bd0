// collection_index.h — a collection's two indexes (caption space, image space) at start-up and
// in snapshots.
//
// The store is the source of truth; indexes are derived. At start-up RecoverIndexes loads the
// collection's last snapshot of both spaces and replays the store's changes after the
// snapshot's sequence; without a usable pair (none, corrupt, another index spec, taken at
// different sequences, or from an earlier collection of the same name) it rebuilds both in one
// pass over the stored items — slower, never wrong. SaveSnapshots writes both atomically per
// space, tagged with the store sequence they include.
//
// Thread-safety: functions; the indexes and store they are given are thread-safe.
//
//   RETRACE_ASSIGN_OR_RETURN(RecoveredIndexes r, RecoverIndexes(store, record, dir));
//   log->info("'{}': {}", record.name, r.how);
#ifndef RETRACE_CORE_ENGINE_COLLECTION_INDEX_H_
#define RETRACE_CORE_ENGINE_COLLECTION_INDEX_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/index/sharded_index.h"
#include "core/store/item_store.h"

namespace retrace::engine {

enum class Space { kCaption, kImage };

struct CollectionIndexes {
  std::unique_ptr<index::ShardedIndex> captions;  // CLIP text embeddings of the captions
  std::unique_ptr<index::ShardedIndex> images;    // image-space vectors (image_space.h)
};

struct RecoveredIndexes {
  CollectionIndexes indexes;
  int64_t snapshot_sequence = -1;  // the snapshots used, or -1 when rebuilt from the store
  std::string how;                 // for the log: "snapshot at sequence 812 + 14 changes", ...
};

// IndexOptionsFor: a space's index options for a collection.
index::IndexOptions IndexOptionsFor(const store::CollectionRecord& record, Space space);

// CreateIndexes makes a collection's two empty indexes. INVALID_ARGUMENT naming caption_index
// or image_index when a spec cannot be built.
absl::StatusOr<CollectionIndexes> CreateIndexes(const store::CollectionRecord& record);

// SnapshotDir: where a collection's snapshot of `space` lives under `snapshot_root`.
std::string SnapshotDir(const std::string& snapshot_root, const std::string& collection,
                        Space space);

// AddItems adds stored items to both indexes (an id already present is replaced). DATA_LOSS if
// an item's embeddings do not fit the collection's dimensions; nothing is added then.
absl::Status AddItems(CollectionIndexes& indexes, const store::CollectionRecord& record,
                      const std::vector<const store::StoredItem*>& items);

// RemoveItems removes ids from both indexes; absent ids are ignored.
absl::Status RemoveItems(CollectionIndexes& indexes, const std::vector<std::string>& ids);

// RecoverIndexes builds the indexes of `record` from its snapshots under `snapshot_root`
// (empty: none) and the store. Errors: the store's, DATA_LOSS for a stored item that does not
// fit, or INVALID_ARGUMENT when an index spec cannot be built.
absl::StatusOr<RecoveredIndexes> RecoverIndexes(const store::ItemStore& store,
                                                const store::CollectionRecord& record,
                                                const std::string& snapshot_root);

// SaveSnapshots writes both indexes as the collection's snapshots including store sequence
// `sequence`. REQUIRES: every change of the collection up to `sequence` is in both indexes
// (read the sequence while no write to the collection is between store and indexes).
absl::Status SaveSnapshots(const CollectionIndexes& indexes, const store::CollectionRecord& record,
                           int64_t sequence, const std::string& snapshot_root);

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_COLLECTION_INDEX_H_
