// sqlite_item_store.h — the embedded ItemStore: one SQLite database, `<data_dir>/retrace.db`.
//
// Durability: WAL journal with synchronous=FULL, so when PutItems, DeleteItems, CreateCollection
// or DropCollection returns OK its transaction is on disk and survives a crash of the process or
// the machine (given a disk that honours fsync). Each of those calls is one transaction: all of
// it or none of it is stored.
// Exclusivity: Open takes an advisory lock, flock(2) on `<data_dir>/LOCK`, held until the store
// is destroyed, so two servers never share a data directory. The kernel drops the lock when the
// process dies. The lock belongs to the open file, which a fork()ed child shares: a child must
// not open the same directory while its parent's store is alive, nor use the parent's store.
// Sequence: the store keeps one counter for the whole database. Every committed change (a
// PutItems batch, a DeleteItems call that removed something, CreateCollection, DropCollection)
// takes the next number, so an index snapshot tagged with LastSequence() is current exactly
// while LastSequence() still returns that number. Every row of a PutItems batch is stamped with
// the batch's number, and every id a DeleteItems call removed is recorded with the call's
// number, so ForEachChangeSince reads only what changed after a snapshot.
// The schema and the BLOB layouts are in sqlite_item_store.cc and internal/record_codec.h.
//
// Thread-safety: safe for concurrent use. Writes go through one connection under one mutex, so
// they are serialised (SQLite has one writer anyway). Reads go through a second connection under
// a second mutex: WAL lets them run while a write commits, so a search never waits for a disk
// flush, though reads are serialised among themselves.
//
//   RETRACE_ASSIGN_OR_RETURN(auto store, SqliteItemStore::Open("/var/lib/retrace"));
//   RETRACE_ASSIGN_OR_RETURN(int64_t seq, store->PutItems("art", std::move(items)));
#ifndef RETRACE_CORE_STORE_SQLITE_ITEM_STORE_H_
#define RETRACE_CORE_STORE_SQLITE_ITEM_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/store/item_store.h"

namespace retrace::store {

namespace internal {
class Connection;
}  // namespace internal

// SqliteItemStore is the ItemStore on embedded SQLite; see the banner. Not copyable or movable.
//
// Errors common to every method: an SQLite failure becomes a status naming the operation and
// SQLite's message, e.g. INTERNAL "sqlite: insert item 'x' into 'art': disk I/O error";
// RESOURCE_EXHAUSTED when the disk is full; DATA_LOSS for a corrupt database or a malformed
// stored record; UNAVAILABLE if the database stays busy past the busy timeout (5 s). Ids and
// names may hold any bytes (NUL included); they appear C-escaped in messages.
class SqliteItemStore final : public ItemStore {
 public:
  // kSchemaVersion is the schema this build writes and reads (PRAGMA user_version).
  static constexpr int kSchemaVersion = 3;

  // Open opens or creates `<data_dir>/retrace.db`, creating `data_dir` (and its parents) if
  // needed. Errors: FAILED_PRECONDITION "data directory X is in use by another process (LOCK
  // held)" if another open store holds the lock (in this process or another);
  // FAILED_PRECONDITION if the database has another schema version (newer, or version 1, which
  // kept no deletions and is not migrated) or is not a retrace store; DATA_LOSS if retrace.db is
  // not an SQLite database; INVALID_ARGUMENT for an empty `data_dir`; INTERNAL for a directory or
  // lock file that cannot be made.
  static absl::StatusOr<std::unique_ptr<SqliteItemStore>> Open(const std::string& data_dir);

  SqliteItemStore(const SqliteItemStore&) = delete;
  SqliteItemStore& operator=(const SqliteItemStore&) = delete;
  // ~SqliteItemStore closes the database (checkpointing the WAL) and then releases the lock.
  // REQUIRES: no call is in progress.
  ~SqliteItemStore() override;

  // CreateCollection: see ItemStore. Stamps created_at and created_seq.
  absl::StatusOr<int64_t> CreateCollection(const CollectionRecord& record) override;
  // DropCollection: see ItemStore; the collection, its items and its recorded deletions go in
  // one transaction.
  absl::Status DropCollection(const std::string& name) override;
  // ListCollections: see ItemStore; sorted by the names' bytes.
  absl::StatusOr<std::vector<CollectionRecord>> ListCollections() const override;

  // PutItems: see ItemStore. INVALID_ARGUMENT naming the first repeated id, before anything is
  // written. A replaced item keeps its created_at; updated_at and seq are set on every write.
  // An empty batch writes nothing and returns LastSequence() (NOT_FOUND still applies).
  // Forgets the recorded deletion of every id it puts, in the same transaction.
  absl::StatusOr<int64_t> PutItems(const std::string& collection,
                                   std::vector<StoredItem> items) override;
  // GetItems: see ItemStore. All ids are read from one snapshot.
  absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItems(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItemsWithoutEmbeddings(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  // GetContentHashes: see ItemStore. All ids are read from one snapshot; one index lookup and
  // the row's first page each, never the embeddings' overflow pages.
  absl::StatusOr<std::vector<std::optional<uint64_t>>> GetContentHashes(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  // DeleteItems: see ItemStore. An id repeated in `ids` is present only at its first position.
  // Records each removed id with the call's sequence number for ForEachChangeSince.
  absl::StatusOr<std::vector<bool>> DeleteItems(const std::string& collection,
                                                const std::vector<std::string>& ids) override;
  // CountItems: see ItemStore. Counts the collection's rows: linear in the collection's size.
  absl::StatusOr<int64_t> CountItems(const std::string& collection) const override;
  // ForEachItem: see ItemStore. Visits in id byte order, reading pages of items and calling
  // `visit` with no lock held, so `visit` may call this store. Not a snapshot: an item put or
  // deleted during the scan may or may not be visited; every item present throughout is
  // visited exactly once.
  absl::Status ForEachItem(
      const std::string& collection,
      const std::function<absl::Status(const StoredItem&)>& visit) const override;

  // LastSequence: see ItemStore. Waits for a write in progress.
  int64_t LastSequence() const override;

  // ForEachChangeSince: see ItemStore. Reports the puts (in sequence order), then the
  // deletions (in sequence order), reading pages as ForEachItem does and calling the callbacks
  // with no lock held, so they may call this store. A change committed during the scan is
  // reported or not; an unchanged item or deletion is reported exactly once.
  absl::Status ForEachChangeSince(
      const std::string& collection, int64_t after_seq,
      const std::function<absl::Status(const StoredItem&)>& on_put,
      const std::function<absl::Status(const std::string& id)>& on_delete) const override;

  // CompactDeletions: see ItemStore. Durable when it returns OK. Remembers the highest
  // up_to_seq per collection (a lower one later compacts nothing more).
  absl::Status CompactDeletions(const std::string& collection, int64_t up_to_seq) override;

 private:
  absl::StatusOr<std::vector<std::optional<StoredItem>>> ReadItems(
      const std::string& collection, const std::vector<std::string>& ids, bool embeddings) const;
  SqliteItemStore(int lock_fd, std::unique_ptr<internal::Connection> writer,
                  std::unique_ptr<internal::Connection> reader, int64_t last_seq);

  const int lock_fd_;  // owns the flock on <data_dir>/LOCK; closed last

  mutable absl::Mutex write_mu_;
  std::unique_ptr<internal::Connection> writer_ ABSL_PT_GUARDED_BY(write_mu_);
  int64_t last_seq_ ABSL_GUARDED_BY(write_mu_);

  mutable absl::Mutex read_mu_;
  std::unique_ptr<internal::Connection> reader_ ABSL_PT_GUARDED_BY(read_mu_);
};

}  // namespace retrace::store

#endif  // RETRACE_CORE_STORE_SQLITE_ITEM_STORE_H_
