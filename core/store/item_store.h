// item_store.h — the durable record of collections and their items: the source of truth from
// which every vector index is derived (ARCHITECTURE.md, "Collections, shards and durability").
//
// An ItemStore keeps, per collection, each item's caption, attributes and every embedding the
// search spaces and re-ranking read. Indexes are rebuilt from it at start-up, or loaded from a
// snapshot and caught up with ForEachChangeSince. Implementations: SqliteItemStore (embedded,
// one file in the data directory); a server-database store for cluster mode must fit the same
// interface.
//
// Sequence numbers: one counter per store. Every committed change (a PutItems batch, a
// DeleteItems call that removed something, CreateCollection, DropCollection) takes the next
// number, so an index snapshot tagged with LastSequence() names exactly the changes it includes.
//
// Thread-safety: implementations are safe for concurrent use by many threads.
//
//   RETRACE_RETURN_IF_ERROR(store->CreateCollection(record));
//   RETRACE_ASSIGN_OR_RETURN(auto seq, store->PutItems("art", std::move(items)));
#ifndef RETRACE_CORE_STORE_ITEM_STORE_H_
#define RETRACE_CORE_STORE_ITEM_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace retrace::store {

// CollectionRecord: what a collection is; fixed at creation.
struct CollectionRecord {
  std::string name;
  int shards = 1;
  std::string caption_index = "Flat";  // FAISS factory string of the caption space
  int caption_dim = 0;                 // CLIP embedding size
  std::string clip_model;              // identity of the CLIP model (name + version)
  std::string captioner_model;         // identity of the captioner
  std::string image_index = "Flat";    // FAISS factory string of the image space
  // The image space: CLIP's image embedding alone (image_encoder_model empty, image_dim ==
  // caption_dim) or the image encoder's (CS-SLIP) concatenated with it.
  int image_dim = 0;
  std::string image_encoder_model;     // identity of the image encoder; empty: none
  // created_seq is output only (CreateCollection ignores it): the sequence number of the
  // collection's creation. A collection dropped and created again under the same name gets a
  // new one, so a snapshot of the old collection is recognisable as stale.
  int64_t created_seq = 0;
};

// StoredItem: one item with everything search and re-ranking read.
struct StoredItem {
  std::string id;
  std::string caption;
  std::map<std::string, std::string> attributes;
  std::vector<float> clip_image;    // L2-normalised CLIP image embedding (caption_dim floats)
  std::vector<float> caption_text;  // L2-normalised CLIP text embedding of the caption
  // L2-normalised image-encoder (CS-SLIP) embedding; empty when the collection has no encoder.
  std::vector<float> image_features;
  // content_hash is computed by the caller over the item's inputs (the engine hashes the
  // encoded image bytes, the given caption and the attributes) and stored as given: the store
  // never computes or checks it. GetContentHashes reads it back cheaply, so that re-sending
  // unchanged content can be skipped before any model runs.
  uint64_t content_hash = 0;
};

class ItemStore {
 public:
  virtual ~ItemStore() = default;

  // CreateCollection stores a new collection and returns its created_seq. ALREADY_EXISTS if the
  // name is taken.
  virtual absl::StatusOr<int64_t> CreateCollection(const CollectionRecord& record) = 0;

  // DropCollection removes a collection and all its items. NOT_FOUND if absent.
  virtual absl::Status DropCollection(const std::string& name) = 0;

  // ListCollections returns every collection, sorted by name.
  virtual absl::StatusOr<std::vector<CollectionRecord>> ListCollections() const = 0;

  // PutItems stores a batch atomically and durably before it returns OK (all or none). An item
  // whose id exists is replaced. REQUIRES: ids unique within the batch (INVALID_ARGUMENT else).
  // NOT_FOUND if the collection is absent. Returns the store sequence number of the batch.
  virtual absl::StatusOr<int64_t> PutItems(const std::string& collection,
                                           std::vector<StoredItem> items) = 0;

  // GetItems returns one entry per id, in order; nullopt for an id that is not stored.
  // NOT_FOUND if the collection is absent.
  virtual absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItems(
      const std::string& collection, const std::vector<std::string>& ids) const = 0;

  // GetItemsWithoutEmbeddings is GetItems with every embedding left empty: ids, hashes,
  // captions and attributes only, for callers that show items (search hits) rather than score
  // them. It reads far less: the embeddings are most of a stored row.
  virtual absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItemsWithoutEmbeddings(
      const std::string& collection, const std::vector<std::string>& ids) const = 0;

  // GetContentHashes returns, per id in order, the stored item's content_hash; nullopt for an
  // id that is not stored. Reads no embeddings. NOT_FOUND if the collection is absent.
  virtual absl::StatusOr<std::vector<std::optional<uint64_t>>> GetContentHashes(
      const std::string& collection, const std::vector<std::string>& ids) const = 0;

  // DeleteItems removes items durably; returns, per id in order, whether it was present.
  // NOT_FOUND if the collection is absent.
  virtual absl::StatusOr<std::vector<bool>> DeleteItems(const std::string& collection,
                                                        const std::vector<std::string>& ids) = 0;

  // CountItems returns how many items a collection holds. NOT_FOUND if absent.
  virtual absl::StatusOr<int64_t> CountItems(const std::string& collection) const = 0;

  // ForEachItem calls `visit` for every item of a collection (in no promised order) until it
  // returns a non-OK status, which is then returned. Used to rebuild indexes at start-up.
  virtual absl::Status ForEachItem(
      const std::string& collection,
      const std::function<absl::Status(const StoredItem&)>& visit) const = 0;

  // LastSequence returns the number of the latest committed change; 0 for a new store.
  virtual int64_t LastSequence() const = 0;

  // ForEachChangeSince reports what changed in a collection after sequence `after_seq`, so that
  // a snapshot holding the collection's state as of `after_seq` can catch up: `on_put` gets
  // every item whose latest put has a sequence > after_seq, in its current state; `on_delete`
  // gets every id deleted with a sequence > after_seq and not put since. An id is present or
  // deleted, so it is reported once, with its latest change, and applying the calls in any
  // order to the state as of `after_seq` gives the current state. `on_delete` may name an id
  // that state never held (put and deleted since): deleting it is a no-op. Order unspecified;
  // stops at the first non-OK status from a callback and returns it.
  // Not a snapshot: a change committed during the call may be missed, or reported after an
  // older change of the same id. To include such changes, call again with after_seq = the
  // LastSequence() read before the first call: its reports supersede.
  // Errors: NOT_FOUND if the collection is absent; OUT_OF_RANGE if CompactDeletions has
  // discarded deletions newer than `after_seq` (rebuild with ForEachItem instead); ABORTED if
  // the collection is dropped during the call.
  virtual absl::Status ForEachChangeSince(
      const std::string& collection, int64_t after_seq,
      const std::function<absl::Status(const StoredItem&)>& on_put,
      const std::function<absl::Status(const std::string& id)>& on_delete) const = 0;

  // CompactDeletions forgets the collection's deletions with sequence <= up_to_seq, which only
  // ForEachChangeSince with an older after_seq needs: pass the sequence of the oldest snapshot
  // still kept. Deletions are otherwise kept forever. Afterwards ForEachChangeSince with
  // after_seq < up_to_seq is OUT_OF_RANGE. Changes no item, so takes no sequence number.
  // NOT_FOUND if the collection is absent; INVALID_ARGUMENT if up_to_seq > LastSequence().
  virtual absl::Status CompactDeletions(const std::string& collection, int64_t up_to_seq) = 0;
};

}  // namespace retrace::store

#endif  // RETRACE_CORE_STORE_ITEM_STORE_H_
