// collection_index.h — a collection's caption index at start-up and in snapshots.
//
// The store is the source of truth; an index is derived. At start-up RecoverCaptionIndex loads
// the collection's last snapshot and replays the store's changes after the snapshot's sequence;
// without a usable snapshot (none, corrupt, another index spec, or from an earlier collection of
// the same name) it rebuilds from every stored item — slower, never wrong. SaveCaptionSnapshot
// writes one atomically, tagged with the store sequence it includes.
//
// Thread-safety: functions; the index and store they are given are thread-safe.
//
//   RETRACE_ASSIGN_OR_RETURN(RecoveredIndex r, RecoverCaptionIndex(store, record, dir));
//   log->info("'{}': {}", record.name, r.how);
#ifndef RETRACE_CORE_ENGINE_COLLECTION_INDEX_H_
#define RETRACE_CORE_ENGINE_COLLECTION_INDEX_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/index/sharded_index.h"
#include "core/store/item_store.h"

namespace retrace::engine {

struct RecoveredIndex {
  std::unique_ptr<index::ShardedIndex> index;
  int64_t snapshot_sequence = -1;  // the snapshot used, or -1 when rebuilt from the store
  std::string how;                 // for the log: "snapshot at sequence 812 + 14 changes", ...
};

// CaptionIndexOptions: the caption space's index options for a collection.
index::IndexOptions CaptionIndexOptions(const store::CollectionRecord& record);

// CaptionSnapshotDir: where a collection's caption snapshot lives under `snapshot_root`.
std::string CaptionSnapshotDir(const std::string& snapshot_root, const std::string& collection);

// RecoverCaptionIndex builds the caption index of `record` from its snapshot under
// `snapshot_root` (empty: none) and the store. Errors: the store's, or INVALID_ARGUMENT when the
// collection's index spec cannot be built.
absl::StatusOr<RecoveredIndex> RecoverCaptionIndex(const store::ItemStore& store,
                                                   const store::CollectionRecord& record,
                                                   const std::string& snapshot_root);

// SaveCaptionSnapshot writes `index` as the collection's snapshot including store sequence
// `sequence`. REQUIRES: every change of the collection up to `sequence` is in `index` (read the
// sequence while no write to the collection is between store and index).
absl::Status SaveCaptionSnapshot(const index::ShardedIndex& index,
                                 const store::CollectionRecord& record, int64_t sequence,
                                 const std::string& snapshot_root);

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_COLLECTION_INDEX_H_
