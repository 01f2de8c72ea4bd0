// space_search.h — a call's vector searches, as the search path asks for them: in this process's
// indexes (LocalSpaces), or scattered over the shard servers of a sharded cluster (a frontend's
// SpaceSearcher, server/cluster/remote_spaces.h). Both answer the same: for each query its top
// k items passing the filter, best first (ties by id ascending), each shown with its caption,
// attributes and times and, when asked, the stored embeddings PROVENANCE re-ranks with.
//
// A hit is never an item deleted since its index was searched, nor one whose attributes no
// longer pass the filter: hits are checked against what they are shown with (the item table
// and, for hits with embeddings, the vectors the indexes hold; or the store, see LocalSpaces).
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
  bool with_embeddings = false;  // hits carry their stored embeddings (see LocalSpaces)
};

// SpaceHit: one hit; `item` holds id, caption, attributes and times, and embeddings when asked.
struct SpaceHit {
  ItemRecord item;
  float score = 0;
  // With embeddings read from the indexes of a collection with an image encoder: the image-space
  // vector the image index holds, which is ImageSpaceVector of item's embeddings bit for bit
  // (EmbeddedHitsFromIndexes checks), so re-ranking need not build it again. Empty otherwise.
  std::vector<float> image_space;
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
// hits from its item table. Hits with embeddings (PROVENANCE's candidates) take them from the
// indexes too when both of the collection's indexes hold exact vectors (Flat, HNSW over flat
// storage, any type until trained: ShardedIndex::ReadVectors), with no store round trip;
// otherwise (SQ, PQ, a trained IVF) from the store, whose embeddings are exact whatever the
// index. See EmbeddedHitsFromIndexes for what the two give alike and where they differ.
// REQUIRES: the collection holds its indexes (LiveCollection::holds_indexes).
class LocalSpaces : public SpaceSearcher {
 public:
  // Where hits with embeddings get them.
  enum class EmbeddingSource {
    kIndexesWhenExact,  // the indexes when both are exact, else the store (the server's)
    kStore,             // always the store: the reference the tests hold the indexes to
  };
  // Not owned; must outlive this object.
  LocalSpaces(Batchers* batchers, const store::ItemStore* store,
              EmbeddingSource embeddings = EmbeddingSource::kIndexesWhenExact)
      : batchers_(batchers), store_(store), embeddings_(embeddings) {}
  absl::StatusOr<SpaceResult> Search(const LiveCollection& collection,
                                     const std::vector<SpaceQuery>& queries,
                                     const std::optional<filter::Filter>& filter,
                                     const CallOptions& call, bool allow_partial) override;

 private:
  Batchers* const batchers_;
  const store::ItemStore* const store_;
  const EmbeddingSource embeddings_;
};

// The two ways LocalSpaces shows the hits `found` of one index search with their embeddings,
// keeping `found`'s order and leaving out each hit that is gone or fails `filter` as it stands
// at the read. Separate, so that a test can change the collection between a search and the read.
//
// EmbeddedHitsFromIndexes reads the item table (caption, attributes, times) and both indexes'
// vectors of the hits: the caption's CLIP text embedding as the caption index holds it, and
// the image-space vector v (image_space.h). Without an image encoder v is e_clip. With one,
// v = [e_enc, e_clip] / sqrt(2) rounded to float, which loses the last bit of some components,
// so e_enc and e_clip are recovered, per component, as the float nearest v * sqrt(2) from which
// ImageSpaceVector makes v again (checked for the whole vector). Hence, against the store's
// embeddings:
//   - S (the query against ImageSpaceVector of the hit) is bit for bit the store path's;
//   - P (the query's CLIP embedding against the caption's) too: the same floats;
//   - P' (Q_t against e_clip): a recovered component may be 1 ulp off the stored one, so P'
//     may differ in its last bits (relative 1e-7 at most). Only P''s rank enters S', and a rank
//     changes only between candidates whose P' are that close; identical images stay tied.
// A hit is shown iff the item table and both indexes hold it at the read, which reflects the
// changes this process has applied (as hits without embeddings do), not writes to the store
// still on their way: an item deleted, or changed to fail the filter, since the search is left
// out once applied, and one updated shows its new version. The three are read one after the
// other, as the follower updates them, so an item updated during the read may show vectors of
// its previous version beside its new caption. Returns nullopt (nothing read) when an index
// cannot give exact vectors, or a vector has no exact recovery: the caller reads the store.
absl::StatusOr<std::optional<std::vector<SpaceHit>>> EmbeddedHitsFromIndexes(
    const store::CollectionRecord& record, const CollectionIndexes& indexes,
    const std::vector<index::IndexHit>& found, const std::optional<filter::Filter>& filter);

// EmbeddedHitsFromStore reads the hits with their embeddings from the store (one GetItems):
// exact whatever the index type, as the store stands at the read. The store's errors.
absl::StatusOr<std::vector<SpaceHit>> EmbeddedHitsFromStore(
    const store::ItemStore& store, const std::string& collection,
    std::vector<index::IndexHit> found, const std::optional<filter::Filter>& filter);

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_SPACE_SEARCH_H_
