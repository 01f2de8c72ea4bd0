#include "core/store/sqlite_item_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
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
#include "core/store/internal/sqlite_schema.h"

namespace retrace::store {
namespace {

using internal::CheckCollection;
using internal::Connection;
using internal::NowMillis;
using internal::Quote;
using internal::Statement;
using internal::StoredHash;
using internal::Transaction;

std::string FtsQuery(const std::vector<std::string>& terms) {
  std::string query;
  for (const std::string& term : terms) {
    absl::StrAppend(&query, query.empty() ? "\"" : " OR \"",
                    absl::StrReplaceAll(term, {{"\"", "\"\""}}), "\"");
  }
  return query;
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
    RETRACE_RETURN_IF_ERROR(internal::InitializeSchema(*writer, db_path));
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
  return Put(collection, std::move(items), may_replace ? &may_replace : nullptr);
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

}  // namespace retrace::store
