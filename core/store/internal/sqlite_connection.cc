#include "core/store/internal/sqlite_connection.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace retrace::store::internal {

absl::Status SqliteErrorStatus(int rc, absl::string_view op, absl::string_view message) {
  std::string text = absl::StrCat("sqlite: ", op, ": ", message);
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(text);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(text);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(text);
    case SQLITE_TOOBIG:
      return absl::InvalidArgumentError(text);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
    case SQLITE_AUTH:
      return absl::FailedPreconditionError(text);
    default:
      return absl::InternalError(text);
  }
}

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      in_use_(std::exchange(other.in_use_, nullptr)),
      bind_rc_(other.bind_rc_) {}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  *in_use_ = false;
}

void Statement::BindBytes(int index, absl::string_view bytes) {
  // A null pointer would bind SQL NULL; an empty value must stay an empty BLOB.
  int rc = bytes.empty()
               ? sqlite3_bind_zeroblob(stmt_, index, 0)
               : sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_STATIC);
  if (rc != SQLITE_OK && bind_rc_ == 0) bind_rc_ = rc;
}

void Statement::BindText(int index, absl::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                               SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_rc_ == 0) bind_rc_ = rc;
}

void Statement::BindInt64(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_rc_ == 0) bind_rc_ = rc;
}

void Statement::Reset() {
  // sqlite3_reset repeats the last Step's error, which the caller has already seen.
  sqlite3_reset(stmt_);
  bind_rc_ = 0;
}

int Statement::Step() { return bind_rc_ != 0 ? bind_rc_ : sqlite3_step(stmt_); }

absl::string_view Statement::ColumnBytes(int col) {
  const void* data = sqlite3_column_blob(stmt_, col);
  int size = sqlite3_column_bytes(stmt_, col);  // after column_blob, as SQLite advises
  if (data == nullptr || size <= 0) return {};
  return absl::string_view(static_cast<const char*>(data), static_cast<size_t>(size));
}

int64_t Statement::ColumnInt64(int col) { return sqlite3_column_int64(stmt_, col); }

double Statement::ColumnDouble(int col) { return sqlite3_column_double(stmt_, col); }

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path, bool create) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    // sqlite3_open_v2 allocates a handle even on failure (except out of memory); it carries the
    // message and must still be closed.
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return SqliteErrorStatus(rc, absl::StrCat("open '", path, "'"), message);
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Connection>(new Connection(db));
}

Connection::~Connection() {
  for (auto& [sql, cached] : cache_) sqlite3_finalize(cached.stmt);
  sqlite3_close_v2(db_);
}

absl::StatusOr<Statement> Connection::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, absl::StrCat("prepare \"", sql, "\""));
    it = cache_.emplace(sql, CachedStatement{stmt, false}).first;
  }
  if (it->second.in_use) {
    return absl::InternalError(absl::StrCat("sqlite: statement \"", sql, "\" is already in use"));
  }
  it->second.in_use = true;
  return Statement(it->second.stmt, &it->second.in_use);
}

absl::Status Connection::Exec(const std::string& sql, absl::string_view op) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status status =
      SqliteErrorStatus(rc, op, message != nullptr ? message : sqlite3_errstr(rc));
  sqlite3_free(message);
  return status;
}

namespace {

// StepFirstRow compiles `sql` uncached and steps it to its first row; the caller finalizes *out.
// INTERNAL when there is no row.
absl::Status StepFirstRow(sqlite3* db, const std::string& sql, absl::string_view op,
                          sqlite3_stmt** out) {
  *out = nullptr;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    *out = stmt;
    return absl::OkStatus();
  }
  absl::Status status = rc == SQLITE_DONE
                            ? absl::InternalError(absl::StrCat("sqlite: ", op, ": no row"))
                            : SqliteErrorStatus(rc, op, sqlite3_errmsg(db));
  sqlite3_finalize(stmt);
  return status;
}

}  // namespace

absl::StatusOr<int64_t> Connection::QueryInt64(const std::string& sql, absl::string_view op) {
  sqlite3_stmt* stmt = nullptr;
  absl::Status status = StepFirstRow(db_, sql, op, &stmt);
  if (!status.ok()) return status;
  int64_t value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return value;
}

absl::StatusOr<std::string> Connection::QueryText(const std::string& sql, absl::string_view op) {
  sqlite3_stmt* stmt = nullptr;
  absl::Status status = StepFirstRow(db_, sql, op, &stmt);
  if (!status.ok()) return status;
  const unsigned char* text = sqlite3_column_text(stmt, 0);
  std::string value = text != nullptr ? reinterpret_cast<const char*>(text) : "";
  sqlite3_finalize(stmt);
  return value;
}

absl::Status Connection::Error(int rc, absl::string_view op) const {
  // The handle's message describes the latest failed call; fall back to the code's generic
  // text when that was a different error (e.g. a bind failure recorded earlier).
  const char* message =
      sqlite3_extended_errcode(db_) == rc ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return SqliteErrorStatus(rc, op, message);
}

int64_t Connection::Changes() const { return sqlite3_changes64(db_); }

bool Connection::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

Transaction::~Transaction() {
  if (open_ && conn_->InTransaction()) {
    // A failed ROLLBACK leaves nothing to do: SQLite rolls an open transaction back when the
    // connection closes, and the next BEGIN on this connection would report the problem.
    (void)conn_->Exec("ROLLBACK", "rollback");
  }
}

absl::Status Transaction::Begin(bool write) {
  absl::StatusOr<Statement> stmt = conn_->Prepare(write ? "BEGIN IMMEDIATE" : "BEGIN");
  if (!stmt.ok()) return stmt.status();
  int rc = stmt->Step();
  if (rc != SQLITE_DONE) return conn_->Error(rc, "begin transaction");
  open_ = true;
  return absl::OkStatus();
}

absl::Status Transaction::Commit() {
  absl::StatusOr<Statement> stmt = conn_->Prepare("COMMIT");
  if (!stmt.ok()) return stmt.status();
  int rc = stmt->Step();
  if (rc != SQLITE_DONE) return conn_->Error(rc, "commit");
  open_ = false;
  return absl::OkStatus();
}

}  // namespace retrace::store::internal
