// sqlite_connection.h — a thin RAII layer over one SQLite connection for SqliteItemStore: the
// connection owns a cache of prepared statements, hands them out as Statement handles that reset
// themselves when they go out of scope, and turns SQLite result codes into absl::Status.
//
// Every caller string is bound as a BLOB: BLOBs are stored byte-exact and compared with memcmp,
// whereas SQLite leaves expressions on TEXT values with embedded NUL bytes undefined.
//
// Thread-safety: none. A Connection and its Statements belong to one thread at a time; the owner
// (SqliteItemStore) guards each connection with a mutex. Connections are opened with
// SQLITE_OPEN_NOMUTEX for that reason.
//
//   RETRACE_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare("SELECT 1 FROM t WHERE k = ?1"));
//   stmt.BindBytes(1, key);  int rc = stmt.Step();  // SQLITE_ROW, SQLITE_DONE or an error
#ifndef RETRACE_CORE_STORE_INTERNAL_SQLITE_CONNECTION_H_
#define RETRACE_CORE_STORE_INTERNAL_SQLITE_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace retrace::store::internal {

// SqliteErrorStatus maps an SQLite result code (primary or extended) to a status whose message
// is "sqlite: <op>: <message>". SQLITE_FULL (SQLite's name for a write that failed with ENOSPC,
// or a database at its page limit) and SQLITE_NOMEM → RESOURCE_EXHAUSTED; CORRUPT and NOTADB →
// DATA_LOSS; BUSY and LOCKED → UNAVAILABLE; TOOBIG → INVALID_ARGUMENT; READONLY, PERM, CANTOPEN
// and AUTH → FAILED_PRECONDITION; anything else (IOERR included) → INTERNAL.
absl::Status SqliteErrorStatus(int rc, absl::string_view op, absl::string_view message);

class Connection;

// Statement is a borrowed, cached prepared statement. Bind* record the first bind failure, which
// Step then returns instead of running. The destructor resets the statement and clears its
// bindings, so the next Prepare of the same SQL starts clean. Move-only.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // BindBytes binds `bytes` as a BLOB (zero-length, never NULL, when empty). The bytes are not
  // copied: they must outlive the last Step.
  void BindBytes(int index, absl::string_view bytes);
  // BindInt64 binds an integer.
  void BindInt64(int index, int64_t value);
  // BindText binds `text` as TEXT (for SQL functions that read text, such as FTS5's MATCH);
  // copied, unlike BindBytes.
  void BindText(int index, absl::string_view text);

  // Reset makes the statement ready to run again, keeping its bindings (rebind what changes).
  void Reset();

  // Step runs the statement one step: SQLITE_ROW, SQLITE_DONE, or an SQLite error code (also a
  // recorded bind failure). On error, Connection::Error gives the message.
  int Step();

  // ColumnBytes returns column `col` of the current row as bytes (empty for NULL). The view is
  // valid until the next Step, Reset or the Statement's destruction.
  absl::string_view ColumnBytes(int col);
  // ColumnInt64 returns column `col` of the current row as an integer (0 for NULL).
  int64_t ColumnInt64(int col);
  // ColumnDouble returns column `col` of the current row as a double (0 for NULL).
  double ColumnDouble(int col);

 private:
  friend class Connection;
  Statement(sqlite3_stmt* stmt, bool* in_use) : stmt_(stmt), in_use_(in_use) {}

  sqlite3_stmt* stmt_;  // owned by the connection's cache; null after a move
  bool* in_use_;        // the cache entry's flag, cleared by the destructor
  int bind_rc_ = 0;     // first failed bind's result code, 0 if none
};

// Connection owns one sqlite3 handle and its statement cache.
class Connection {
 public:
  // Open opens `path` read-write with extended result codes, creating it when `create` is set.
  // Errors: the mapped SQLite status.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, bool create);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // ~Connection finalizes every cached statement and closes the handle. REQUIRES: no Statement
  // of this connection is alive.
  ~Connection();

  // Prepare returns the cached statement for `sql` (one SQL statement), compiling it on first
  // use. INTERNAL if a Statement for the same SQL is still alive (a programming error: the cache
  // holds one handle per SQL text).
  absl::StatusOr<Statement> Prepare(const std::string& sql);

  // Exec runs one or more SQL statements that return no rows we need (DDL, pragmas), uncached.
  absl::Status Exec(const std::string& sql, absl::string_view op);

  // QueryInt64 runs `sql` (uncached) and returns the first column of its first row as an integer.
  absl::StatusOr<int64_t> QueryInt64(const std::string& sql, absl::string_view op);

  // QueryText is QueryInt64 for a text result (e.g. PRAGMA journal_mode).
  absl::StatusOr<std::string> QueryText(const std::string& sql, absl::string_view op);

  // Error returns SqliteErrorStatus(rc, op, the connection's current error message).
  absl::Status Error(int rc, absl::string_view op) const;

  // Changes returns how many rows the last INSERT, UPDATE or DELETE changed.
  int64_t Changes() const;

  // InTransaction reports whether a transaction is open (SQLite is not in autocommit mode).
  bool InTransaction() const;

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };

  sqlite3* db_;
  std::unordered_map<std::string, CachedStatement> cache_;
};

// Transaction is a scoped transaction: Begin starts it, Commit ends it, and the destructor rolls
// back one that was begun and not committed (also after a failed COMMIT).
class Transaction {
 public:
  explicit Transaction(Connection* conn) : conn_(conn) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // Begin runs "BEGIN IMMEDIATE" (takes the write lock now, so a write transaction never fails
  // half-way for lack of it) when `write` is set, else "BEGIN" (a read snapshot).
  absl::Status Begin(bool write);
  // Commit runs "COMMIT"; with synchronous=FULL it returns once the transaction is on disk.
  absl::Status Commit();

 private:
  Connection* conn_;
  bool open_ = false;
};

}  // namespace retrace::store::internal

#endif  // RETRACE_CORE_STORE_INTERNAL_SQLITE_CONNECTION_H_
