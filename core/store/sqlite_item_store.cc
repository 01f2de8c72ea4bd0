#include "core/store/sqlite_item_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"
#include "core/store/internal/record_codec.h"
#include "core/store/internal/sqlite_connection.h"

namespace retrace::store {
namespace {

using internal::Connection;
using internal::Statement;
using internal::Transaction;

// Schema version 1. Caller strings (names, ids, captions, model identities) are BLOBs: stored
// byte-exact and compared with memcmp, so any bytes are safe (see sqlite_connection.h). Times
// are Unix milliseconds. Deleting a collection that still has items violates the foreign key,
// a guard against a DropCollection that forgot its items.
//
// Embeddings are columns of `items`, one nullable BLOB per space, rather than rows of a separate
// embeddings(collection, id, space, vector) table: every read of an item (hydrating hits,
// re-ranking, rebuilding indexes) wants all of its embeddings at once, and one row is one B-tree
// lookup where a side table would double the rows, the lookups and the write amplification. The
// spaces are fixed by the code, not by data, so a new one (the CS-SLIP image embedding) is a
// schema version that runs "ALTER TABLE items ADD COLUMN slip_image BLOB" — constant time in
// SQLite, no table rewrite — and old rows read NULL, i.e. "not computed yet".
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE collections (
  name            BLOB PRIMARY KEY NOT NULL,
  shards          INTEGER NOT NULL,
  caption_index   BLOB NOT NULL,
  caption_dim     INTEGER NOT NULL,
  clip_model      BLOB NOT NULL,
  captioner_model BLOB NOT NULL,
  created_at      INTEGER NOT NULL
);
CREATE TABLE items (
  collection   BLOB NOT NULL REFERENCES collections(name),
  id           BLOB NOT NULL,
  caption      BLOB NOT NULL,
  attributes   BLOB NOT NULL,  -- record_codec.h: varint-size-prefixed key/value pairs
  clip_image   BLOB,           -- little-endian float32
  caption_text BLOB,           -- little-endian float32
  content_hash INTEGER NOT NULL,
  seq          INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (collection, id)
);
CREATE INDEX items_by_seq ON items(collection, seq);
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
);
INSERT INTO meta(key, value) VALUES ('last_seq', 0);
PRAGMA user_version = 1;
)sql";

constexpr char kItemColumns[] = "id, caption, attributes, clip_image, caption_text";
constexpr int kForEachPageSize = 256;

// Quote renders a caller string for a message: C-escaped, in single quotes.
std::string Quote(absl::string_view bytes) {
  return absl::StrCat("'", absl::CHexEscape(bytes), "'");
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status ErrnoStatus(absl::string_view op, const std::string& path) {
  return absl::InternalError(absl::StrCat(op, " ", path, ": ", std::strerror(errno)));
}

// ConfigureConnection sets the per-connection pragmas.
absl::Status ConfigureConnection(Connection& conn) {
  return conn.Exec(
      "PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
      "configure connection");
}

// CheckCollection returns NOT_FOUND unless `name` is a collection.
absl::Status CheckCollection(Connection& conn, const std::string& name) {
  RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                           conn.Prepare("SELECT 1 FROM collections WHERE name = ?1"));
  stmt.BindBytes(1, name);
  int rc = stmt.Step();
  if (rc == SQLITE_ROW) return absl::OkStatus();
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(absl::StrCat("collection ", Quote(name), " not found"));
  }
  return conn.Error(rc, absl::StrCat("look up collection ", Quote(name)));
}

// SetLastSequence stores `seq` as the latest change's number (inside the caller's transaction).
absl::Status SetLastSequence(Connection& conn, int64_t seq) {
  RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                           conn.Prepare("UPDATE meta SET value = ?1 WHERE key = 'last_seq'"));
  stmt.BindInt64(1, seq);
  int rc = stmt.Step();
  if (rc != SQLITE_DONE) return conn.Error(rc, "update sequence");
  return absl::OkStatus();
}

// ReadItem decodes a row whose columns start at `col` in kItemColumns order.
absl::StatusOr<StoredItem> ReadItem(Statement& stmt, int col, const std::string& collection) {
  StoredItem item;
  item.id = std::string(stmt.ColumnBytes(col));
  item.caption = std::string(stmt.ColumnBytes(col + 1));
  absl::Status status = internal::DecodeAttributes(stmt.ColumnBytes(col + 2), &item.attributes);
  if (status.ok()) status = internal::DecodeFloats(stmt.ColumnBytes(col + 3), &item.clip_image);
  if (status.ok()) status = internal::DecodeFloats(stmt.ColumnBytes(col + 4), &item.caption_text);
  if (!status.ok()) {
    return absl::DataLossError(
        absl::StrCat("item ", Quote(item.id), " of ", Quote(collection), ": ", status.message()));
  }
  return item;
}

// InitializeSchema creates the schema in a new database or checks an existing one's version.
absl::Status InitializeSchema(Connection& conn, const std::string& path) {
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  RETRACE_ASSIGN_OR_RETURN(int64_t version,
                           conn.QueryInt64("PRAGMA user_version", "read schema version"));
  if (version > SqliteItemStore::kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " has schema version ", version,
                     ", written by a newer retrace; this build reads "
                     "up to version ",
                     SqliteItemStore::kSchemaVersion));
  }
  if (version == SqliteItemStore::kSchemaVersion) return absl::OkStatus();
  // Version 0: a new, empty database, unless some other program made it.
  RETRACE_ASSIGN_OR_RETURN(int64_t tables,
                           conn.QueryInt64("SELECT count(*) FROM sqlite_schema", "read schema"));
  if (tables != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is an SQLite database but not a retrace store (user_version 0 and ",
                     tables, " schema objects)"));
  }
  RETRACE_RETURN_IF_ERROR(conn.Exec(kSchemaV1, "create schema"));
  return txn.Commit();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteItemStore>> SqliteItemStore::Open(
    const std::string& data_dir) {
  if (data_dir.empty()) return absl::InvalidArgumentError("data directory is empty");
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("create data directory ", data_dir, ": ", ec.message()));
  }

  const std::string lock_path = data_dir + "/LOCK";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return ErrnoStatus("open lock file", lock_path);
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    absl::Status status =
        errno == EWOULDBLOCK
            ? absl::FailedPreconditionError(absl::StrCat(
                  "data directory ", data_dir, " is in use by another process (LOCK held)"))
            : ErrnoStatus("lock", lock_path);
    ::close(lock_fd);
    return status;
  }

  // Everything after the lock: on failure, the lock is released below.
  auto open_locked = [&]() -> absl::StatusOr<std::unique_ptr<SqliteItemStore>> {
    const std::string db_path = data_dir + "/retrace.db";
    RETRACE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer,
                             Connection::Open(db_path, /*create=*/true));
    RETRACE_RETURN_IF_ERROR(ConfigureConnection(*writer));
    RETRACE_ASSIGN_OR_RETURN(std::string journal_mode,
                             writer->QueryText("PRAGMA journal_mode = WAL", "enable WAL"));
    if (journal_mode != "wal") {
      return absl::FailedPreconditionError(absl::StrCat(
          "sqlite: enable WAL on ", db_path, ": journal mode stayed '", journal_mode, "'"));
    }
    RETRACE_RETURN_IF_ERROR(InitializeSchema(*writer, db_path));
    RETRACE_ASSIGN_OR_RETURN(
        int64_t last_seq,
        writer->QueryInt64("SELECT value FROM meta WHERE key = 'last_seq'", "read sequence"));

    // The database file is new the first time: make its directory entry durable too (SQLite
    // syncs the directory for the WAL file it creates, not for the main file).
    int dir_fd = ::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return ErrnoStatus("open data directory", data_dir);
    int synced = ::fsync(dir_fd);
    ::close(dir_fd);
    if (synced != 0) return ErrnoStatus("fsync data directory", data_dir);

    RETRACE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader,
                             Connection::Open(db_path, /*create=*/false));
    RETRACE_RETURN_IF_ERROR(ConfigureConnection(*reader));
    RETRACE_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = ON", "configure reader"));
    return std::unique_ptr<SqliteItemStore>(
        new SqliteItemStore(lock_fd, std::move(writer), std::move(reader), last_seq));
  };
  absl::StatusOr<std::unique_ptr<SqliteItemStore>> store = open_locked();
  if (!store.ok()) ::close(lock_fd);
  return store;
}

SqliteItemStore::SqliteItemStore(int lock_fd, std::unique_ptr<Connection> writer,
                                 std::unique_ptr<Connection> reader, int64_t last_seq)
    : lock_fd_(lock_fd),
      writer_(std::move(writer)),
      last_seq_(last_seq),
      reader_(std::move(reader)) {}

SqliteItemStore::~SqliteItemStore() {
  // Close the reader first so the writer, the last connection, checkpoints the WAL into the
  // database; only then may another process take the directory.
  reader_.reset();
  writer_.reset();
  ::close(lock_fd_);
}

absl::Status SqliteItemStore::CreateCollection(const CollectionRecord& record) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("INSERT INTO collections(name, shards, caption_index, caption_dim, clip_model, "
                   "captioner_model, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  stmt.BindBytes(1, record.name);
  stmt.BindInt64(2, record.shards);
  stmt.BindBytes(3, record.caption_index);
  stmt.BindInt64(4, record.caption_dim);
  stmt.BindBytes(5, record.clip_model);
  stmt.BindBytes(6, record.captioner_model);
  stmt.BindInt64(7, NowMillis());
  int rc = stmt.Step();
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return absl::AlreadyExistsError(
        absl::StrCat("collection ", Quote(record.name), " already exists"));
  }
  if (rc != SQLITE_DONE) {
    return conn.Error(rc, absl::StrCat("create collection ", Quote(record.name)));
  }
  RETRACE_RETURN_IF_ERROR(SetLastSequence(conn, last_seq_ + 1));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  ++last_seq_;
  return absl::OkStatus();
}

absl::Status SqliteItemStore::DropCollection(const std::string& name) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, name));
  {
    RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                             conn.Prepare("DELETE FROM items WHERE collection = ?1"));
    stmt.BindBytes(1, name);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) return conn.Error(rc, absl::StrCat("delete items of ", Quote(name)));
  }
  {
    RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                             conn.Prepare("DELETE FROM collections WHERE name = ?1"));
    stmt.BindBytes(1, name);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) return conn.Error(rc, absl::StrCat("drop collection ", Quote(name)));
  }
  RETRACE_RETURN_IF_ERROR(SetLastSequence(conn, last_seq_ + 1));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  ++last_seq_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CollectionRecord>> SqliteItemStore::ListCollections() const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("SELECT name, shards, caption_index, caption_dim, clip_model, captioner_model "
                   "FROM collections ORDER BY name"));
  std::vector<CollectionRecord> records;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    CollectionRecord& record = records.emplace_back();
    record.name = std::string(stmt.ColumnBytes(0));
    record.shards = static_cast<int>(stmt.ColumnInt64(1));
    record.caption_index = std::string(stmt.ColumnBytes(2));
    record.caption_dim = static_cast<int>(stmt.ColumnInt64(3));
    record.clip_model = std::string(stmt.ColumnBytes(4));
    record.captioner_model = std::string(stmt.ColumnBytes(5));
  }
  if (rc != SQLITE_DONE) return conn.Error(rc, "list collections");
  return records;
}

absl::StatusOr<int64_t> SqliteItemStore::PutItems(const std::string& collection,
                                                  std::vector<StoredItem> items) {
  absl::flat_hash_set<absl::string_view> seen;
  seen.reserve(items.size());
  for (const StoredItem& item : items) {
    if (!seen.insert(item.id).second) {
      return absl::InvalidArgumentError(absl::StrCat("item id ", Quote(item.id),
                                                     " appears more than once in one batch for ",
                                                     Quote(collection), "; nothing was stored"));
    }
  }

  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  if (items.empty()) return last_seq_;

  const int64_t seq = last_seq_ + 1;
  const int64_t now = NowMillis();
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("INSERT INTO items(collection, id, caption, attributes, clip_image, "
                   "caption_text, content_hash, seq, created_at, updated_at) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) "
                   "ON CONFLICT(collection, id) DO UPDATE SET caption = excluded.caption, "
                   "attributes = excluded.attributes, clip_image = excluded.clip_image, "
                   "caption_text = excluded.caption_text, content_hash = excluded.content_hash, "
                   "seq = excluded.seq, updated_at = excluded.updated_at"));
  std::string attributes;
  for (const StoredItem& item : items) {
    attributes = internal::EncodeAttributes(item.attributes);
    absl::string_view clip_image = internal::FloatBytes(item.clip_image);
    absl::string_view caption_text = internal::FloatBytes(item.caption_text);
    stmt.BindBytes(1, collection);
    stmt.BindBytes(2, item.id);
    stmt.BindBytes(3, item.caption);
    stmt.BindBytes(4, attributes);
    stmt.BindBytes(5, clip_image);
    stmt.BindBytes(6, caption_text);
    stmt.BindInt64(7, internal::ContentHash(item.caption, attributes, clip_image, caption_text));
    stmt.BindInt64(8, seq);
    stmt.BindInt64(9, now);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc,
                        absl::StrCat("insert item ", Quote(item.id), " into ", Quote(collection)));
    }
    stmt.Reset();
  }
  RETRACE_RETURN_IF_ERROR(SetLastSequence(conn, seq));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  last_seq_ = seq;
  return seq;
}

absl::StatusOr<std::vector<std::optional<StoredItem>>> SqliteItemStore::GetItems(
    const std::string& collection, const std::vector<std::string>& ids) const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt, conn.Prepare(absl::StrCat("SELECT ", kItemColumns,
                                                " FROM items WHERE collection = ?1 AND id = ?2")));
  std::vector<std::optional<StoredItem>> found;
  found.reserve(ids.size());
  for (const std::string& id : ids) {
    stmt.BindBytes(1, collection);
    stmt.BindBytes(2, id);
    int rc = stmt.Step();
    if (rc == SQLITE_ROW) {
      RETRACE_ASSIGN_OR_RETURN(StoredItem item, ReadItem(stmt, 0, collection));
      found.emplace_back(std::move(item));
    } else if (rc == SQLITE_DONE) {
      found.emplace_back(std::nullopt);
    } else {
      return conn.Error(rc, absl::StrCat("get item ", Quote(id), " of ", Quote(collection)));
    }
    stmt.Reset();
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return found;
}

absl::StatusOr<std::vector<bool>> SqliteItemStore::DeleteItems(
    const std::string& collection, const std::vector<std::string>& ids) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                           conn.Prepare("DELETE FROM items WHERE collection = ?1 AND id = ?2"));
  std::vector<bool> present;
  present.reserve(ids.size());
  bool any = false;
  for (const std::string& id : ids) {
    stmt.BindBytes(1, collection);
    stmt.BindBytes(2, id);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc, absl::StrCat("delete item ", Quote(id), " of ", Quote(collection)));
    }
    present.push_back(conn.Changes() > 0);
    any = any || present.back();
    stmt.Reset();
  }
  if (any) RETRACE_RETURN_IF_ERROR(SetLastSequence(conn, last_seq_ + 1));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  if (any) ++last_seq_;
  return present;
}

absl::StatusOr<int64_t> SqliteItemStore::CountItems(const std::string& collection) const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                           conn.Prepare("SELECT count(*) FROM items WHERE collection = ?1"));
  stmt.BindBytes(1, collection);
  int rc = stmt.Step();
  if (rc != SQLITE_ROW) return conn.Error(rc, absl::StrCat("count items of ", Quote(collection)));
  int64_t count = stmt.ColumnInt64(0);
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return count;
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
          Statement stmt, conn.Prepare(absl::StrCat(
                              "SELECT ", kItemColumns, " FROM items WHERE collection = ?1",
                              after.has_value() ? " AND id > ?3" : "", " ORDER BY id LIMIT ?2")));
      stmt.BindBytes(1, collection);
      stmt.BindInt64(2, kForEachPageSize);
      if (after.has_value()) stmt.BindBytes(3, *after);
      int rc;
      while ((rc = stmt.Step()) == SQLITE_ROW) {
        RETRACE_ASSIGN_OR_RETURN(StoredItem item, ReadItem(stmt, 0, collection));
        page.push_back(std::move(item));
      }
      if (rc != SQLITE_DONE) {
        return conn.Error(rc, absl::StrCat("scan items of ", Quote(collection)));
      }
      RETRACE_RETURN_IF_ERROR(txn.Commit());
    }
    for (const StoredItem& item : page) RETRACE_RETURN_IF_ERROR(visit(item));
    if (!page.empty()) after = page.back().id;
  } while (page.size() == kForEachPageSize);
  return absl::OkStatus();
}

int64_t SqliteItemStore::LastSequence() const {
  absl::MutexLock lock(&write_mu_);
  return last_seq_;
}

}  // namespace retrace::store
