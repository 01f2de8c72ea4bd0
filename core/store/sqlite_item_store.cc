#include "core/store/sqlite_item_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"
#include "core/store/internal/item_rows.h"
#include "core/store/internal/record_codec.h"
#include "core/store/internal/sqlite_connection.h"

namespace retrace::store {
namespace {

using internal::CheckCollection;
using internal::Connection;
using internal::Quote;
using internal::Statement;
using internal::StoredHash;
using internal::Transaction;

// Schema versions 3 and 4 (a new database is made at version 3 and migrated, so every
// database takes the same path to the current version). Caller strings (names, ids, captions, model identities) are BLOBs: stored
// byte-exact and compared with memcmp, so any bytes are safe (see sqlite_connection.h). Times
// are Unix milliseconds. Deleting a collection that still has items or deletions violates a
// foreign key, a guard against a DropCollection that forgot them.
//
// Embeddings are columns of `items`, one nullable BLOB per space, rather than rows of a separate
// embeddings(collection, id, space, vector) table: every read of an item (hydrating hits,
// re-ranking, rebuilding indexes) wants all of its embeddings at once, and one row is one B-tree
// lookup where a side table would double the rows, the lookups and the write amplification. The
// spaces are fixed by the code, not by data, so a new one is a schema version that runs
// "ALTER TABLE ... ADD COLUMN" — constant time in SQLite, no table rewrite — and old rows read
// NULL, i.e. "not computed". Version 3 added the image space that way (kMigrateV2ToV3).
//
// Version 1 (the walking skeleton) is refused, not migrated: it recorded no deletions, so no
// change feed could be trusted across the upgrade, and the column order below would need a
// table rewrite. Nothing had been released; its data directories are re-ingested.
//
// In `items`, the fixed-size columns come before the BLOBs: SQLite reads a row's columns from
// its start and stops at the last one a query needs, so GetContentHashes reads only the row's
// first page, never the overflow pages that hold the embeddings.
//
// Positions (item_store.h) are called `seq` in the tables. `deletions` records, per
// collection, each id DeleteItems removed and that call's position, for the change feed;
// PutItems removes the row of an id it puts back, so an id is in `items` or in `deletions`,
// never both. The table grows with every deleted id until CompactDeletions removes the rows at
// or below a position; the highest such position is kept as collections.compacted_seq, below
// which the feed is refused.
constexpr char kSchemaV3[] = R"sql(
CREATE TABLE collections (
  name            BLOB PRIMARY KEY NOT NULL,
  shards          INTEGER NOT NULL,
  caption_index   BLOB NOT NULL,
  caption_dim     INTEGER NOT NULL,
  clip_model      BLOB NOT NULL,
  captioner_model BLOB NOT NULL,
  created_at      INTEGER NOT NULL,
  created_seq     INTEGER NOT NULL,
  compacted_seq   INTEGER NOT NULL,
  image_index         BLOB NOT NULL DEFAULT 'Flat',
  image_dim           INTEGER NOT NULL DEFAULT 0,
  image_encoder_model BLOB NOT NULL DEFAULT ''
);
CREATE TABLE items (
  collection   BLOB NOT NULL REFERENCES collections(name),
  id           BLOB NOT NULL,
  content_hash INTEGER NOT NULL,  -- the caller's, as the signed integer with the same bits
  seq          INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  caption      BLOB NOT NULL,
  attributes   BLOB NOT NULL,  -- record_codec.h: varint-size-prefixed key/value pairs
  clip_image   BLOB,           -- little-endian float32
  caption_text BLOB,           -- little-endian float32
  image_features BLOB,         -- little-endian float32; NULL without an image encoder
  PRIMARY KEY (collection, id)
);
CREATE INDEX items_by_seq ON items(collection, seq);
CREATE TABLE deletions (
  collection BLOB NOT NULL REFERENCES collections(name),
  id         BLOB NOT NULL,
  seq        INTEGER NOT NULL,
  PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE INDEX deletions_by_seq ON deletions(collection, seq);
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
);
INSERT INTO meta(key, value) VALUES ('last_seq', 0);
PRAGMA user_version = 3;
)sql";

// kMigrateV3ToV4 makes the store the log that several indexes follow: the change feed reads
// items in (seq, id) order (items_by_seq_id replaces items_by_seq), each collection knows its
// latest change's position (so a follower skips the collections that did not change), and the
// replicas that follow the store record their positions (replicas, replica_positions).
constexpr char kMigrateV3ToV4[] = R"sql(
DROP INDEX items_by_seq;
CREATE INDEX items_by_seq_id ON items(collection, seq, id);
ALTER TABLE collections ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
UPDATE collections SET last_seq = max(created_seq,
  coalesce((SELECT max(seq) FROM items WHERE items.collection = collections.name), 0),
  coalesce((SELECT max(seq) FROM deletions WHERE deletions.collection = collections.name), 0));
CREATE TABLE replicas (
  replica      BLOB PRIMARY KEY NOT NULL,
  address      BLOB NOT NULL,
  started_at   INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
);
CREATE TABLE replica_positions (
  replica     BLOB NOT NULL REFERENCES replicas(replica) ON DELETE CASCADE,
  collection  BLOB NOT NULL,
  created_seq INTEGER NOT NULL,
  applied     INTEGER NOT NULL,
  resume      INTEGER NOT NULL,  -- -1: the replica would rebuild from the items
  PRIMARY KEY (replica, collection)
) WITHOUT ROWID;
PRAGMA user_version = 4;
)sql";

// kMigrateV2ToV3 adds the image space. A version-2 collection had none: its image space is
// CLIP's image embedding alone, which its items hold, so image_dim becomes caption_dim and its
// index is rebuilt from the store at the next start like any index without a snapshot.
constexpr char kMigrateV2ToV3[] = R"sql(
ALTER TABLE collections ADD COLUMN image_index BLOB NOT NULL DEFAULT 'Flat';
ALTER TABLE collections ADD COLUMN image_dim INTEGER NOT NULL DEFAULT 0;
ALTER TABLE collections ADD COLUMN image_encoder_model BLOB NOT NULL DEFAULT '';
UPDATE collections SET image_dim = caption_dim;
ALTER TABLE items ADD COLUMN image_features BLOB;
PRAGMA user_version = 3;
)sql";

// kMigrateV4ToV5 keeps a small JPEG per item for showing it (collections.thumbnail_side > 0),
// in its own table: the change feed, the index rebuilds and every read of `items` leave the
// images unread, and a collection that keeps none pays nothing.
constexpr char kMigrateV4ToV5[] = R"sql(
ALTER TABLE collections ADD COLUMN thumbnail_side INTEGER NOT NULL DEFAULT 0;
CREATE TABLE thumbnails (
  collection BLOB NOT NULL REFERENCES collections(name),
  id         BLOB NOT NULL,
  jpeg       BLOB NOT NULL,
  PRIMARY KEY (collection, id)
);
PRAGMA user_version = 5;
)sql";

// kMigrateV5ToV6 indexes the captions for lexical search (SearchCaptions): an FTS5 table whose
// content is items.caption (external content: the text is not stored twice, only the index),
// keyed by the items' rowid. Triggers keep it in step with `items` inside the very statements
// that write items — PutItems' upserts, DeleteItems, DropCollection — so it is always in the
// same transaction as the write, whichever path writes. 'rebuild' fills it from the existing
// rows. One index for every collection: SearchCaptions joins back to `items` for the
// collection, and BM25's statistics (document count, average length, term frequencies) are
// the whole store's. The tokenizer is unicode61 without diacritic removal, which splits and
// folds case as PostgreSQL's 'simple' configuration does, so both stores match the same words.
// A caution for operators: VACUUM may renumber the rowids of a table without an INTEGER PRIMARY
// KEY, which `items` is; the store never runs it, and after a manual VACUUM run
// "INSERT INTO captions_fts(captions_fts) VALUES ('rebuild')".
constexpr char kMigrateV5ToV6[] = R"sql(
CREATE VIRTUAL TABLE captions_fts USING fts5(
  caption, content = 'items', content_rowid = 'rowid',
  tokenize = 'unicode61 remove_diacritics 0');
CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN
  INSERT INTO captions_fts(rowid, caption) VALUES (new.rowid, new.caption);
END;
CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
  INSERT INTO captions_fts(captions_fts, rowid, caption) VALUES ('delete', old.rowid, old.caption);
END;
CREATE TRIGGER items_fts_update AFTER UPDATE OF caption ON items BEGIN
  INSERT INTO captions_fts(captions_fts, rowid, caption) VALUES ('delete', old.rowid, old.caption);
  INSERT INTO captions_fts(rowid, caption) VALUES (new.rowid, new.caption);
END;
INSERT INTO captions_fts(captions_fts) VALUES ('rebuild');
PRAGMA user_version = 6;
)sql";

// FtsQuery writes `terms` as an FTS5 query: each a quoted string (a literal, whatever it holds;
// a '"' inside is doubled), joined by OR.
std::string FtsQuery(const std::vector<std::string>& terms) {
  std::string query;
  for (const std::string& term : terms) {
    absl::StrAppend(&query, query.empty() ? "\"" : " OR \"",
                    absl::StrReplaceAll(term, {{"\"", "\"\""}}), "\"");
  }
  return query;
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

// SetLastSequence stores `seq` as the latest change's number (inside the caller's transaction).
absl::Status SetLastSequence(Connection& conn, int64_t seq) {
  RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                           conn.Prepare("UPDATE meta SET value = ?1 WHERE key = 'last_seq'"));
  stmt.BindInt64(1, seq);
  int rc = stmt.Step();
  if (rc != SQLITE_DONE) return conn.Error(rc, "update sequence");
  return absl::OkStatus();
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
  if (version == 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(path,
                     " has schema version 1, from before deletions were recorded; this build reads "
                     "version ",
                     SqliteItemStore::kSchemaVersion,
                     " only: move the data directory aside and index the items again"));
  }
  if (version == 0) {
    // A new, empty database, unless some other program made it.
    RETRACE_ASSIGN_OR_RETURN(int64_t tables,
                             conn.QueryInt64("SELECT count(*) FROM sqlite_schema", "read schema"));
    if (tables != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " is an SQLite database but not a retrace store (user_version 0 and ",
                       tables, " schema objects)"));
    }
    RETRACE_RETURN_IF_ERROR(conn.Exec(kSchemaV3, "create schema"));
    version = 3;
  }
  if (version == 2) {
    RETRACE_RETURN_IF_ERROR(conn.Exec(kMigrateV2ToV3, "migrate schema 2 to 3"));
    version = 3;
  }
  if (version == 3) {
    RETRACE_RETURN_IF_ERROR(conn.Exec(kMigrateV3ToV4, "migrate schema 3 to 4"));
    version = 4;
  }
  if (version == 4) {
    RETRACE_RETURN_IF_ERROR(conn.Exec(kMigrateV4ToV5, "migrate schema 4 to 5"));
    version = 5;
  }
  if (version == 5) RETRACE_RETURN_IF_ERROR(conn.Exec(kMigrateV5ToV6, "migrate schema 5 to 6"));
  return txn.Commit();
}

// Bump takes the next position for the change being written in the caller's transaction, and
// records it as the store's and `collection`'s (when given) latest.
absl::StatusOr<int64_t> Bump(Connection& conn, int64_t last, const std::string* collection) {
  const int64_t position = last + 1;
  RETRACE_RETURN_IF_ERROR(SetLastSequence(conn, position));
  if (collection != nullptr) {
    RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                             conn.Prepare("UPDATE collections SET last_seq = ?2 WHERE name = ?1"));
    stmt.BindBytes(1, *collection);
    stmt.BindInt64(2, position);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc, absl::StrCat("record the latest change of ", Quote(*collection)));
    }
  }
  return position;
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
        int64_t last_position,
        writer->QueryInt64("SELECT value FROM meta WHERE key = 'last_seq'", "read position"));

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
    return std::unique_ptr<SqliteItemStore>(new SqliteItemStore(
        db_path, lock_fd, std::move(writer), std::move(reader), last_position));
  };
  absl::StatusOr<std::unique_ptr<SqliteItemStore>> store = open_locked();
  if (!store.ok()) ::close(lock_fd);
  return store;
}

SqliteItemStore::SqliteItemStore(std::string db_path, int lock_fd,
                                 std::unique_ptr<Connection> writer,
                                 std::unique_ptr<Connection> reader, int64_t last_position)
    : db_path_(std::move(db_path)),
      lock_fd_(lock_fd),
      writer_(std::move(writer)),
      last_position_(last_position),
      reader_(std::move(reader)) {}

SqliteItemStore::~SqliteItemStore() {
  // Close the reader first so the writer, the last connection, checkpoints the WAL into the
  // database; only then may another process take the directory.
  reader_.reset();
  writer_.reset();
  ::close(lock_fd_);
}

std::string SqliteItemStore::Describe() const { return absl::StrCat("sqlite ", db_path_); }

absl::StatusOr<int64_t> SqliteItemStore::CreateCollection(const CollectionRecord& record) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  const int64_t position = last_position_ + 1;
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("INSERT INTO collections(name, shards, caption_index, caption_dim, clip_model, "
                   "captioner_model, created_at, created_seq, compacted_seq, image_index, "
                   "image_dim, image_encoder_model, last_seq, thumbnail_side) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?8, ?12)"));
  stmt.BindBytes(1, record.name);
  stmt.BindInt64(2, record.shards);
  stmt.BindBytes(3, record.caption_index);
  stmt.BindInt64(4, record.caption_dim);
  stmt.BindBytes(5, record.clip_model);
  stmt.BindBytes(6, record.captioner_model);
  stmt.BindInt64(7, NowMillis());
  stmt.BindInt64(8, position);
  stmt.BindBytes(9, record.image_index);
  stmt.BindInt64(10, record.image_dim);
  stmt.BindBytes(11, record.image_encoder_model);
  stmt.BindInt64(12, record.thumbnail_side);
  int rc = stmt.Step();
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return absl::AlreadyExistsError(
        absl::StrCat("collection ", Quote(record.name), " already exists"));
  }
  if (rc != SQLITE_DONE) {
    return conn.Error(rc, absl::StrCat("create collection ", Quote(record.name)));
  }
  RETRACE_RETURN_IF_ERROR(Bump(conn, last_position_, nullptr).status());
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  last_position_ = position;
  return position;
}

absl::StatusOr<int64_t> SqliteItemStore::DropCollection(const std::string& name) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, name));
  for (const char* table :
       {"items", "thumbnails", "deletions", "replica_positions", "collections"}) {
    RETRACE_ASSIGN_OR_RETURN(
        Statement stmt,
        conn.Prepare(absl::StrCat("DELETE FROM ", table, " WHERE ",
                                  std::string_view(table) == "collections" ? "name" : "collection",
                                  " = ?1")));
    stmt.BindBytes(1, name);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc, absl::StrCat("delete ", table, " of ", Quote(name)));
    }
  }
  RETRACE_ASSIGN_OR_RETURN(int64_t position, Bump(conn, last_position_, nullptr));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  last_position_ = position;
  return position;
}

absl::StatusOr<StoreState> SqliteItemStore::ReadState() const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  StoreState state;
  RETRACE_ASSIGN_OR_RETURN(
      state.last_position,
      conn.QueryInt64("SELECT value FROM meta WHERE key = 'last_seq'", "read position"));
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("SELECT name, shards, caption_index, caption_dim, clip_model, captioner_model, "
                   "created_seq, image_index, image_dim, image_encoder_model, last_seq, "
                   "thumbnail_side FROM collections ORDER BY name"));
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    CollectionRecord& record = state.collections.emplace_back();
    record.name = std::string(stmt.ColumnBytes(0));
    record.shards = static_cast<int>(stmt.ColumnInt64(1));
    record.caption_index = std::string(stmt.ColumnBytes(2));
    record.caption_dim = static_cast<int>(stmt.ColumnInt64(3));
    record.clip_model = std::string(stmt.ColumnBytes(4));
    record.captioner_model = std::string(stmt.ColumnBytes(5));
    record.created_position = stmt.ColumnInt64(6);
    record.image_index = std::string(stmt.ColumnBytes(7));
    record.image_dim = static_cast<int>(stmt.ColumnInt64(8));
    record.image_encoder_model = std::string(stmt.ColumnBytes(9));
    record.last_change_position = stmt.ColumnInt64(10);
    record.thumbnail_side = static_cast<int>(stmt.ColumnInt64(11));
  }
  if (rc != SQLITE_DONE) return conn.Error(rc, "list collections");
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return state;
}

absl::StatusOr<int64_t> SqliteItemStore::PutItems(const std::string& collection,
                                                  std::vector<StoredItem> items) {
  RETRACE_ASSIGN_OR_RETURN(PutResult put, Put(collection, std::move(items), nullptr));
  return put.position;
}

absl::StatusOr<PutResult> SqliteItemStore::PutItemsChecked(const std::string& collection,
                                                          std::vector<StoredItem> items,
                                                          const ReplaceCheck& may_replace) {
  return Put(collection, std::move(items), &may_replace);
}

absl::StatusOr<PutResult> SqliteItemStore::Put(const std::string& collection,
                                               std::vector<StoredItem> items,
                                               const ReplaceCheck* may_replace) {
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
  PutResult put{last_position_, {}};
  if (may_replace != nullptr && !items.empty()) {
    // Under write_mu_ and in the write transaction: no other write comes between check and put.
    RETRACE_ASSIGN_OR_RETURN(
        Statement read, conn.Prepare(absl::StrCat("SELECT ", internal::kItemTextColumns,
                                                  " FROM items WHERE collection = ?1 AND id = ?2")));
    std::vector<StoredItem> accepted;
    for (size_t i = 0; i < items.size(); ++i) {
      read.BindBytes(1, collection);
      read.BindBytes(2, items[i].id);
      const int rc = read.Step();
      bool refused = false;
      if (rc == SQLITE_ROW) {
        RETRACE_ASSIGN_OR_RETURN(StoredItem stored, internal::ReadItemText(read, 0, collection));
        refused = !(*may_replace)(stored);
      } else if (rc != SQLITE_DONE) {
        return conn.Error(rc, absl::StrCat("read item ", Quote(items[i].id), " of ",
                                           Quote(collection), " before replacing it"));
      }
      read.Reset();
      if (refused) {
        put.refused.push_back(i);
      } else {
        accepted.push_back(std::move(items[i]));
      }
    }
    items = std::move(accepted);
  }
  if (items.empty()) return put;

  const int64_t position = last_position_ + 1;
  const int64_t now = NowMillis();
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("INSERT INTO items(collection, id, caption, attributes, clip_image, "
                   "caption_text, content_hash, seq, created_at, updated_at, image_features) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10) "
                   "ON CONFLICT(collection, id) DO UPDATE SET caption = excluded.caption, "
                   "attributes = excluded.attributes, clip_image = excluded.clip_image, "
                   "caption_text = excluded.caption_text, content_hash = excluded.content_hash, "
                   "seq = excluded.seq, updated_at = excluded.updated_at, "
                   "image_features = excluded.image_features"));
  RETRACE_ASSIGN_OR_RETURN(Statement undelete,
                           conn.Prepare("DELETE FROM deletions WHERE collection = ?1 AND id = ?2"));
  RETRACE_ASSIGN_OR_RETURN(
      Statement put_thumbnail,
      conn.Prepare("INSERT INTO thumbnails(collection, id, jpeg) VALUES (?1, ?2, ?3) "
                   "ON CONFLICT(collection, id) DO UPDATE SET jpeg = excluded.jpeg"));
  RETRACE_ASSIGN_OR_RETURN(
      Statement drop_thumbnail,
      conn.Prepare("DELETE FROM thumbnails WHERE collection = ?1 AND id = ?2"));
  std::string attributes;
  for (const StoredItem& item : items) {
    attributes = internal::EncodeAttributes(item.attributes);
    stmt.BindBytes(1, collection);
    stmt.BindBytes(2, item.id);
    stmt.BindBytes(3, item.caption);
    stmt.BindBytes(4, attributes);
    stmt.BindBytes(5, internal::FloatBytes(item.clip_image));
    stmt.BindBytes(6, internal::FloatBytes(item.caption_text));
    stmt.BindInt64(7, StoredHash(item.content_hash));
    stmt.BindInt64(8, position);
    stmt.BindInt64(9, now);
    stmt.BindBytes(10, internal::FloatBytes(item.image_features));
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc,
                        absl::StrCat("insert item ", Quote(item.id), " into ", Quote(collection)));
    }
    stmt.Reset();
    undelete.BindBytes(1, collection);
    undelete.BindBytes(2, item.id);
    rc = undelete.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(
          rc, absl::StrCat("forget deletion of ", Quote(item.id), " in ", Quote(collection)));
    }
    undelete.Reset();
    // A new version without a thumbnail must not show the old version's.
    Statement& thumbnail = item.thumbnail.empty() ? drop_thumbnail : put_thumbnail;
    thumbnail.BindBytes(1, collection);
    thumbnail.BindBytes(2, item.id);
    if (!item.thumbnail.empty()) thumbnail.BindBytes(3, item.thumbnail);
    rc = thumbnail.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc, absl::StrCat("store the thumbnail of ", Quote(item.id), " in ",
                                         Quote(collection)));
    }
    thumbnail.Reset();
  }
  RETRACE_RETURN_IF_ERROR(Bump(conn, last_position_, &collection).status());
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  last_position_ = position;
  put.position = position;
  return put;
}

absl::StatusOr<std::vector<std::optional<StoredItem>>> SqliteItemStore::GetItems(
    const std::string& collection, const std::vector<std::string>& ids) const {
  return ReadItems(collection, ids, /*embeddings=*/true);
}

absl::StatusOr<std::vector<std::optional<StoredItem>>> SqliteItemStore::GetItemsWithoutEmbeddings(
    const std::string& collection, const std::vector<std::string>& ids) const {
  return ReadItems(collection, ids, /*embeddings=*/false);
}

absl::StatusOr<std::vector<std::optional<StoredItem>>> SqliteItemStore::ReadItems(
    const std::string& collection, const std::vector<std::string>& ids, bool embeddings) const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  // The embeddings are the row's last columns, so leaving them out leaves their pages unread.
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare(absl::StrCat("SELECT ",
                                embeddings ? internal::kItemColumns : internal::kItemTextColumns,
                                " FROM items WHERE collection = ?1 AND id = ?2")));
  std::vector<std::optional<StoredItem>> found;
  found.reserve(ids.size());
  for (const std::string& id : ids) {
    stmt.BindBytes(1, collection);
    stmt.BindBytes(2, id);
    int rc = stmt.Step();
    if (rc == SQLITE_ROW) {
      RETRACE_ASSIGN_OR_RETURN(StoredItem item,
                               embeddings ? internal::ReadItem(stmt, 0, collection)
                                          : internal::ReadItemText(stmt, 0, collection));
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

absl::StatusOr<std::vector<StoredItem>> SqliteItemStore::ListItems(const std::string& collection,
                                                                   const std::string& after,
                                                                   int limit,
                                                                   bool embeddings) const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  // ids are BLOBs, which SQLite orders bytewise; the primary key (collection, id) serves it.
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare(absl::StrCat("SELECT ",
                                embeddings ? internal::kItemColumns : internal::kItemTextColumns,
                                " FROM items WHERE collection = ?1 AND id > ?2 ORDER BY id "
                                "LIMIT ?3")));
  stmt.BindBytes(1, collection);
  stmt.BindBytes(2, after);
  stmt.BindInt64(3, limit);
  std::vector<StoredItem> items;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    RETRACE_ASSIGN_OR_RETURN(StoredItem item,
                             embeddings ? internal::ReadItem(stmt, 0, collection)
                                        : internal::ReadItemText(stmt, 0, collection));
    items.push_back(std::move(item));
  }
  if (rc != SQLITE_DONE) return conn.Error(rc, absl::StrCat("list items of ", Quote(collection)));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return items;
}

absl::StatusOr<std::vector<std::optional<std::string>>> SqliteItemStore::GetThumbnails(
    const std::string& collection, const std::vector<std::string>& ids) const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("SELECT jpeg FROM thumbnails WHERE collection = ?1 AND id = ?2"));
  std::vector<std::optional<std::string>> found;
  found.reserve(ids.size());
  for (const std::string& id : ids) {
    stmt.BindBytes(1, collection);
    stmt.BindBytes(2, id);
    int rc = stmt.Step();
    if (rc == SQLITE_ROW) {
      found.emplace_back(std::string(stmt.ColumnBytes(0)));
    } else if (rc == SQLITE_DONE) {
      found.emplace_back(std::nullopt);
    } else {
      return conn.Error(rc, absl::StrCat("get the thumbnail of ", Quote(id), " in ",
                                         Quote(collection)));
    }
    stmt.Reset();
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return found;
}

absl::StatusOr<DeleteResult> SqliteItemStore::DeleteItems(const std::string& collection,
                                                          const std::vector<std::string>& ids) {
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/true));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  RETRACE_ASSIGN_OR_RETURN(Statement stmt,
                           conn.Prepare("DELETE FROM items WHERE collection = ?1 AND id = ?2"));
  RETRACE_ASSIGN_OR_RETURN(
      Statement record,
      conn.Prepare("INSERT INTO deletions(collection, id, seq) VALUES (?1, ?2, ?3) "
                   "ON CONFLICT(collection, id) DO UPDATE SET seq = excluded.seq"));
  RETRACE_ASSIGN_OR_RETURN(
      Statement drop_thumbnail,
      conn.Prepare("DELETE FROM thumbnails WHERE collection = ?1 AND id = ?2"));
  // The position this call takes if it removes anything, which its removed ids are recorded with.
  const int64_t position = last_position_ + 1;
  DeleteResult result;
  result.present.reserve(ids.size());
  bool any = false;
  for (const std::string& id : ids) {
    stmt.BindBytes(1, collection);
    stmt.BindBytes(2, id);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc, absl::StrCat("delete item ", Quote(id), " of ", Quote(collection)));
    }
    result.present.push_back(conn.Changes() > 0);
    stmt.Reset();
    if (!result.present.back()) continue;
    any = true;
    drop_thumbnail.BindBytes(1, collection);
    drop_thumbnail.BindBytes(2, id);
    rc = drop_thumbnail.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc, absl::StrCat("delete the thumbnail of ", Quote(id), " of ",
                                         Quote(collection)));
    }
    drop_thumbnail.Reset();
    record.BindBytes(1, collection);
    record.BindBytes(2, id);
    record.BindInt64(3, position);
    rc = record.Step();
    if (rc != SQLITE_DONE) {
      return conn.Error(rc,
                        absl::StrCat("record deletion of ", Quote(id), " in ", Quote(collection)));
    }
    record.Reset();
  }
  if (any) RETRACE_RETURN_IF_ERROR(Bump(conn, last_position_, &collection).status());
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  if (any) last_position_ = position;
  result.position = last_position_;
  return result;
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

absl::StatusOr<std::vector<CaptionMatch>> SqliteItemStore::SearchCaptions(
    const std::string& collection, const std::vector<std::string>& terms, int limit) const {
  absl::MutexLock lock(&read_mu_);
  Connection& conn = *reader_;
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin(/*write=*/false));
  RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
  std::vector<CaptionMatch> matches;
  if (terms.empty()) return matches;
  // bm25() is lower for better matches; the store's score is its negation.
  RETRACE_ASSIGN_OR_RETURN(
      Statement stmt,
      conn.Prepare("SELECT items.id, bm25(captions_fts) FROM captions_fts "
                   "JOIN items ON items.rowid = captions_fts.rowid "
                   "WHERE captions_fts MATCH ?1 AND items.collection = ?2 "
                   "ORDER BY bm25(captions_fts), items.id LIMIT ?3"));
  stmt.BindText(1, FtsQuery(terms));
  stmt.BindBytes(2, collection);
  stmt.BindInt64(3, limit);
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    matches.push_back(CaptionMatch{std::string(stmt.ColumnBytes(0)), -stmt.ColumnDouble(1)});
  }
  if (rc != SQLITE_DONE) {
    return conn.Error(rc, absl::StrCat("search the captions of ", Quote(collection)));
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return matches;
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
