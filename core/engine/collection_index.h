// collection_index.h — what a replica derives from the store for one collection: its two vector
// indexes (caption space, image space) and its item table (what hits show), built from the
// store, updated from its change feed (follower.h), and saved together in snapshots.
//
// The store is the source of truth; these are derived. RecoverIndexes loads the collection's
// last snapshot (both spaces and the item table, taken at one position) or, without a usable
// one (none, corrupt, another index spec, taken at different positions, or of an earlier
// collection of the same name), builds them in one pass over the stored items — slower, never
// wrong. Either way it returns the position the follower resumes from. SaveSnapshots writes all
// three, each atomically, tagged with the position they include.
//
// Thread-safety: functions; the indexes, table and store they are given are thread-safe.
//
//   RETRACE_ASSIGN_OR_RETURN(RecoveredIndexes r, RecoverIndexes(store, record, dir));
//   log->info("'{}': {}", record.name, r.how);
#ifndef RETRACE_CORE_ENGINE_COLLECTION_INDEX_H_
#define RETRACE_CORE_ENGINE_COLLECTION_INDEX_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/engine/item_table.h"
#include "core/index/sharded_index.h"
#include "core/store/item_store.h"

namespace retrace::engine {

enum class Space { kCaption, kImage };

// ShardGroup: which of a collection's shards this process holds. A shard server of a sharded
// cluster (ARCHITECTURE.md, "Cluster") holds the shards s with s mod count == index, every other
// process all of them (count 1). Placement is index::ShardedIndex::ShardOf, so a shard server's
// shard s holds exactly what shard s of a whole process holds.
struct ShardGroup {
  int index = 0;
  int count = 1;
  bool Holds(std::string_view id, int shards) const;
  bool operator==(const ShardGroup& o) const { return index == o.index && count == o.count; }
};

struct CollectionIndexes {
  ShardGroup group;  // what the indexes and the table hold: only this group's items
  std::unique_ptr<index::ShardedIndex> captions;  // CLIP text embeddings of the captions
  std::unique_ptr<index::ShardedIndex> images;    // image-space vectors (image_space.h)
  std::unique_ptr<ItemTable> items;               // captions and attributes, for hits
};

struct RecoveredIndexes {
  CollectionIndexes indexes;
  // Every change up to `applied` is in them: follow the feed from there.
  int64_t applied = 0;
  int64_t snapshot_position = -1;  // of the snapshot loaded, or -1 when built from the items
  std::string how;                 // for the log: "snapshot at position 812 loaded in ...", ...
};

// IndexOptionsFor: a space's index options for a collection.
index::IndexOptions IndexOptionsFor(const store::CollectionRecord& record, Space space);

// CreateIndexes makes a collection's two empty indexes. INVALID_ARGUMENT naming caption_index
// or image_index when a spec cannot be built.
absl::StatusOr<CollectionIndexes> CreateIndexes(const store::CollectionRecord& record,
                                                const ShardGroup& group = {});

// SnapshotDir: where a collection's snapshot of `space` lives under `snapshot_root`.
std::string SnapshotDir(const std::string& snapshot_root, const std::string& collection,
                        Space space);

// ApplyChanges applies a page of the change feed, in order, to the indexes and the item table:
// a put upserts the item, a deletion removes it (absent ids are ignored); a put of an item
// outside indexes.group is skipped. Idempotent: applying a
// page again leaves the same state, so a failed apply is retried from the same page. DATA_LOSS
// if an item's embeddings do not fit the collection's dimensions; the index's error otherwise.
absl::Status ApplyChanges(CollectionIndexes& indexes, const store::CollectionRecord& record,
                          const std::vector<store::Change>& changes);

// RecoverIndexes builds the indexes and item table of `record` (the items `group` holds) from its
// snapshot under `snapshot_root` (empty: none; one of another group is not used; with
// `mmap_snapshots`, trained IVF indexes keep their lists mapped from it) or from the store's
// items. Errors: the store's, DATA_LOSS for a
// stored item that does not fit, or INVALID_ARGUMENT when an index spec cannot be built.
absl::StatusOr<RecoveredIndexes> RecoverIndexes(const store::ItemStore& store,
                                                const store::CollectionRecord& record,
                                                const std::string& snapshot_root,
                                                const ShardGroup& group = {},
                                                bool mmap_snapshots = false);

// BuildFromItems builds them from the store's items alone (reading the last position first, so
// the feed from RecoveredIndexes.applied holds whatever the scan missed). `why` goes to `how`.
absl::StatusOr<RecoveredIndexes> BuildFromItems(const store::ItemStore& store,
                                                const store::CollectionRecord& record,
                                                const std::string& why,
                                                const ShardGroup& group = {});

// SaveSnapshots writes the indexes and the item table as the collection's snapshot of store
// position `position`. REQUIRES: every change up to `position` is in them (changes after it
// may be too: the follower applies them again after a restart, and applying is idempotent).
absl::Status SaveSnapshots(const CollectionIndexes& indexes, const store::CollectionRecord& record,
                           int64_t position, const std::string& snapshot_root);

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_COLLECTION_INDEX_H_
