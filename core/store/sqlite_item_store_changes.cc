// The scans and change tracking of SqliteItemStore (see sqlite_item_store.h): content hashes
// for skipping unchanged items, the full scan and the change feed that indexes are built and
// caught up from, compaction of recorded deletions, the last position and waiting for the next,
// and replicas' records. The schema is in internal/sqlite_schema.cc.
#include <sqlite3.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/internal/change_feed.h"
#include "core/store/internal/item_rows.h"
#include "core/store/internal/sqlite_connection.h"
#include "core/store/sqlite_item_store.h"

namespace retrace::store {
namespace {

using internal::CheckCollection;
using internal::Connection;
using internal::NowMillis;
using internal::Quote;
using internal::Statement;
using internal::Transaction;

// kPageSize is how many rows a scan reads per lock: enough to amortise the lock and the query,
// few enough that a page of items with their embeddings stays small.
constexpr int kPageSize = 256;

// CheckFeed starts each ReadChanges, inside its read transaction: NOT_FOUND if the collection
// is absent, ABORTED if it is not the one created at `created_position` (dropped, perhaps
// created again, since), OUT_OF_RANGE if deletions after `after` have been compacted away.
absl::Status CheckFeed(Connection& conn, const std::string& collection, int64_t created_position,
                       int64_t after) {
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("SELECT created_seq, compacted_seq FROM collections WHERE name = ?1"));
  stmt.BindBytes(1, collection);
  int rc = stmt.Step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return conn.Error(rc, absl::StrCat("look up collection ", Quote(collection)));
  }
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(absl::StrCat("collection ", Quote(collection), " not found"));
  }
  return internal::CheckFeedState(collection, created_position, after, stmt.ColumnInt64(0),
                                  stmt.ColumnInt64(1));
}

}  // namespace

absl::StatusOr<std::vector<std::optional<ItemVersion>>> SqliteItemStore::GetItemVersions(
    const std::string& collection, const std::vector<std::string>& ids) const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("SELECT content_hash, seq FROM items WHERE collection = ?1 AND id = ?2"));
  std::vector<std::optional<ItemVersion>> versions;
  versions.reserve(ids.size());
  for (const std::string& id : ids) {
    stmt.BindBytes(1, collection);
    stmt.BindBytes(2, id);
    int rc = stmt.Step();
    if (rc == SQLITE_ROW) {
      versions.emplace_back(ItemVersion{internal::LoadedHash(stmt.ColumnInt64(0)),
                                        stmt.ColumnInt64(1)});
    } else if (rc == SQLITE_DONE) {
      versions.emplace_back(std::nullopt);
    } else {
      return conn.Error(rc, absl::StrCat("get version of ", Quote(id), " in ", Quote(collection)));
    }
    stmt.Reset();
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return versions;
}

absl::Status SqliteItemStore::ForEachItem(
    const std::string& collection,
    const std::function<absl::Status(const StoredItem&)>& visit) const {
  // Keyset pagination: each page resumes after the last id seen, so no lock or transaction is
  // held while `visit` runs.
  std::vector<StoredItem> page;
  std::optional<std::string> after;
  do {
    page.clear();
    {
      absl::MutexLock lock(&read_mu_);
      Connection& conn = *reader_;
      Transaction txn(&conn);
      RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
      if (!after.has_value()) RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
      RETRACE_ASSIGN_OR_RETURN(
          Statement stmt,
          conn.Prepare(
              absl::StrCat("SELECT ", internal::kItemColumns, " FROM items WHERE collection = ?1",
                           after.has_value() ? " AND id > ?3" : "", " ORDER BY id LIMIT ?2")));
      stmt.BindBytes(1, collection);
      stmt.BindInt64(2, kPageSize);
      if (after.has_value()) stmt.BindBytes(3, *after);
      int rc;
      while ((rc = stmt.Step()) == SQLITE_ROW) {
        RETRACE_ASSIGN_OR_RETURN(StoredItem item, internal::ReadItem(stmt, 0, collection));
        page.push_back(std::move(item));
      }
      if (rc != SQLITE_DONE) {
        return conn.Error(rc, absl::StrCat("scan items of ", Quote(collection)));
      }
      RETRACE_RETURN_IF_ERROR(txn.Commit());
    }
    for (const StoredItem& item : page) RETRACE_RETURN_IF_ERROR(visit(item));
    if (!page.empty()) after = page.back().id;
  } while (page.size() == kPageSize);
  return absl::OkStatus();
}

absl::StatusOr<ChangePage> SqliteItemStore::ReadChanges(const std::string& collection,
                                                        int64_t created_position,
                                                        const ChangeCursor& cursor,
                                                        int limit) const {
  if (limit < 1) return absl::InvalidArgumentError("ReadChanges: limit must be at least 1");
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  RETRACE_RETURN_IF_ERROR(CheckFeed(conn, collection, created_position, cursor.position));
  ChangePage page;
  RETRACE_ASSIGN_OR_RETURN(
      page.last_position,
      conn.QueryInt64("SELECT value FROM meta WHERE key = 'last_seq'", "read position"));

  // Each table's first `limit` rows after the cursor, in (seq, id) order; the page is the first
  // `limit` of their merge. Two queries per table: the rest of the cursor's position, then the
  // positions after it (each an index range scan of items_by_seq_id or deletions_by_seq).
  std::vector<Change> puts, deletions;
  for (bool is_put : {true, false}) {
    std::vector<Change>& out = is_put ? puts : deletions;
    const std::string select =
        is_put ? absl::StrCat("SELECT seq, ", internal::kItemColumns, " FROM items")
               : std::string("SELECT seq, id FROM deletions");
    for (const char* rest : {"seq = ?2 AND id > ?3 ORDER BY id", "seq > ?2 ORDER BY seq, id"}) {
      if (out.size() >= static_cast<size_t>(limit)) break;
      const bool rest_of_position = absl::string_view(rest).find("?3") != absl::string_view::npos;
      if (rest_of_position && !cursor.id.has_value()) continue;
      RETRACE_ASSIGN_OR_RETURN(
          Statement stmt,
          conn.Prepare(absl::StrCat(select, " WHERE collection = ?1 AND ", rest, " LIMIT ?4")));
      stmt.BindBytes(1, collection);
      stmt.BindInt64(2, cursor.position);
      stmt.BindBytes(3, cursor.id.value_or(""));  // unused by the second query, as SQLite allows
      stmt.BindInt64(4, limit - static_cast<int64_t>(out.size()));
      int rc;
      while ((rc = stmt.Step()) == SQLITE_ROW) {
        Change& change = out.emplace_back();
        change.position = stmt.ColumnInt64(0);
        if (is_put) {
          change.kind = Change::Kind::kPut;
          RETRACE_ASSIGN_OR_RETURN(change.item, internal::ReadItem(stmt, 1, collection));
          change.id = change.item.id;
        } else {
          change.kind = Change::Kind::kDelete;
          change.id = std::string(stmt.ColumnBytes(1));
        }
      }
      if (rc != SQLITE_DONE) {
        return conn.Error(rc, absl::StrCat("read the changes of ", Quote(collection)));
      }
    }
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  page.more = puts.size() >= static_cast<size_t>(limit) ||
              deletions.size() >= static_cast<size_t>(limit);
  page.changes = internal::MergeChanges(std::move(puts), std::move(deletions), limit);
  page.next = page.changes.empty()
                  ? cursor
                  : ChangeCursor{page.changes.back().position,
                                 std::optional<std::string>(page.changes.back().id)};
  return page;
}

absl::Status SqliteItemStore::CompactDeletions(const std::string& collection, int64_t up_to) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  if (up_to > last_position_) {
    return absl::InvalidArgumentError(absl::StrCat("cannot compact the deletions of ",
                                                   Quote(collection), " up to position ", up_to,
                                                   ": the latest is ", last_position_));
  }
  {
    RETRACE_ASSIGN_OR_RETURN(
        Statement stmt, conn.Prepare("DELETE FROM deletions WHERE collection = ?1 AND seq <= ?2"));
    stmt.BindBytes(1, collection);
    stmt.BindInt64(2, up_to);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc, absl::StrCat("compact deletions of ", Quote(collection)));
    }
  }
  {
    RETRACE_ASSIGN_OR_RETURN(
        Statement stmt,
        conn.Prepare("UPDATE collections SET compacted_seq = max(compacted_seq, ?2) "
                     "WHERE name = ?1"));
    stmt.BindBytes(1, collection);
    stmt.BindInt64(2, up_to);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc, absl::StrCat("record compaction of ", Quote(collection)));
    }
  }
  return txn.Commit();
}

absl::StatusOr<int64_t> SqliteItemStore::LastPosition() const {
  absl::MutexLock lock(&write_mu_);
  return last_position_;
}

absl::StatusOr<int64_t> SqliteItemStore::WaitForChange(int64_t after,
                                                       absl::Duration timeout) const {
  absl::MutexLock lock(&write_mu_);
  auto changed = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return last_position_ > after;
  };
  write_mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return last_position_;
}

absl::Status SqliteItemStore::ReportReplica(const ReplicaRecord& replica) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  {
    RETRACE_ASSIGN_OR_RETURN(
        Statement stmt,
        conn.Prepare("INSERT INTO replicas(replica, address, started_at, heartbeat_at) "
                     "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(replica) DO UPDATE SET "
                     "address = excluded.address, started_at = excluded.started_at, "
                     "heartbeat_at = excluded.heartbeat_at"));
    stmt.BindBytes(1, replica.replica);
    stmt.BindBytes(2, replica.address);
    stmt.BindInt64(3, absl::ToUnixMillis(replica.started));
    stmt.BindInt64(4, NowMillis());
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) return conn.Error(rc, absl::StrCat("report replica ", Quote(replica.replica)));
  }
  {
    RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                             conn.Prepare("DELETE FROM replica_positions WHERE replica = ?1"));
    stmt.BindBytes(1, replica.replica);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) return conn.Error(rc, "clear replica positions");
  }
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("INSERT INTO replica_positions(replica, collection, created_seq, applied, "
                   "resume) VALUES (?1, ?2, ?3, ?4, ?5)"));
  for (const ReplicaCollectionPosition& p : replica.positions) {
    stmt.BindBytes(1, replica.replica);
    stmt.BindBytes(2, p.collection);
    stmt.BindInt64(3, p.created_position);
    stmt.BindInt64(4, p.applied);
    stmt.BindInt64(5, p.resume);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) return conn.Error(rc, "record replica position");
    stmt.Reset();
  }
  return txn.Commit();
}

absl::StatusOr<std::vector<ReplicaRecord>> SqliteItemStore::ListReplicas() const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  std::vector<ReplicaRecord> replicas;
  {
    RETRACE_ASSIGN_OR_RETURN(
        Statement stmt, conn.Prepare("SELECT replica, address, started_at, heartbeat_at "
                                     "FROM replicas ORDER BY replica"));
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      ReplicaRecord& r = replicas.emplace_back();
      r.replica = std::string(stmt.ColumnBytes(0));
      r.address = std::string(stmt.ColumnBytes(1));
      r.started = absl::FromUnixMillis(stmt.ColumnInt64(2));
      r.heartbeat = absl::FromUnixMillis(stmt.ColumnInt64(3));
    }
    if (rc != SQLITE_DONE) return conn.Error(rc, "list replicas");
  }
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("SELECT collection, created_seq, applied, resume FROM replica_positions "
                   "WHERE replica = ?1 ORDER BY collection"));
  for (ReplicaRecord& r : replicas) {
    stmt.BindBytes(1, r.replica);
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      ReplicaCollectionPosition& p = r.positions.emplace_back();
      p.collection = std::string(stmt.ColumnBytes(0));
      p.created_position = stmt.ColumnInt64(1);
      p.applied = stmt.ColumnInt64(2);
      p.resume = stmt.ColumnInt64(3);
    }
    if (rc != SQLITE_DONE) return conn.Error(rc, "list replica positions");
    stmt.Reset();
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return replicas;
}

absl::Status SqliteItemStore::ForgetReplica(const std::string& replica) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  for (const char* table : {"replica_positions", "replicas"}) {
    RETRACE_ASSIGN_OR_RETURN(
        Statement stmt, conn.Prepare(absl::StrCat("DELETE FROM ", table, " WHERE replica = ?1")));
    stmt.BindBytes(1, replica);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) return conn.Error(rc, absl::StrCat("forget replica ", Quote(replica)));
    if (std::string_view(table) == "replicas" && conn.Changes() == 0) {
      return absl::NotFoundError(absl::StrCat("replica ", Quote(replica), " not found"));
    }
  }
  return txn.Commit();
}

}  // namespace retrace::store
