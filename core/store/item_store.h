// item_store.h — the durable record of collections and their items: the source of truth from
// which every vector index is derived (ARCHITECTURE.md, "Collections, shards and durability").
//
// An ItemStore keeps, per collection, each item's caption, attributes and every embedding the
// search spaces and re-ranking read. Indexes are rebuilt from it at start-up. Implementations:
// SqliteItemStore (embedded, one file in the data directory); a server-database store for
// cluster mode must fit the same interface.
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
};

// StoredItem: one item with everything search and re-ranking read.
struct StoredItem {
  std::string id;
  std::string caption;
  std::map<std::string, std::string> attributes;
  std::vector<float> clip_image;    // L2-normalised CLIP image embedding (caption_dim floats)
  std::vector<float> caption_text;  // L2-normalised CLIP text embedding of the caption
};

class ItemStore {
 public:
  virtual ~ItemStore() = default;

  // CreateCollection stores a new collection. ALREADY_EXISTS if the name is taken.
  virtual absl::Status CreateCollection(const CollectionRecord& record) = 0;

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
};

}  // namespace retrace::store

#endif  // RETRACE_CORE_STORE_ITEM_STORE_H_
