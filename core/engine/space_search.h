// space_search.h — a call's vector searches, as the search path asks for them: in this process's
// indexes (LocalSpaces), or scattered over the shard servers of a sharded cluster (a frontend's
// SpaceSearcher, server/cluster/remote_spaces.h). Both answer the same: for each query its top
// k items passing the filter, best first (ties by id ascending), each shown with its caption,
// attributes and times and, when asked, the stored embeddings PROVENANCE re-ranks with.
//
// A hit is never an item deleted since its index was searched, nor one whose attributes no
// longer pass the filter: hits are checked against what they are shown with (the item table,
// or the store for hits with embeddings).
//
// Thread-safety: implementations are safe for concurrent use.
//
//   RETRACE_ASSIGN_OR_RETURN(SpaceResult r, spaces->Search(collection, {{Space::kCaption, q, 10}},
//                                                          query.filter, call, false));
#ifndef RETRACE_CORE_ENGINE_SPACE_SEARCH_H_
#define RETRACE_CORE_ENGINE_SPACE_SEARCH_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/batchers.h"
#include "core/engine/collection_index.h"
#include "core/engine/engine_types.h"
#include "core/engine/live_collection.h"
#include "core/filter/filter.h"
#include "core/store/item_store.h"

namespace retrace::engine {

// SpaceQuery: one index search of a call.
struct SpaceQuery {
  Space space = Space::kCaption;
  std::vector<float> vector;  // L2-normalised, of the space's dimension
  int k = 0;
  bool with_embeddings = false;  // hits carry their stored embeddings (read from the store)
};

// SpaceHit: one hit; `item` holds id, caption, attributes and times, and embeddings when asked.
struct SpaceHit {
  ItemRecord item;
  float score = 0;
};

struct SpaceResult {
  std::vector<std::vector<SpaceHit>> hits;  // one list per query, in order
  // The store position the searched indexes had applied (the least of the shard servers').
  int64_t applied_position = 0;
  // The collection's shards left out (allow_partial only), ascending.
  std::vector<int> missing_shards;
};

class SpaceSearcher {
 public:
  virtual ~SpaceSearcher() = default;
  // Search runs `queries` over `collection`, ranking only items that pass `filter` (if any).
  // With `allow_partial`, shards that cannot be searched are listed in missing_shards rather
  // than failing the call (only a sharded cluster has such shards). Errors: the indexes' or the
  // store's; a frontend's UNAVAILABLE naming the shards, or DEADLINE_EXCEEDED.
  virtual absl::StatusOr<SpaceResult> Search(const LiveCollection& collection,
                                             const std::vector<SpaceQuery>& queries,
                                             const std::optional<filter::Filter>& filter,
                                             const CallOptions& call, bool allow_partial) = 0;
  // Groups: where the searches go, each replica's health probed by `deadline` (a sharded
  // cluster's shard map); empty for this process's own indexes.
  virtual std::vector<ShardGroupStatus> Groups(absl::Time deadline) { return {}; }
};

// LocalSpaces searches this process's indexes (through the batchers' search lanes) and shows
// hits from its item table, or from the store for hits with embeddings.
// REQUIRES: the collection holds its indexes (LiveCollection::holds_indexes).
class LocalSpaces : public SpaceSearcher {
 public:
  // Not owned; must outlive this object.
  LocalSpaces(Batchers* batchers, const store::ItemStore* store)
      : batchers_(batchers), store_(store) {}
  absl::StatusOr<SpaceResult> Search(const LiveCollection& collection,
                                     const std::vector<SpaceQuery>& queries,
                                     const std::optional<filter::Filter>& filter,
                                     const CallOptions& call, bool allow_partial) override;

 private:
  Batchers* const batchers_;
  const store::ItemStore* const store_;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_SPACE_SEARCH_H_
