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
// Positions (item_store.h): one counter for the whole database; SQLite has one writer (and this
// store one write connection), so changes commit in position order.
// The schema and the BLOB layouts are in sqlite_item_store.cc and internal/record_codec.h.
//
// Thread-safety: safe for concurrent use. Writes go through one connection under one mutex, so
// they are serialised (SQLite has one writer anyway). Reads go through a second connection under
// a second mutex: WAL lets them run while a write commits, so a search never waits for a disk
// flush, though reads are serialised among themselves.
//
//   RETRACE_ASSIGN_OR_RETURN(auto store, SqliteItemStore::Open("/var/lib/retrace"));
//   RETRACE_ASSIGN_OR_RETURN(int64_t position, store->PutItems("art", std::move(items)));
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
  static constexpr int kSchemaVersion = 6;

  // Open opens or creates `<data_dir>/retrace.db`, creating `data_dir` (and its parents) if
  // needed, and migrates an older schema (2 to 5) in one transaction. Errors:
  // FAILED_PRECONDITION "data directory X is in use by another process (LOCK held)" if another
  // open store holds the lock (in this process or another); FAILED_PRECONDITION if the database
  // has another schema version (newer, or version 1, which kept no deletions and is not
  // migrated) or is not a retrace store; DATA_LOSS if retrace.db is not an SQLite database;
  // INVALID_ARGUMENT for an empty `data_dir`; INTERNAL for a directory or lock file that cannot
  // be made.
  static absl::StatusOr<std::unique_ptr<SqliteItemStore>> Open(const std::string& data_dir);

  SqliteItemStore(const SqliteItemStore&) = delete;
  SqliteItemStore& operator=(const SqliteItemStore&) = delete;
  // ~SqliteItemStore closes the database (checkpointing the WAL) and then releases the lock.
  // REQUIRES: no call is in progress.
  ~SqliteItemStore() override;

  std::string Describe() const override;
  // CreateCollection: see ItemStore. Stamps created_at and created_position.
  absl::StatusOr<int64_t> CreateCollection(const CollectionRecord& record) override;
  // DropCollection: see ItemStore; the collection, its items, its recorded deletions and the
  // replicas' positions for it go in one transaction.
  absl::StatusOr<int64_t> DropCollection(const std::string& name) override;
  // ReadState: see ItemStore; sorted by the names' bytes.
  absl::StatusOr<StoreState> ReadState() const override;

  // PutItems: see ItemStore. INVALID_ARGUMENT naming the first repeated id, before anything is
  // written. A replaced item keeps its created_at; updated_at and its position are set on
  // every write. Forgets the recorded deletion of every id it puts, in the same transaction.
  absl::StatusOr<int64_t> PutItems(const std::string& collection,
                                   std::vector<StoredItem> items) override;
  // PutItemsChecked: see ItemStore; the check reads each id's row in the write transaction.
  absl::StatusOr<PutResult> PutItemsChecked(const std::string& collection,
                                            std::vector<StoredItem> items,
                                            const ReplaceCheck& may_replace) override;
  // GetItems: see ItemStore. All ids are read from one snapshot.
  absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItems(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItemsWithoutEmbeddings(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  // GetItemVersions: see ItemStore. All ids are read from one snapshot; one index lookup and
  // the row's first page each, never the embeddings' overflow pages.
  absl::StatusOr<std::vector<std::optional<ItemVersion>>> GetItemVersions(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  absl::StatusOr<std::vector<StoredItem>> ListItems(const std::string& collection,
                                                    const std::string& after, int limit,
                                                    bool embeddings) const override;
  absl::StatusOr<std::vector<std::optional<std::string>>> GetThumbnails(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  // DeleteItems: see ItemStore. An id repeated in `ids` is present only at its first position.
  absl::StatusOr<DeleteResult> DeleteItems(const std::string& collection,
                                           const std::vector<std::string>& ids) override;
  // CountItems: see ItemStore. Counts the collection's rows: linear in the collection's size.
  absl::StatusOr<int64_t> CountItems(const std::string& collection) const override;
  // ForEachItem: see ItemStore. Visits in id byte order, reading pages of items and calling
  // `visit` with no lock held, so `visit` may call this store.
  absl::Status ForEachItem(
      const std::string& collection,
      const std::function<absl::Status(const StoredItem&)>& visit) const override;

  absl::StatusOr<int64_t> LastPosition() const override;
  // ReadChanges: see ItemStore. One read transaction per page.
  absl::StatusOr<ChangePage> ReadChanges(const std::string& collection, int64_t created_position,
                                         const ChangeCursor& cursor, int limit) const override;
  // WaitForChange: see ItemStore. Only this object writes the database (the LOCK), so every
  // change wakes it at once.
  absl::StatusOr<int64_t> WaitForChange(int64_t after, absl::Duration timeout) const override;
  // CompactDeletions: see ItemStore. Durable when it returns OK.
  absl::Status CompactDeletions(const std::string& collection, int64_t up_to) override;

  // SearchCaptions: see ItemStore. FTS5's BM25 over the captions_fts table (schema version 6,
  // sqlite_item_store.cc), whose statistics are the whole store's, not one collection's.
  absl::StatusOr<std::vector<CaptionMatch>> SearchCaptions(const std::string& collection,
                                                           const std::vector<std::string>& terms,
                                                           int limit) const override;

  absl::Status ReportReplica(const ReplicaRecord& replica) override;
  absl::StatusOr<std::vector<ReplicaRecord>> ListReplicas() const override;
  absl::Status ForgetReplica(const std::string& replica) override;

 private:
  // Put: PutItems, and PutItemsChecked when `may_replace` is not null.
  absl::StatusOr<PutResult> Put(const std::string& collection, std::vector<StoredItem> items,
                                const ReplaceCheck* may_replace);
  absl::StatusOr<std::vector<std::optional<StoredItem>>> ReadItems(
      const std::string& collection, const std::vector<std::string>& ids, bool embeddings) const;
  SqliteItemStore(std::string db_path, int lock_fd, std::unique_ptr<internal::Connection> writer,
                  std::unique_ptr<internal::Connection> reader, int64_t last_position);

  const std::string db_path_;
  const int lock_fd_;  // owns the flock on <data_dir>/LOCK; closed last

  // write_mu_ also guards last_position_ for WaitForChange, which waits on it.
  mutable absl::Mutex write_mu_;
  std::unique_ptr<internal::Connection> writer_ ABSL_PT_GUARDED_BY(write_mu_);
  int64_t last_position_ ABSL_GUARDED_BY(write_mu_);

  mutable absl::Mutex read_mu_;
  std::unique_ptr<internal::Connection> reader_ ABSL_PT_GUARDED_BY(read_mu_);
};

}  // namespace retrace::store

#endif  // RETRACE_CORE_STORE_SQLITE_ITEM_STORE_H_
