// postgres_item_store.h — the ItemStore that several server processes share: one PostgreSQL
// database (libpq), for replicas and shard servers (ARCHITECTURE.md, "Cluster").
//
// Positions in commit order: every write transaction starts by taking the next position from
// one counter row (UPDATE retrace_meta ... RETURNING), whose row lock it holds until it commits.
// Writes therefore commit one after another in position order, and a change that commits after
// a read began has a position above every position that read can see — so a follower that
// resumes after the highest position it has seen never skips a change (PostgreSQL's own
// sequences would: they are taken at insert and commit out of order). Writes serialise on the
// counter; a batch of items is one short transaction, so the cost is a few milliseconds of
// lock hold per batch.
// Notifications: each write transaction sends NOTIFY retrace_changes with its position, which
// PostgreSQL delivers at commit; one listening connection wakes WaitForChange. The listener also
// polls the counter every poll_interval, so a lost notification (a reconnect) delays a follower
// by at most that long.
// Schema: versioned migrations in retrace_schema, applied at Open under an advisory lock, so
// replicas starting together migrate once. Caller strings are bytea (any bytes); embeddings
// little-endian float32 bytea stored uncompressed (they do not compress).
// Failures: a lost or unreachable server is UNAVAILABLE (retry; nothing is half-written: each
// call is one transaction). Connections are reset and retried on the next call, so the store
// recovers by itself when the server comes back.
//
// Thread-safety: safe for concurrent use; calls take a connection from a pool.
//
//   RETRACE_ASSIGN_OR_RETURN(auto store, PostgresItemStore::Open({.conninfo = uri}));
//   RETRACE_ASSIGN_OR_RETURN(int64_t position, store->PutItems("art", std::move(items)));
#ifndef RETRACE_CORE_STORE_POSTGRES_ITEM_STORE_H_
#define RETRACE_CORE_STORE_POSTGRES_ITEM_STORE_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/store/item_store.h"

namespace retrace::store {

namespace internal::pg {
class Connection;
class Pool;
}  // namespace internal::pg

class PostgresItemStore final : public ItemStore {
 public:
  // kSchemaVersion is the schema this build writes and reads (retrace_schema.version).
  static constexpr int kSchemaVersion = 3;

  struct Options {
    // A libpq connection URI or key=value string, e.g. "postgresql://retrace@db:5432/retrace".
    // A password may come from the URI, PGPASSWORD or ~/.pgpass (libpq's rules).
    std::string conninfo;
    int pool_size = 8;                             // connections for calls; 1..256
    int connect_timeout_seconds = 5;               // per connection attempt
    absl::Duration poll_interval = absl::Seconds(1);  // the notification fallback
  };

  // Open connects, creates or migrates the schema, and starts the listener. INVALID_ARGUMENT
  // for a malformed conninfo or options; UNAVAILABLE when the server cannot be reached;
  // UNAUTHENTICATED when it refuses the credentials; NOT_FOUND when the database does not
  // exist; FAILED_PRECONDITION when the schema is newer than this build's or the database holds
  // other tables of these names. Messages name the target (user@host:port/db), never a password.
  static absl::StatusOr<std::unique_ptr<PostgresItemStore>> Open(const Options& options);

  ~PostgresItemStore() override;
  PostgresItemStore(const PostgresItemStore&) = delete;
  PostgresItemStore& operator=(const PostgresItemStore&) = delete;

  std::string Describe() const override;
  absl::StatusOr<int64_t> CreateCollection(const CollectionRecord& record) override;
  absl::StatusOr<int64_t> DropCollection(const std::string& name) override;
  absl::StatusOr<StoreState> ReadState() const override;
  absl::StatusOr<int64_t> PutItems(const std::string& collection,
                                   std::vector<StoredItem> items) override;
  // PutItemsChecked: see ItemStore; the check reads the rows after taking the position, whose
  // row lock orders every write.
  absl::StatusOr<PutResult> PutItemsChecked(const std::string& collection,
                                            std::vector<StoredItem> items,
                                            const ReplaceCheck& may_replace) override;
  absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItems(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  absl::StatusOr<std::vector<std::optional<StoredItem>>> GetItemsWithoutEmbeddings(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  absl::StatusOr<std::vector<std::optional<ItemVersion>>> GetItemVersions(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  absl::StatusOr<std::vector<StoredItem>> ListItems(const std::string& collection,
                                                    const std::string& after, int limit,
                                                    bool embeddings) const override;
  absl::StatusOr<std::vector<std::optional<std::string>>> GetThumbnails(
      const std::string& collection, const std::vector<std::string>& ids) const override;
  absl::StatusOr<DeleteResult> DeleteItems(const std::string& collection,
                                           const std::vector<std::string>& ids) override;
  absl::StatusOr<int64_t> CountItems(const std::string& collection) const override;
  absl::Status ForEachItem(
      const std::string& collection,
      const std::function<absl::Status(const StoredItem&)>& visit) const override;
  absl::StatusOr<int64_t> LastPosition() const override;
  // ReadChanges: one REPEATABLE READ transaction per page.
  absl::StatusOr<ChangePage> ReadChanges(const std::string& collection, int64_t created_position,
                                         const ChangeCursor& cursor, int limit) const override;
  absl::StatusOr<int64_t> WaitForChange(int64_t after, absl::Duration timeout) const override;
  absl::Status CompactDeletions(const std::string& collection, int64_t up_to) override;
  absl::Status ReportReplica(const ReplicaRecord& replica) override;
  absl::StatusOr<std::vector<ReplicaRecord>> ListReplicas() const override;
  absl::Status ForgetReplica(const std::string& replica) override;
  // SearchCaptions: see ItemStore. ts_rank_cd (normalised by 1 + the log of the caption's
  // length) over the GIN-indexed items.caption_words (schema version 3,
  // postgres_item_store.cc).
  absl::StatusOr<std::vector<CaptionMatch>> SearchCaptions(const std::string& collection,
                                                           const std::vector<std::string>& terms,
                                                           int limit) const override;

 private:
  explicit PostgresItemStore(Options options, std::string target);
  // Put: PutItems, and PutItemsChecked when `may_replace` is not null.
  absl::StatusOr<PutResult> Put(const std::string& collection, std::vector<StoredItem> items,
                                const ReplaceCheck* may_replace);
  absl::StatusOr<std::vector<std::optional<StoredItem>>> ReadItems(
      const std::string& collection, const std::vector<std::string>& ids, bool embeddings) const;
  // Saw records a position this process learned of (a commit, a notification, a poll).
  void Saw(int64_t position) const;
  void Listen();

  const Options options_;
  const std::string target_;  // user@host:port/db, for messages
  std::unique_ptr<internal::pg::Pool> pool_;

  mutable absl::Mutex seen_mu_;
  mutable int64_t last_seen_ ABSL_GUARDED_BY(seen_mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(seen_mu_) = false;
  std::thread listener_;
};

}  // namespace retrace::store

#endif  // RETRACE_CORE_STORE_POSTGRES_ITEM_STORE_H_
