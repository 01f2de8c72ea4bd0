// item_store.h — the durable record of collections and their items, and the one log of their
// changes that every vector index follows (ARCHITECTURE.md, "The store is the log").
//
// An ItemStore keeps, per collection, each item's caption, attributes and every embedding the
// search spaces and re-ranking read. Implementations: SqliteItemStore (embedded, one process)
// and PostgresItemStore (shared by several server processes).
//
// Positions. Every committed change — a PutItems batch, a DeleteItems call that removed
// something, CreateCollection, DropCollection — takes the next position of one store-wide
// counter, and changes commit in position order: a change that commits after a read has begun
// gets a position above every position that read can see. So a reader that has seen every
// change up to position P never later finds a change at or below P (the change feed cannot skip).
// Every PutItems row is stamped with its batch's position, and every id DeleteItems removed is
// recorded with its call's position, until CompactDeletions forgets it.
//
// The change feed. ReadChanges returns a collection's changes after a cursor in (position, id)
// order, a page at a time: each item's latest put, or its deletion, whichever is newer. An item
// changed again moves forward in that order, never behind a cursor, so a reader that pages from
// cursor C to a page with `more` false has, for every item, a state at least as new as the
// store's at that page's `last_position` (a follower may then record that position as applied).
//
// Replicas. Every process that follows the store (a server replica) records, with a heartbeat,
// how far each of its collections' indexes has applied the feed and from which position it would
// resume after a restart (its snapshot's). Deletions are compacted only below every live
// replica's resume position (core/engine/replication.h decides; the store only records).
//
// Thread-safety: implementations are safe for concurrent use by many threads.
//
//   RETRACE_ASSIGN_OR_RETURN(int64_t created, store->CreateCollection(record));
//   RETRACE_ASSIGN_OR_RETURN(int64_t position, store->PutItems("art", std::move(items)));
//   RETRACE_ASSIGN_OR_RETURN(ChangePage page, store->ReadChanges("art", created, {}, 256));
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
#include "absl/time/time.h"

namespace retrace::store {

// CollectionRecord: what a collection is; fixed at creation.
struct CollectionRecord {
  std::string name;
  int shards = 1;
  std::string caption_index;           // FAISS factory string of the caption space
  int caption_dim = 0;                 // CLIP embedding size
  std::string clip_model;              // identity of the CLIP model (name + version + dtype)
  std::string captioner_model;         // identity of the captioner
  std::string image_index;             // FAISS factory string of the image space
  // The image space: CLIP's image embedding alone (image_encoder_model empty, image_dim ==
  // caption_dim) or the image encoder's (CS-SLIP) concatenated with it.
  int image_dim = 0;
  std::string image_encoder_model;     // identity of the image encoder; empty: none
  // The longest side, in pixels, of the JPEG kept per item for showing it (PutItems stores
  // StoredItem.thumbnail); 0: the collection keeps none.
  int thumbnail_side = 0;
  // Output only (CreateCollection ignores them). created_position: the position of the
  // collection's creation; a collection dropped and created again under the same name gets a
  // new one, so an index or snapshot of the old collection is recognisable as stale.
  int64_t created_position = 0;
  // last_change_position: the position of the collection's latest change (its creation, or a
  // put or deletion), as of the read that returned the record.
  int64_t last_change_position = 0;
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
  // never computes or checks it. GetItemVersions reads it back cheaply, so that re-sending
  // unchanged content can be skipped before any model runs.
  uint64_t content_hash = 0;
  // Input only: a small JPEG of the image, for showing the item; empty: none. PutItems stores
  // it in the same transaction as the item (and removes an older one when empty); reads leave it
  // empty, GetThumbnails reads it. It is not part of the change feed: no index needs it.
  std::string thumbnail;
  // Output only (PutItems ignores them): when the item was first stored and when this version
  // was, in milliseconds since the Unix epoch by the store's clock.
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  // Output only: the position of the put that stored this version (PutItems ignores it).
  int64_t position = 0;
};

// ReplaceCheck: whether a stored item may be replaced by a new version (PutItemsChecked).
using ReplaceCheck = std::function<bool(const StoredItem& stored)>;

// PutResult: what PutItemsChecked wrote.
struct PutResult {
  int64_t position = 0;         // the batch's position (the last position if nothing was written)
  std::vector<size_t> refused;  // indexes of the items not written, ascending
};

// ItemVersion: what GetItemVersions reads of a stored item.
struct ItemVersion {
  uint64_t content_hash = 0;
  int64_t position = 0;  // of the put that stored it
};

// StoreState: the collections and the last position, read together.
struct StoreState {
  int64_t last_position = 0;
  std::vector<CollectionRecord> collections;  // sorted by name
};

// DeleteResult: DeleteItems' answer.
struct DeleteResult {
  std::vector<bool> present;  // per id, in order: whether it was stored (and is now deleted)
  int64_t position = 0;       // of the deletion; the last position when nothing was removed
};

// Change: one entry of the change feed.
struct Change {
  enum class Kind { kPut, kDelete };
  Kind kind = Kind::kPut;
  int64_t position = 0;
  std::string id;
  StoredItem item;  // kPut: the item as stored (item.id == id); kDelete: empty
};

// ChangeCursor: where a feed read resumes: after (position, id), or, without an id, after
// every change at or below `position`. The default starts at the beginning.
struct ChangeCursor {
  int64_t position = 0;
  std::optional<std::string> id;
};

// ChangePage: one page of the change feed.
struct ChangePage {
  std::vector<Change> changes;  // in (position, id) order, each after the cursor it was read from
  ChangeCursor next;            // resume here; equals the cursor read from when changes is empty
  bool more = false;            // the page was full: more changes may follow `next`
  int64_t last_position = 0;    // the store's last position as of this page's read
};

// CaptionMatch: one item SearchCaptions found, with its caption's lexical relevance (higher is
// better; see SearchCaptions for the scale).
struct CaptionMatch {
  std::string id;
  double score = 0;
};

// ReplicaCollectionPosition: how far one replica's indexes of one collection have come.
struct ReplicaCollectionPosition {
  std::string collection;
  int64_t created_position = 0;  // of the collection these positions are about
  int64_t applied = 0;           // every change up to here is in this replica's indexes
  // Where this replica would resume after a restart: its snapshot's position, or -1 when it
  // would rebuild from the items (no snapshot).
  int64_t resume = -1;
};

// ReplicaRecord: one replica, as its last heartbeat recorded it.
struct ReplicaRecord {
  std::string replica;  // its id (--replica-id); unique per store
  std::string address;  // where it serves (host:port), for operators
  absl::Time started = absl::InfinitePast();
  absl::Time heartbeat = absl::InfinitePast();  // the store's clock, as of the last report
  std::vector<ReplicaCollectionPosition> positions;  // sorted by collection
};

class ItemStore {
 public:
  virtual ~ItemStore() = default;

  // Describe: what kind of store this is and where, for logs ("sqlite /var/lib/retrace/
  // retrace.db", "postgresql db@host:5432"); never a password.
  virtual std::string Describe() const = 0;

  // CreateCollection stores a new collection and returns its created_position. ALREADY_EXISTS
  // if the name is taken.
  virtual absl::StatusOr<int64_t> CreateCollection(const CollectionRecord& record) = 0;

  // DropCollection removes a collection, all its items and its recorded deletions, and returns
  // the drop's position. NOT_FOUND if absent.
  virtual absl::StatusOr<int64_t> DropCollection(const std::string& name) = 0;

  // ReadState returns every collection (sorted by name) and the last position, as of one read.
  virtual absl::StatusOr<StoreState> ReadState() const = 0;

  // PutItems stores a batch atomically and durably before it returns OK (all or none). An item
  // whose id exists is replaced. REQUIRES: ids unique within the batch (INVALID_ARGUMENT else).
  // NOT_FOUND if the collection is absent. Returns the batch's position (an empty batch writes
  // nothing and returns the last position).
  virtual absl::StatusOr<int64_t> PutItems(const std::string& collection,
                                           std::vector<StoredItem> items) = 0;

  // PutItemsChecked is PutItems where an item whose id already holds a stored item is written
  // only if `may_replace` accepts that stored item (read without embeddings: id, caption,
  // attributes, times). The check and the write are one transaction, so no other write comes
  // between them (a tenant's id cannot be taken by another tenant after it was checked). The
  // items it accepts are stored atomically at one position; the refused ones are listed by
  // index and not written. When every item is refused nothing is written and the position is
  // the last one. `may_replace` runs under the store's write lock: keep it a pure function. An
  // empty `may_replace` checks nothing: the call is PutItems, with nothing refused.
  virtual absl::StatusOr<PutResult> PutItemsChecked(const std::string& collection,
                                                    std::vector<StoredItem> items,
                                                    const ReplaceCheck& may_replace) = 0;

  // GetItems returns one entry per id, in order; nullopt for an id that is not stored.
  // NOT_FOUND if the collection is absent.
  virtual absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItems(
      const std::string& collection, const std::vector<std::string>& ids) const = 0;

  // GetItemsWithoutEmbeddings is GetItems with every embedding left empty: ids, hashes,
  // captions and attributes only, for callers that show items (search hits) rather than score
  // them. It reads far less: the embeddings are most of a stored row.
  virtual absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItemsWithoutEmbeddings(
      const std::string& collection, const std::vector<std::string>& ids) const = 0;

  // GetItemVersions returns, per id in order, the stored item's content hash and position;
  // nullopt for an id that is not stored. Reads no embeddings. NOT_FOUND if the collection is
  // absent.
  virtual absl::StatusOr<std::vector<std::optional<ItemVersion>>> GetItemVersions(
      const std::string& collection, const std::vector<std::string>& ids) const = 0;

  // ListItems returns up to `limit` items whose id sorts (bytewise) after `after` (empty: from
  // the first), in id order, read in one transaction; embeddings only when asked. Paging on the
  // last id returned gives every item that exists throughout exactly once, whatever is written
  // meanwhile. NOT_FOUND if the collection is absent.
  virtual absl::StatusOr<std::vector<StoredItem>> ListItems(const std::string& collection,
                                                            const std::string& after, int limit,
                                                            bool embeddings) const = 0;

  // GetThumbnails returns, per id in order, the item's thumbnail; nullopt for an id that is not
  // stored or was stored without one. NOT_FOUND if the collection is absent.
  virtual absl::StatusOr<std::vector<std::optional<std::string>>> GetThumbnails(
      const std::string& collection, const std::vector<std::string>& ids) const = 0;

  // DeleteItems removes items (and their thumbnails) durably; see DeleteResult. NOT_FOUND if
  // the collection is absent.
  virtual absl::StatusOr<DeleteResult> DeleteItems(const std::string& collection,
                                                   const std::vector<std::string>& ids) = 0;

  // CountItems returns how many items a collection holds. NOT_FOUND if absent.
  virtual absl::StatusOr<int64_t> CountItems(const std::string& collection) const = 0;

  // ForEachItem calls `visit` for every item of a collection (in no promised order) until it
  // returns a non-OK status, which is then returned. Not a snapshot: an item put or deleted
  // during the scan may or may not be visited (in its old or new state); every item present
  // throughout is visited exactly once. To build an index from it, read LastPosition() first
  // and then follow the feed from there: the changes the scan missed are after that position.
  virtual absl::Status ForEachItem(
      const std::string& collection,
      const std::function<absl::Status(const StoredItem&)>& visit) const = 0;

  // LastPosition returns the position of the latest committed change; 0 for a new store.
  virtual absl::StatusOr<int64_t> LastPosition() const = 0;

  // ReadChanges returns up to `limit` (1..) changes of a collection after `cursor`; see the
  // banner and ChangePage. `created_position` names the collection the caller follows: ABORTED
  // when the collection was dropped (and perhaps created again) since. NOT_FOUND if absent;
  // OUT_OF_RANGE if deletions after cursor.position have been compacted away (rebuild from
  // ForEachItem then).
  virtual absl::StatusOr<ChangePage> ReadChanges(const std::string& collection,
                                                 int64_t created_position,
                                                 const ChangeCursor& cursor, int limit) const = 0;

  // WaitForChange returns the last position once it exceeds `after`, or when `timeout` passes
  // (then the last position, which may still be `after`). Changes made through this store
  // object wake it at once; changes made by other processes within the store's notification
  // latency (PostgreSQL: LISTEN/NOTIFY, with polling as the fallback).
  virtual absl::StatusOr<int64_t> WaitForChange(int64_t after, absl::Duration timeout) const = 0;

  // CompactDeletions forgets the collection's deletions at or below `up_to`, which only a feed
  // read from an older cursor needs. Afterwards ReadChanges from a cursor below `up_to` is
  // OUT_OF_RANGE. Changes no item, so takes no position. A lower `up_to` than an earlier call's
  // compacts nothing more. NOT_FOUND if the collection is absent; INVALID_ARGUMENT if up_to
  // exceeds the last position.
  virtual absl::Status CompactDeletions(const std::string& collection, int64_t up_to) = 0;

  // SearchCaptions ranks a collection's items by the lexical (full-text) relevance of their
  // captions to `terms`, best first (ties by id), and returns up to `limit` (1..) of them. An
  // item matches when its caption holds at least one of the terms as a word (OR); more of the
  // terms, and rarer ones, rank higher. `terms` are words as CaptionTerms (caption_terms.h)
  // makes them: the stores treat each as one literal word, never as query syntax. The score is
  // the store's: SQLite's BM25 (negated so higher is better; > 0), PostgreSQL's ts_rank_cd
  // (> 0; it counts matches and their proximity but not rarity). Both tokenise without
  // stemming or stop words (a Unicode word tokeniser folding case), so the same words match.
  // Reads the store's current captions, which may be ahead of an index following the feed.
  // An empty `terms` matches nothing. NOT_FOUND if the collection is absent.
  virtual absl::StatusOr<std::vector<CaptionMatch>> SearchCaptions(
      const std::string& collection, const std::vector<std::string>& terms, int limit) const = 0;

  // ReportReplica records (replaces) a replica's address and positions, and stamps its
  // heartbeat with the store's clock; `started` is kept from the replica's first report after
  // each start.
  virtual absl::Status ReportReplica(const ReplicaRecord& replica) = 0;

  // ListReplicas returns every replica that has reported, sorted by id.
  virtual absl::StatusOr<std::vector<ReplicaRecord>> ListReplicas() const = 0;

  // ForgetReplica removes a replica's record (one retired for good). NOT_FOUND if absent.
  virtual absl::Status ForgetReplica(const std::string& replica) = 0;
};

}  // namespace retrace::store

#endif  // RETRACE_CORE_STORE_ITEM_STORE_H_
