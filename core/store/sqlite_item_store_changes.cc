// The scans and change tracking of SqliteItemStore (see sqlite_item_store.h): content hashes
// for skipping unchanged items, the full scan and the change feed that indexes are built and
// caught up from, and compaction of recorded deletions. The schema is in sqlite_item_store.cc.
#include <sqlite3.h>

#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/internal/item_rows.h"
#include "core/store/internal/sqlite_connection.h"
#include "core/store/sqlite_item_store.h"

namespace retrace::store {
namespace {

using internal::CheckCollection;
using internal::Connection;
using internal::Quote;
using internal::Statement;
using internal::Transaction;

// kPageSize is how many rows a scan reads per lock: enough to amortise the lock and the query,
// few enough that a page of items with their embeddings stays small.
constexpr int kPageSize = 256;

// CheckFeedPage runs before each page of ForEachChangeSince, inside the page's read
// transaction: NOT_FOUND if the collection is absent at the first page, ABORTED if it has been
// dropped (and perhaps created again: *created_seq, set by the first page, differs) since, and
// OUT_OF_RANGE if deletions after `after_seq` have been compacted away.
absl::Status CheckFeedPage(Connection& conn, const std::string& collection, int64_t after_seq,
                           std::optional<int64_t>* created_seq) {
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("SELECT created_seq, compacted_seq FROM collections WHERE name = ?1"));
  stmt.BindBytes(1, collection);
  int rc = stmt.Step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return conn.Error(rc, absl::StrCat("look up collection ", Quote(collection)));
  }
  if (rc == SQLITE_DONE && !created_seq->has_value()) {
    return absl::NotFoundError(absl::StrCat("collection ", Quote(collection), " not found"));
  }
  if (rc == SQLITE_DONE || (created_seq->has_value() && stmt.ColumnInt64(0) != **created_seq)) {
    return absl::AbortedError(absl::StrCat("collection ", Quote(collection),
                                           " was dropped while its changes were being read"));
  }
  const int64_t compacted_seq = stmt.ColumnInt64(1);
  if (after_seq < compacted_seq) {
    return absl::OutOfRangeError(
        absl::StrCat("the changes of collection ", Quote(collection), " after sequence ", after_seq,
                     " are no longer all recorded (deletions up to ", compacted_seq,
                     " were compacted); read every item instead"));
  }
  *created_seq = stmt.ColumnInt64(0);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::optional<uint64_t>>> SqliteItemStore::GetContentHashes(
    const std::string& collection, const std::vector<std::string>& ids) const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("SELECT content_hash FROM items WHERE collection = ?1 AND id = ?2"));
  std::vector<std::optional<uint64_t>> hashes;
  hashes.reserve(ids.size());
  for (const std::string& id : ids) {
    stmt.BindBytes(1, collection);
    stmt.BindBytes(2, id);
    int rc = stmt.Step();
    if (rc == SQLITE_ROW) {
      hashes.emplace_back(internal::LoadedHash(stmt.ColumnInt64(0)));
    } else if (rc == SQLITE_DONE) {
      hashes.emplace_back(std::nullopt);
    } else {
      return conn.Error(rc,
                        absl::StrCat("get content hash of ", Quote(id), " in ", Quote(collection)));
    }
    stmt.Reset();
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return hashes;
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

absl::Status SqliteItemStore::ForEachChangeSince(
    const std::string& collection, int64_t after_seq,
    const std::function<absl::Status(const StoredItem&)>& on_put,
    const std::function<absl::Status(const std::string& id)>& on_delete) const {
  // Keyset pagination as in ForEachItem, in sequence order: a row written during the scan gets
  // a sequence above every existing one, so it moves ahead of the cursor, never behind it, and
  // a row that is not written is read exactly once.
  std::optional<int64_t> created_seq;  // of the collection the first page saw

  // Puts, in (seq, rowid) order through items_by_seq, whose entries end with the rowid. A page
  // first finishes the cursor's sequence, then reads later ones: SQLite does not seek an index
  // to a row-value bound like (seq, rowid) > (?2, ?3), so one query would make every page in
  // a large batch rescan the batch from its start.
  int64_t seq = after_seq;
  int64_t rowid = std::numeric_limits<int64_t>::max();  // nothing more at after_seq itself
  std::vector<StoredItem> items;
  do {
    items.clear();
    {
      absl::MutexLock lock(&read_mu_);
      Connection& conn = *reader_;
      Transaction txn(&conn);
      RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
      RETRACE_RETURN_IF_ERROR(CheckFeedPage(conn, collection, after_seq, &created_seq));
      for (const char* rest :
           {"seq = ?2 AND rowid > ?3 ORDER BY rowid", "seq > ?2 ORDER BY seq, rowid"}) {
        if (items.size() == kPageSize) break;
        RETRACE_ASSIGN_OR_RETURN(
            Statement stmt, conn.Prepare(absl::StrCat("SELECT seq, rowid, ", internal::kItemColumns,
                                                      " FROM items WHERE collection = ?1 AND ",
                                                      rest, " LIMIT ?4")));
        stmt.BindBytes(1, collection);
        stmt.BindInt64(2, seq);
        stmt.BindInt64(3, rowid);  // unused by the second query, which SQLite allows
        stmt.BindInt64(4, kPageSize - static_cast<int64_t>(items.size()));
        int rc;
        while ((rc = stmt.Step()) == SQLITE_ROW) {
          RETRACE_ASSIGN_OR_RETURN(StoredItem item, internal::ReadItem(stmt, 2, collection));
          items.push_back(std::move(item));
          seq = stmt.ColumnInt64(0);
          rowid = stmt.ColumnInt64(1);
        }
        if (rc != SQLITE_DONE) {
          return conn.Error(rc, absl::StrCat("read changed items of ", Quote(collection)));
        }
      }
      RETRACE_RETURN_IF_ERROR(txn.Commit());
    }
    for (const StoredItem& item : items) RETRACE_RETURN_IF_ERROR(on_put(item));
  } while (items.size() == kPageSize);

  // Deletions, in (seq, id) order through deletions_by_seq, which holds both (the table has no
  // rowid) and which SQLite does seek to a row-value bound.
  seq = after_seq;
  std::optional<std::string> id;  // the cursor's id; none before the first page
  std::vector<std::string> ids;
  do {
    ids.clear();
    {
      absl::MutexLock lock(&read_mu_);
      Connection& conn = *reader_;
      Transaction txn(&conn);
      RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
      RETRACE_RETURN_IF_ERROR(CheckFeedPage(conn, collection, after_seq, &created_seq));
      RETRACE_ASSIGN_OR_RETURN(
          Statement stmt,
          conn.Prepare(absl::StrCat("SELECT seq, id FROM deletions WHERE collection = ?1 AND ",
                                    id.has_value() ? "(seq, id) > (?2, ?3)" : "seq > ?2",
                                    " ORDER BY seq, id LIMIT ?4")));
      stmt.BindBytes(1, collection);
      stmt.BindInt64(2, seq);
      if (id.has_value()) stmt.BindBytes(3, *id);
      stmt.BindInt64(4, kPageSize);
      int rc;
      while ((rc = stmt.Step()) == SQLITE_ROW) {
        seq = stmt.ColumnInt64(0);
        ids.emplace_back(stmt.ColumnBytes(1));
      }
      if (rc != SQLITE_DONE) {
        return conn.Error(rc, absl::StrCat("read deletions of ", Quote(collection)));
      }
      RETRACE_RETURN_IF_ERROR(txn.Commit());
    }
    for (const std::string& deleted : ids) RETRACE_RETURN_IF_ERROR(on_delete(deleted));
    if (!ids.empty()) id = ids.back();
  } while (ids.size() == kPageSize);
  return absl::OkStatus();
}

absl::Status SqliteItemStore::CompactDeletions(const std::string& collection, int64_t up_to_seq) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  if (up_to_seq > last_seq_) {
    return absl::InvalidArgumentError(absl::StrCat("cannot compact the deletions of ",
                                                   Quote(collection), " up to sequence ", up_to_seq,
                                                   ": the latest is ", last_seq_));
  }
  {
    RETRACE_ASSIGN_OR_RETURN(
        Statement stmt, conn.Prepare("DELETE FROM deletions WHERE collection = ?1 AND seq <= ?2"));
    stmt.BindBytes(1, collection);
    stmt.BindInt64(2, up_to_seq);
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
    stmt.BindInt64(2, up_to_seq);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc, absl::StrCat("record compaction of ", Quote(collection)));
    }
  }
  return txn.Commit();
}

}  // namespace retrace::store
