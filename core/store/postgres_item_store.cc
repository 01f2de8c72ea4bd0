#include "core/store/postgres_item_store.h"

#include <poll.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/internal/change_feed.h"
#include "core/store/internal/pg_connection.h"
#include "core/store/internal/record_codec.h"

namespace retrace::store {
namespace {

using internal::pg::Connection;
using internal::pg::Param;
using internal::pg::Result;
using internal::pg::Transaction;

// The schema, version 1. Positions are one counter (retrace_meta 'last_position'); each table's
// `position` is the position of the change that wrote the row. `deletions` holds each id
// DeleteItems removed, until CompactDeletions; an id is in `items` or `deletions`, never both.
// Embedding columns use STORAGE EXTERNAL: floats do not compress, so PostgreSQL should not try.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE retrace_meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO retrace_meta VALUES ('last_position', 0);
CREATE TABLE collections (
  name bytea PRIMARY KEY,
  shards integer NOT NULL,
  caption_index bytea NOT NULL,
  caption_dim integer NOT NULL,
  clip_model bytea NOT NULL,
  captioner_model bytea NOT NULL,
  image_index bytea NOT NULL,
  image_dim integer NOT NULL,
  image_encoder_model bytea NOT NULL,
  created_at bigint NOT NULL,
  created_position bigint NOT NULL,
  compacted_position bigint NOT NULL DEFAULT 0,
  last_position bigint NOT NULL
);
CREATE TABLE items (
  collection bytea NOT NULL REFERENCES collections(name),
  id bytea NOT NULL,
  content_hash bigint NOT NULL,
  position bigint NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  caption bytea NOT NULL,
  attributes bytea NOT NULL,
  clip_image bytea,
  caption_text bytea,
  image_features bytea,
  PRIMARY KEY (collection, id)
);
ALTER TABLE items ALTER COLUMN clip_image SET STORAGE EXTERNAL;
ALTER TABLE items ALTER COLUMN caption_text SET STORAGE EXTERNAL;
ALTER TABLE items ALTER COLUMN image_features SET STORAGE EXTERNAL;
CREATE INDEX items_by_position ON items (collection, position, id);
CREATE TABLE deletions (
  collection bytea NOT NULL REFERENCES collections(name),
  id bytea NOT NULL,
  position bigint NOT NULL,
  PRIMARY KEY (collection, id)
);
CREATE INDEX deletions_by_position ON deletions (collection, position, id);
CREATE TABLE replicas (
  replica bytea PRIMARY KEY,
  address bytea NOT NULL,
  started_at bigint NOT NULL,
  heartbeat_at bigint NOT NULL
);
CREATE TABLE replica_positions (
  replica bytea NOT NULL REFERENCES replicas(replica) ON DELETE CASCADE,
  collection bytea NOT NULL,
  created_position bigint NOT NULL,
  applied bigint NOT NULL,
  resume bigint NOT NULL,
  PRIMARY KEY (replica, collection)
);
)sql";

// Version 2 keeps a small JPEG per item for showing it (collections.thumbnail_side > 0), in its
// own table, so the change feed and every read of `items` leave the images unread. JPEG bytes
// do not compress either.
constexpr char kMigrateToV2[] = R"sql(
ALTER TABLE collections ADD COLUMN thumbnail_side integer NOT NULL DEFAULT 0;
CREATE TABLE thumbnails (
  collection bytea NOT NULL REFERENCES collections(name),
  id bytea NOT NULL,
  jpeg bytea NOT NULL,
  PRIMARY KEY (collection, id)
);
ALTER TABLE thumbnails ALTER COLUMN jpeg SET STORAGE EXTERNAL;
)sql";

// Version 3 indexes the captions for lexical search (SearchCaptions): items.caption_words, a
// tsvector the database computes from the caption (a stored generated column, so every write of
// a caption — any statement, any transaction — updates it in the same row; adding it fills the
// existing rows), with a GIN index. The 'simple' configuration, deliberately: no stemming and
// no stop words, like the SQLite store's FTS5 unicode61 tokenizer, so both stores match the same
// words; captions are BLIP-2's English but a given caption may be in any language, and an
// English stemmer would mangle those. Captions are bytea (any bytes); one that is not UTF-8
// text (or holds a NUL, which text cannot) is indexed from its escaped form, so its ASCII
// words are still found and the write never fails because of it.
constexpr char kMigrateToV3[] = R"sql(
CREATE FUNCTION retrace_caption_words(caption bytea) RETURNS tsvector
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN to_tsvector('simple', convert_from(caption, 'UTF8'));
EXCEPTION WHEN others THEN
  RETURN to_tsvector('simple', encode(caption, 'escape'));
END $$;
ALTER TABLE items ADD COLUMN caption_words tsvector
  GENERATED ALWAYS AS (retrace_caption_words(caption)) STORED;
CREATE INDEX items_caption_words ON items USING GIN (caption_words);
)sql";

// kMigrations[v - 1] takes the schema from version v - 1 to v.
constexpr const char* kMigrations[] = {kSchemaV1, kMigrateToV2, kMigrateToV3};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == PostgresItemStore::kSchemaVersion);

// Any fixed number: the advisory lock that serialises migrations of one database.
constexpr int64_t kMigrationLock = 0x7265747261636531;  // "retrace1"
constexpr char kChannel[] = "retrace_changes";
constexpr char kNowMillis[] = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

std::string Quote(absl::string_view bytes) {
  return absl::StrCat("'", absl::CHexEscape(bytes), "'");
}

std::string BytesOrEmpty(const Result& r, int row, int col) {
  return r.IsNull(row, col) ? std::string() : std::string(r.Bytes(row, col));
}

// Placeholders returns "$first, $first+1, ..." for n parameters.
std::string Placeholders(int first, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) absl::StrAppend(&out, i == 0 ? "" : ", ", "$", first + i);
  return out;
}

constexpr char kItemColumns[] =
    "id, content_hash, position, created_at, updated_at, caption, attributes, clip_image, "
    "caption_text, image_features";
constexpr char kItemTextColumns[] =
    "id, content_hash, position, created_at, updated_at, caption, attributes";

absl::StatusOr<StoredItem> ReadItem(const Result& r, int row, int col, bool embeddings,
                                    const std::string& collection) {
  StoredItem item;
  item.id = std::string(r.Bytes(row, col));
  item.content_hash = static_cast<uint64_t>(r.Int64(row, col + 1));
  item.position = r.Int64(row, col + 2);
  item.created_ms = r.Int64(row, col + 3);
  item.updated_ms = r.Int64(row, col + 4);
  item.caption = std::string(r.Bytes(row, col + 5));
  absl::Status s = internal::DecodeAttributes(r.Bytes(row, col + 6), &item.attributes);
  if (embeddings) {
    if (s.ok()) s = internal::DecodeFloats(BytesOrEmpty(r, row, col + 7), &item.clip_image);
    if (s.ok()) s = internal::DecodeFloats(BytesOrEmpty(r, row, col + 8), &item.caption_text);
    if (s.ok()) s = internal::DecodeFloats(BytesOrEmpty(r, row, col + 9), &item.image_features);
  }
  if (!s.ok()) {
    return absl::DataLossError(
        absl::StrCat("item ", Quote(item.id), " of ", Quote(collection), ": ", s.message()));
  }
  return item;
}

// TakePosition starts a write: the next position, whose counter row stays locked until the
// transaction ends, so writes commit in position order (see the header).
absl::StatusOr<int64_t> TakePosition(Connection& conn) {
  RETRACE_ASSIGN_OR_RETURN(
      Result r, conn.Exec("UPDATE retrace_meta SET value = value + 1 WHERE key = 'last_position' "
                          "RETURNING value",
                          {}, "take a position"));
  return r.Int64(0, 0);
}

// Announce tells listeners about `position`; PostgreSQL delivers it when the transaction commits.
absl::Status Announce(Connection& conn, int64_t position) {
  return conn
      .Exec("SELECT pg_notify($1, $2)", {Param::Text(kChannel), Param::Text(absl::StrCat(position))},
            "notify")
      .status();
}

// TouchCollection records `position` as the collection's latest change; NOT_FOUND if absent.
absl::Status TouchCollection(Connection& conn, const std::string& collection, int64_t position) {
  RETRACE_ASSIGN_OR_RETURN(
      Result r, conn.Exec("UPDATE collections SET last_position = $2 WHERE name = $1",
                          {Param::Bytes(collection), Param::Int(position)}, "touch collection"));
  if (r.affected() == 0) {
    return absl::NotFoundError(absl::StrCat("collection ", Quote(collection), " not found"));
  }
  return absl::OkStatus();
}

absl::Status CheckCollection(Connection& conn, const std::string& collection) {
  RETRACE_ASSIGN_OR_RETURN(Result r, conn.Exec("SELECT 1 FROM collections WHERE name = $1",
                                               {Param::Bytes(collection)}, "look up collection"));
  if (r.rows() == 0) {
    return absl::NotFoundError(absl::StrCat("collection ", Quote(collection), " not found"));
  }
  return absl::OkStatus();
}

absl::Status Migrate(Connection& conn) {
  Transaction txn(&conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin());
  RETRACE_RETURN_IF_ERROR(
      conn.Exec("SELECT pg_advisory_xact_lock($1)", {Param::Int(kMigrationLock)}, "lock schema")
          .status());
  RETRACE_RETURN_IF_ERROR(conn.ExecSimple(
      "CREATE TABLE IF NOT EXISTS retrace_schema (version integer NOT NULL)", "schema table"));
  RETRACE_ASSIGN_OR_RETURN(Result r,
                           conn.Exec("SELECT max(version) FROM retrace_schema", {}, "schema"));
  int version = r.IsNull(0, 0) ? 0 : r.Int32(0, 0);
  if (version > PostgresItemStore::kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the database has retrace schema version ", version, ", written by a newer retrace; this "
        "build reads up to version ", PostgresItemStore::kSchemaVersion));
  }
  for (; version < PostgresItemStore::kSchemaVersion; ++version) {
    absl::Status s = conn.ExecSimple(kMigrations[version], absl::StrCat("migrate to schema ",
                                                                        version + 1));
    if (!s.ok() && s.code() == absl::StatusCode::kInternal &&
        s.message().find("already exists") != absl::string_view::npos) {
      return absl::FailedPreconditionError(absl::StrCat(
          s.message(), " (the database holds tables of these names that retrace did not make: "
                       "give retrace a database of its own)"));
    }
    RETRACE_RETURN_IF_ERROR(s);
    RETRACE_RETURN_IF_ERROR(conn.Exec("INSERT INTO retrace_schema VALUES ($1)",
                                      {Param::Int(version + 1)}, "record schema version")
                                .status());
  }
  return txn.Commit();
}

}  // namespace

// Pool: connections for calls, made on demand up to pool_size; a broken one is reset when it is
// next taken, so the store reconnects by itself after the server comes back.
class PostgresItemStore::Pool {
 public:
  Pool(std::string conninfo, int size, int timeout)
      : conninfo_(std::move(conninfo)), size_(size), timeout_(timeout) {}

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (conn_ != nullptr) pool_->Return(std::move(conn_));
    }
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  void Add(std::unique_ptr<Connection> conn) {
    absl::MutexLock lock(&mu_);
    ++open_;
    idle_.push_back(std::move(conn));
  }

  absl::StatusOr<Lease> Acquire() {
    std::unique_ptr<Connection> conn;
    {
      absl::MutexLock lock(&mu_);
      auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !idle_.empty() || open_ < size_;
      };
      mu_.Await(absl::Condition(&available));
      if (!idle_.empty()) {
        conn = std::move(idle_.back());
        idle_.pop_back();
      } else {
        ++open_;
      }
    }
    if (conn == nullptr) {
      auto opened = Connection::Open(conninfo_, timeout_);
      if (!opened.ok()) {
        absl::MutexLock lock(&mu_);
        --open_;
        return opened.status();
      }
      conn = std::move(*opened);
    } else if (!conn->Healthy()) {
      if (absl::Status s = conn->Reset(); !s.ok()) {
        Return(std::move(conn));
        return s;
      }
    } else if (conn->InTransaction()) {
      (void)conn->ExecSimple("ROLLBACK", "roll back");
    }
    return Lease(this, std::move(conn));
  }

 private:
  void Return(std::unique_ptr<Connection> conn) {
    absl::MutexLock lock(&mu_);
    idle_.push_back(std::move(conn));
  }

  const std::string conninfo_;
  const int size_;
  const int timeout_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::StatusOr<std::unique_ptr<PostgresItemStore>> PostgresItemStore::Open(
    const Options& options) {
  RETRACE_ASSIGN_OR_RETURN(internal::pg::ConnectionTarget target,
                           internal::pg::ParseTarget(options.conninfo));
  if (options.pool_size < 1 || options.pool_size > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("postgresql pool size ", options.pool_size, " is not in 1..256"));
  }
  RETRACE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> first,
                           Connection::Open(options.conninfo, options.connect_timeout_seconds));
  RETRACE_RETURN_IF_ERROR(Migrate(*first));
  std::unique_ptr<PostgresItemStore> store(new PostgresItemStore(options, target.ToString()));
  store->pool_->Add(std::move(first));
  RETRACE_ASSIGN_OR_RETURN(int64_t last, store->LastPosition());
  store->Saw(last);
  store->listener_ = std::thread([s = store.get()] { s->Listen(); });
  return store;
}

PostgresItemStore::PostgresItemStore(Options options, std::string target)
    : options_(std::move(options)),
      target_(std::move(target)),
      pool_(std::make_unique<Pool>(options_.conninfo, options_.pool_size,
                                   options_.connect_timeout_seconds)) {}

PostgresItemStore::~PostgresItemStore() {
  {
    absl::MutexLock lock(&seen_mu_);
    stopping_ = true;
  }
  if (listener_.joinable()) listener_.join();
}

std::string PostgresItemStore::Describe() const { return absl::StrCat("postgresql ", target_); }

void PostgresItemStore::Saw(int64_t position) const {
  absl::MutexLock lock(&seen_mu_);
  last_seen_ = std::max(last_seen_, position);
}

// Listen keeps one connection on LISTEN retrace_changes, and polls the counter every
// poll_interval besides (and reconnects, at that pace, when the connection is lost).
void PostgresItemStore::Listen() {
  std::unique_ptr<Connection> conn;
  absl::Time next_poll = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&seen_mu_);
      if (stopping_) return;
    }
    if (conn == nullptr || !conn->Healthy()) {
      conn.reset();
      auto opened = Connection::Open(options_.conninfo, options_.connect_timeout_seconds);
      if (opened.ok() && (*opened)->ExecSimple(absl::StrCat("LISTEN ", kChannel), "listen").ok()) {
        conn = std::move(*opened);
      }
    }
    if (conn != nullptr) {
      // Wait for a notification, up to the poll interval (in slices, to notice stopping_).
      pollfd fd{conn->Socket(), POLLIN, 0};
      const int ms = static_cast<int>(
          std::min<int64_t>(absl::ToInt64Milliseconds(options_.poll_interval), 200));
      if (::poll(&fd, 1, ms) > 0 && conn->ConsumeInput().ok()) {
        std::string payload;
        while (conn->NextNotification(&payload)) {
          int64_t position = 0;
          if (absl::SimpleAtoi(payload, &position)) Saw(position);
        }
      }
    } else {
      absl::SleepFor(absl::Milliseconds(200));
    }
    if (absl::Now() >= next_poll) {
      next_poll = absl::Now() + options_.poll_interval;
      if (auto last = LastPosition(); last.ok()) Saw(*last);
    }
  }
}

absl::StatusOr<int64_t> PostgresItemStore::WaitForChange(int64_t after,
                                                         absl::Duration timeout) const {
  absl::MutexLock lock(&seen_mu_);
  auto changed = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(seen_mu_) {
    return last_seen_ > after || stopping_;
  };
  seen_mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return last_seen_;
}

absl::StatusOr<int64_t> PostgresItemStore::LastPosition() const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  RETRACE_ASSIGN_OR_RETURN(
      Result r,
      conn->Exec("SELECT value FROM retrace_meta WHERE key = 'last_position'", {}, "read position"));
  return r.Int64(0, 0);
}

absl::StatusOr<int64_t> PostgresItemStore::CreateCollection(const CollectionRecord& record) {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin());
  RETRACE_ASSIGN_OR_RETURN(int64_t position, TakePosition(*conn));
  auto inserted = conn->Exec(
      absl::StrCat("INSERT INTO collections(name, shards, caption_index, caption_dim, clip_model, "
                   "captioner_model, image_index, image_dim, image_encoder_model, created_at, "
                   "created_position, last_position, thumbnail_side) VALUES ($1, $2, $3, $4, $5, "
                   "$6, $7, $8, $9, ",
                   kNowMillis, ", $10, $10, $11)"),
      {Param::Bytes(record.name), Param::Int(record.shards), Param::Bytes(record.caption_index),
       Param::Int(record.caption_dim), Param::Bytes(record.clip_model),
       Param::Bytes(record.captioner_model), Param::Bytes(record.image_index),
       Param::Int(record.image_dim), Param::Bytes(record.image_encoder_model),
       Param::Int(position), Param::Int(record.thumbnail_side)},
      absl::StrCat("create collection ", Quote(record.name)));
  if (!inserted.ok() && inserted.status().code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError(
        absl::StrCat("collection ", Quote(record.name), " already exists"));
  }
  RETRACE_RETURN_IF_ERROR(inserted.status());
  RETRACE_RETURN_IF_ERROR(Announce(*conn, position));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  Saw(position);
  return position;
}

absl::StatusOr<int64_t> PostgresItemStore::DropCollection(const std::string& name) {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin());
  RETRACE_ASSIGN_OR_RETURN(int64_t position, TakePosition(*conn));
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, name));
  for (const char* sql : {"DELETE FROM items WHERE collection = $1",
                          "DELETE FROM thumbnails WHERE collection = $1",
                          "DELETE FROM deletions WHERE collection = $1",
                          "DELETE FROM replica_positions WHERE collection = $1",
                          "DELETE FROM collections WHERE name = $1"}) {
    RETRACE_RETURN_IF_ERROR(
        conn->Exec(sql, {Param::Bytes(name)}, absl::StrCat("drop collection ", Quote(name)))
            .status());
  }
  RETRACE_RETURN_IF_ERROR(Announce(*conn, position));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  Saw(position);
  return position;
}

absl::StatusOr<StoreState> PostgresItemStore::ReadState() const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  StoreState state;
  {
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec("SELECT value FROM retrace_meta WHERE key = 'last_position'", {},
                             "read position"));
    state.last_position = r.Int64(0, 0);
  }
  RETRACE_ASSIGN_OR_RETURN(
      Result r,
      conn->Exec("SELECT name, shards, caption_index, caption_dim, clip_model, captioner_model, "
                 "created_position, image_index, image_dim, image_encoder_model, last_position, "
                 "thumbnail_side FROM collections ORDER BY name",
                 {}, "list collections"));
  for (int row = 0; row < r.rows(); ++row) {
    CollectionRecord& c = state.collections.emplace_back();
    c.name = std::string(r.Bytes(row, 0));
    c.shards = r.Int32(row, 1);
    c.caption_index = std::string(r.Bytes(row, 2));
    c.caption_dim = r.Int32(row, 3);
    c.clip_model = std::string(r.Bytes(row, 4));
    c.captioner_model = std::string(r.Bytes(row, 5));
    c.created_position = r.Int64(row, 6);
    c.image_index = std::string(r.Bytes(row, 7));
    c.image_dim = r.Int32(row, 8);
    c.image_encoder_model = std::string(r.Bytes(row, 9));
    c.last_change_position = r.Int64(row, 10);
    c.thumbnail_side = r.Int32(row, 11);
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  Saw(state.last_position);
  return state;
}

absl::StatusOr<int64_t> PostgresItemStore::PutItems(const std::string& collection,
                                                    std::vector<StoredItem> items) {
  RETRACE_ASSIGN_OR_RETURN(PutResult put, Put(collection, std::move(items), nullptr));
  return put.position;
}

absl::StatusOr<PutResult> PostgresItemStore::PutItemsChecked(const std::string& collection,
                                                            std::vector<StoredItem> items,
                                                            const ReplaceCheck& may_replace) {
  return Put(collection, std::move(items), &may_replace);
}

absl::StatusOr<PutResult> PostgresItemStore::Put(const std::string& collection,
                                                 std::vector<StoredItem> items,
                                                 const ReplaceCheck* may_replace) {
  absl::flat_hash_set<absl::string_view> seen;
  for (const StoredItem& item : items) {
    if (!seen.insert(item.id).second) {
      return absl::InvalidArgumentError(absl::StrCat("item id ", Quote(item.id),
                                                     " appears more than once in one batch for ",
                                                     Quote(collection), "; nothing was stored"));
    }
  }
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  if (items.empty()) {
    RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec("SELECT value FROM retrace_meta WHERE key = 'last_position'", {},
                             "read position"));
    return PutResult{r.Int64(0, 0), {}};
  }
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin());
  RETRACE_ASSIGN_OR_RETURN(int64_t position, TakePosition(*conn));
  RETRACE_RETURN_IF_ERROR(TouchCollection(*conn, collection, position));
  PutResult put;
  if (may_replace != nullptr) {
    // TakePosition's row lock orders every write: what this reads is every earlier commit, and
    // no other write comes between the check and this transaction's commit.
    std::vector<Param> params = {Param::Bytes(collection)};
    for (const StoredItem& item : items) params.push_back(Param::Bytes(item.id));
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec(absl::StrCat("SELECT ", kItemTextColumns,
                                          " FROM items WHERE collection = $1 AND id IN (",
                                          Placeholders(2, items.size()), ")"),
                             params, absl::StrCat("read items of ", Quote(collection),
                                                  " before replacing them")));
    absl::flat_hash_set<std::string> refused_ids;
    for (int row = 0; row < r.rows(); ++row) {
      RETRACE_ASSIGN_OR_RETURN(StoredItem stored, ReadItem(r, row, 0, false, collection));
      if (!(*may_replace)(stored)) refused_ids.insert(stored.id);
    }
    std::vector<StoredItem> accepted;
    for (size_t i = 0; i < items.size(); ++i) {
      if (refused_ids.contains(items[i].id)) {
        put.refused.push_back(i);
      } else {
        accepted.push_back(std::move(items[i]));
      }
    }
    items = std::move(accepted);
    // Nothing to write: the rollback gives the position back; the last one is the one before.
    if (items.empty()) {
      put.position = position - 1;
      return put;
    }
  }
  // One multi-row statement per chunk: a batch is one round trip, not one per item.
  constexpr size_t kRowsPerStatement = 256;
  for (size_t begin = 0; begin < items.size(); begin += kRowsPerStatement) {
    const size_t end = std::min(items.size(), begin + kRowsPerStatement);
    std::vector<Param> params = {Param::Bytes(collection), Param::Int(position)};
    std::vector<Param> id_params = {Param::Bytes(collection)};
    std::string values;
    std::string ids;
    for (size_t i = begin; i < end; ++i) {
      const StoredItem& item = items[i];
      const int p = static_cast<int>(params.size()) + 1;
      absl::StrAppend(&values, i == begin ? "" : ", ", "($1, $", p, ", $", p + 1, ", $2, ",
                      kNowMillis, ", ", kNowMillis, ", $", p + 2, ", $", p + 3, ", $", p + 4,
                      ", $", p + 5, ", $", p + 6, ")");
      absl::StrAppend(&ids, i == begin ? "" : ", ", "$", id_params.size() + 1);
      id_params.push_back(Param::Bytes(item.id));
      params.push_back(Param::Bytes(item.id));
      params.push_back(Param::Int(static_cast<int64_t>(item.content_hash)));
      params.push_back(Param::Bytes(item.caption));
      params.push_back(Param::Bytes(internal::EncodeAttributes(item.attributes)));
      params.push_back(Param::Bytes(internal::FloatBytes(item.clip_image)));
      params.push_back(Param::Bytes(internal::FloatBytes(item.caption_text)));
      params.push_back(Param::Bytes(internal::FloatBytes(item.image_features)));
    }
    RETRACE_RETURN_IF_ERROR(
        conn->Exec(absl::StrCat("INSERT INTO items(collection, id, content_hash, position, "
                                "created_at, updated_at, caption, attributes, clip_image, "
                                "caption_text, image_features) VALUES ",
                                values,
                                " ON CONFLICT (collection, id) DO UPDATE SET "
                                "content_hash = excluded.content_hash, "
                                "position = excluded.position, updated_at = excluded.updated_at, "
                                "caption = excluded.caption, attributes = excluded.attributes, "
                                "clip_image = excluded.clip_image, "
                                "caption_text = excluded.caption_text, "
                                "image_features = excluded.image_features"),
                   params, absl::StrCat("insert items into ", Quote(collection)))
            .status());
    RETRACE_RETURN_IF_ERROR(
        conn->Exec(absl::StrCat("DELETE FROM deletions WHERE collection = $1 AND id IN (", ids,
                                ")"),
                   id_params, "forget deletions")
            .status());
    // The batch's thumbnails replace the older versions' (a version without one shows none).
    RETRACE_RETURN_IF_ERROR(
        conn->Exec(absl::StrCat("DELETE FROM thumbnails WHERE collection = $1 AND id IN (", ids,
                                ")"),
                   id_params, "replace thumbnails")
            .status());
    std::vector<Param> thumbnail_params = {Param::Bytes(collection)};
    std::string thumbnail_values;
    for (size_t i = begin; i < end; ++i) {
      if (items[i].thumbnail.empty()) continue;
      const size_t p = thumbnail_params.size() + 1;
      absl::StrAppend(&thumbnail_values, thumbnail_values.empty() ? "" : ", ", "($1, $", p,
                      ", $", p + 1, ")");
      thumbnail_params.push_back(Param::Bytes(items[i].id));
      thumbnail_params.push_back(Param::Bytes(items[i].thumbnail));
    }
    if (!thumbnail_values.empty()) {
      RETRACE_RETURN_IF_ERROR(
          conn->Exec(absl::StrCat("INSERT INTO thumbnails(collection, id, jpeg) VALUES ",
                                  thumbnail_values),
                     thumbnail_params, "store thumbnails")
              .status());
    }
  }
  RETRACE_RETURN_IF_ERROR(Announce(*conn, position));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  Saw(position);
  put.position = position;
  return put;
}

absl::StatusOr<std::vector<std::optional<StoredItem>>> PostgresItemStore::GetItems(
    const std::string& collection, const std::vector<std::string>& ids) const {
  return ReadItems(collection, ids, /*embeddings=*/true);
}

absl::StatusOr<std::vector<std::optional<StoredItem>>>
PostgresItemStore::GetItemsWithoutEmbeddings(const std::string& collection,
                                             const std::vector<std::string>& ids) const {
  return ReadItems(collection, ids, /*embeddings=*/false);
}

absl::StatusOr<std::vector<std::optional<StoredItem>>> PostgresItemStore::ReadItems(
    const std::string& collection, const std::vector<std::string>& ids, bool embeddings) const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
  std::vector<std::optional<StoredItem>> found(ids.size());
  if (!ids.empty()) {
    std::vector<Param> params = {Param::Bytes(collection)};
    for (const std::string& id : ids) params.push_back(Param::Bytes(id));
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec(absl::StrCat("SELECT ", embeddings ? kItemColumns : kItemTextColumns,
                                          " FROM items WHERE collection = $1 AND id IN (",
                                          Placeholders(2, ids.size()), ")"),
                             params, absl::StrCat("get items of ", Quote(collection))));
    absl::flat_hash_map<std::string, StoredItem> by_id;
    for (int row = 0; row < r.rows(); ++row) {
      RETRACE_ASSIGN_OR_RETURN(StoredItem item, ReadItem(r, row, 0, embeddings, collection));
      by_id.emplace(item.id, std::move(item));
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = by_id.find(ids[i]);
      if (it != by_id.end()) found[i] = it->second;
    }
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return found;
}

absl::StatusOr<std::vector<std::optional<ItemVersion>>> PostgresItemStore::GetItemVersions(
    const std::string& collection, const std::vector<std::string>& ids) const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
  std::vector<std::optional<ItemVersion>> versions(ids.size());
  if (!ids.empty()) {
    std::vector<Param> params = {Param::Bytes(collection)};
    for (const std::string& id : ids) params.push_back(Param::Bytes(id));
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec(absl::StrCat("SELECT id, content_hash, position FROM items "
                                          "WHERE collection = $1 AND id IN (",
                                          Placeholders(2, ids.size()), ")"),
                             params, "get item versions"));
    absl::flat_hash_map<std::string, ItemVersion> by_id;
    for (int row = 0; row < r.rows(); ++row) {
      by_id[std::string(r.Bytes(row, 0))] =
          ItemVersion{static_cast<uint64_t>(r.Int64(row, 1)), r.Int64(row, 2)};
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = by_id.find(ids[i]);
      if (it != by_id.end()) versions[i] = it->second;
    }
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return versions;
}

absl::StatusOr<std::vector<StoredItem>> PostgresItemStore::ListItems(const std::string& collection,
                                                                     const std::string& after,
                                                                     int limit,
                                                                     bool embeddings) const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
  // bytea orders bytewise; the primary key (collection, id) serves the range.
  RETRACE_ASSIGN_OR_RETURN(
      Result r,
      conn->Exec(absl::StrCat("SELECT ", embeddings ? kItemColumns : kItemTextColumns,
                              " FROM items WHERE collection = $1 AND id > $2 ORDER BY id LIMIT $3"),
                 {Param::Bytes(collection), Param::Bytes(after), Param::Int(limit)},
                 absl::StrCat("list items of ", Quote(collection))));
  std::vector<StoredItem> items;
  items.reserve(r.rows());
  for (int row = 0; row < r.rows(); ++row) {
    RETRACE_ASSIGN_OR_RETURN(StoredItem item, ReadItem(r, row, 0, embeddings, collection));
    items.push_back(std::move(item));
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return items;
}

absl::StatusOr<std::vector<std::optional<std::string>>> PostgresItemStore::GetThumbnails(
    const std::string& collection, const std::vector<std::string>& ids) const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
  std::vector<std::optional<std::string>> found(ids.size());
  if (!ids.empty()) {
    std::vector<Param> params = {Param::Bytes(collection)};
    for (const std::string& id : ids) params.push_back(Param::Bytes(id));
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec(absl::StrCat("SELECT id, jpeg FROM thumbnails WHERE collection = $1 "
                                          "AND id IN (",
                                          Placeholders(2, ids.size()), ")"),
                             params, absl::StrCat("get thumbnails of ", Quote(collection))));
    absl::flat_hash_map<std::string, std::string> by_id;
    for (int row = 0; row < r.rows(); ++row) {
      by_id.emplace(std::string(r.Bytes(row, 0)), std::string(r.Bytes(row, 1)));
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = by_id.find(ids[i]);
      if (it != by_id.end()) found[i] = it->second;
    }
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return found;
}

absl::StatusOr<DeleteResult> PostgresItemStore::DeleteItems(const std::string& collection,
                                                            const std::vector<std::string>& ids) {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin());
  RETRACE_ASSIGN_OR_RETURN(int64_t position, TakePosition(*conn));
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
  DeleteResult result;
  result.present.assign(ids.size(), false);
  if (!ids.empty()) {
    std::vector<Param> params = {Param::Bytes(collection)};
    for (const std::string& id : ids) params.push_back(Param::Bytes(id));
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec(absl::StrCat("DELETE FROM items WHERE collection = $1 AND id IN (",
                                          Placeholders(2, ids.size()), ") RETURNING id"),
                             params, absl::StrCat("delete items of ", Quote(collection))));
    RETRACE_RETURN_IF_ERROR(
        conn->Exec(absl::StrCat("DELETE FROM thumbnails WHERE collection = $1 AND id IN (",
                                Placeholders(2, ids.size()), ")"),
                   params, absl::StrCat("delete thumbnails of ", Quote(collection)))
            .status());
    absl::flat_hash_set<std::string> removed;
    for (int row = 0; row < r.rows(); ++row) removed.insert(std::string(r.Bytes(row, 0)));
    absl::flat_hash_set<absl::string_view> reported;
    std::vector<Param> recorded = {Param::Bytes(collection), Param::Int(position)};
    std::string values;
    for (size_t i = 0; i < ids.size(); ++i) {
      // An id repeated in `ids` is present only at its first position.
      if (removed.contains(ids[i]) && reported.insert(ids[i]).second) {
        result.present[i] = true;
        absl::StrAppend(&values, values.empty() ? "" : ", ", "($1, $", recorded.size() + 1,
                        ", $2)");
        recorded.push_back(Param::Bytes(ids[i]));
      }
    }
    if (!values.empty()) {
      RETRACE_RETURN_IF_ERROR(
          conn->Exec(absl::StrCat("INSERT INTO deletions(collection, id, position) VALUES ",
                                  values,
                                  " ON CONFLICT (collection, id) DO UPDATE SET "
                                  "position = excluded.position"),
                     recorded, "record deletions")
              .status());
    }
  }
  if (std::none_of(result.present.begin(), result.present.end(), [](bool b) { return b; })) {
    // Nothing removed: no change, so no position; the rollback gives the counter back.
    result.position = position - 1;
    return result;
  }
  RETRACE_RETURN_IF_ERROR(TouchCollection(*conn, collection, position));
  RETRACE_RETURN_IF_ERROR(Announce(*conn, position));
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  Saw(position);
  result.position = position;
  return result;
}

absl::StatusOr<std::vector<CaptionMatch>> PostgresItemStore::SearchCaptions(
    const std::string& collection, const std::vector<std::string>& terms, int limit) const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
  std::vector<CaptionMatch> matches;
  if (terms.empty()) return matches;
  // Each term is a parameter that plainto_tsquery reads as plain words, never as tsquery
  // syntax; `||` ORs them.
  std::vector<Param> params = {Param::Bytes(collection), Param::Int(limit)};
  std::string query;
  for (const std::string& term : terms) {
    params.push_back(Param::Text(term));
    absl::StrAppend(&query, query.empty() ? "" : " || ", "plainto_tsquery('simple', $",
                    params.size(), ")");
  }
  RETRACE_ASSIGN_OR_RETURN(
      Result r,
      conn->Exec(absl::StrCat("SELECT id, ts_rank_cd(caption_words, q, 1)::float8 AS score "
                              "FROM items, (SELECT ",
                              query,
                              " AS q) AS query WHERE collection = $1 AND caption_words @@ q "
                              "ORDER BY score DESC, id LIMIT $2"),
                 params, absl::StrCat("search the captions of ", Quote(collection))));
  matches.reserve(r.rows());
  for (int row = 0; row < r.rows(); ++row) {
    matches.push_back(CaptionMatch{std::string(r.Bytes(row, 0)), r.Float8(row, 1)});
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return matches;
}

absl::StatusOr<int64_t> PostgresItemStore::CountItems(const std::string& collection) const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
  RETRACE_ASSIGN_OR_RETURN(Result r,
                           conn->Exec("SELECT count(*) FROM items WHERE collection = $1",
                                      {Param::Bytes(collection)}, "count items"));
  return r.Int64(0, 0);
}

absl::Status PostgresItemStore::ForEachItem(
    const std::string& collection,
    const std::function<absl::Status(const StoredItem&)>& visit) const {
  constexpr int kPage = 256;
  std::optional<std::string> after;
  std::vector<StoredItem> page;
  do {
    page.clear();
    {
      RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
      if (!after.has_value()) RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
      std::vector<Param> params = {Param::Bytes(collection), Param::Int(kPage)};
      if (after.has_value()) params.push_back(Param::Bytes(*after));
      RETRACE_ASSIGN_OR_RETURN(
          Result r, conn->Exec(absl::StrCat("SELECT ", kItemColumns,
                                            " FROM items WHERE collection = $1",
                                            after.has_value() ? " AND id > $3" : "",
                                            " ORDER BY id LIMIT $2"),
                               params, absl::StrCat("scan items of ", Quote(collection))));
      for (int row = 0; row < r.rows(); ++row) {
        RETRACE_ASSIGN_OR_RETURN(StoredItem item, ReadItem(r, row, 0, true, collection));
        page.push_back(std::move(item));
      }
    }
    for (const StoredItem& item : page) RETRACE_RETURN_IF_ERROR(visit(item));
    if (!page.empty()) after = page.back().id;
  } while (page.size() == kPage);
  return absl::OkStatus();
}

absl::StatusOr<ChangePage> PostgresItemStore::ReadChanges(const std::string& collection,
                                                          int64_t created_position,
                                                          const ChangeCursor& cursor,
                                                          int limit) const {
  if (limit < 1) return absl::InvalidArgumentError("ReadChanges: limit must be at least 1");
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  ChangePage page;
  {
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec("SELECT created_position, compacted_position, "
                             "(SELECT value FROM retrace_meta WHERE key = 'last_position') "
                             "FROM collections WHERE name = $1",
                             {Param::Bytes(collection)}, "look up collection"));
    if (r.rows() == 0) {
      return absl::NotFoundError(absl::StrCat("collection ", Quote(collection), " not found"));
    }
    RETRACE_RETURN_IF_ERROR(internal::CheckFeedState(collection, created_position,
                                                     cursor.position, r.Int64(0, 0),
                                                     r.Int64(0, 1)));
    page.last_position = r.Int64(0, 2);
  }
  std::vector<Change> puts, deletions;
  for (bool is_put : {true, false}) {
    std::vector<Change>& out = is_put ? puts : deletions;
    const std::string select =
        is_put ? absl::StrCat("SELECT position, ", kItemColumns, " FROM items")
               : std::string("SELECT position, id FROM deletions");
    // $1 collection, $2 the cursor's position, $3 the limit, $4 the cursor's id (first query).
    for (const char* rest : {"position = $2 AND id > $4 ORDER BY id",
                             "position > $2 ORDER BY position, id"}) {
      if (out.size() >= static_cast<size_t>(limit)) break;
      const bool rest_of_position = absl::string_view(rest).find("$4") != absl::string_view::npos;
      if (rest_of_position && !cursor.id.has_value()) continue;
      std::vector<Param> params = {Param::Bytes(collection), Param::Int(cursor.position),
                                   Param::Int(limit - static_cast<int64_t>(out.size()))};
      if (rest_of_position) params.push_back(Param::Bytes(*cursor.id));
      RETRACE_ASSIGN_OR_RETURN(
          Result r, conn->Exec(absl::StrCat(select, " WHERE collection = $1 AND ", rest,
                                            " LIMIT $3"),
                               params, absl::StrCat("read the changes of ", Quote(collection))));
      for (int row = 0; row < r.rows(); ++row) {
        Change& change = out.emplace_back();
        change.position = r.Int64(row, 0);
        if (is_put) {
          change.kind = Change::Kind::kPut;
          RETRACE_ASSIGN_OR_RETURN(change.item, ReadItem(r, row, 1, true, collection));
          change.id = change.item.id;
        } else {
          change.kind = Change::Kind::kDelete;
          change.id = std::string(r.Bytes(row, 1));
        }
      }
    }
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  Saw(page.last_position);
  page.more = puts.size() >= static_cast<size_t>(limit) ||
              deletions.size() >= static_cast<size_t>(limit);
  page.changes = internal::MergeChanges(std::move(puts), std::move(deletions), limit);
  page.next = page.changes.empty()
                  ? cursor
                  : ChangeCursor{page.changes.back().position,
                                 std::optional<std::string>(page.changes.back().id)};
  return page;
}

absl::Status PostgresItemStore::CompactDeletions(const std::string& collection, int64_t up_to) {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin());
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
  RETRACE_ASSIGN_OR_RETURN(
      Result last, conn->Exec("SELECT value FROM retrace_meta WHERE key = 'last_position'", {},
                              "read position"));
  if (up_to > last.Int64(0, 0)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot compact the deletions of ",
                                                   Quote(collection), " up to position ", up_to,
                                                   ": the latest is ", last.Int64(0, 0)));
  }
  RETRACE_RETURN_IF_ERROR(
      conn->Exec("DELETE FROM deletions WHERE collection = $1 AND position <= $2",
                 {Param::Bytes(collection), Param::Int(up_to)}, "compact deletions")
          .status());
  RETRACE_RETURN_IF_ERROR(
      conn->Exec("UPDATE collections SET compacted_position = greatest(compacted_position, $2) "
                 "WHERE name = $1",
                 {Param::Bytes(collection), Param::Int(up_to)}, "record compaction")
          .status());
  return txn.Commit();
}

absl::Status PostgresItemStore::ReportReplica(const ReplicaRecord& replica) {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin());
  RETRACE_RETURN_IF_ERROR(
      conn->Exec(absl::StrCat("INSERT INTO replicas(replica, address, started_at, heartbeat_at) "
                              "VALUES ($1, $2, $3, ", kNowMillis, ") ON CONFLICT (replica) DO "
                              "UPDATE SET address = excluded.address, "
                              "started_at = excluded.started_at, "
                              "heartbeat_at = excluded.heartbeat_at"),
                 {Param::Bytes(replica.replica), Param::Bytes(replica.address),
                  Param::Int(absl::ToUnixMillis(replica.started))},
                 "report replica")
          .status());
  RETRACE_RETURN_IF_ERROR(conn->Exec("DELETE FROM replica_positions WHERE replica = $1",
                                     {Param::Bytes(replica.replica)}, "clear replica positions")
                              .status());
  if (!replica.positions.empty()) {
    std::vector<Param> params = {Param::Bytes(replica.replica)};
    std::string values;
    for (const ReplicaCollectionPosition& p : replica.positions) {
      const size_t k = params.size() + 1;
      absl::StrAppend(&values, values.empty() ? "" : ", ", "($1, $", k, ", $", k + 1, ", $",
                      k + 2, ", $", k + 3, ")");
      params.push_back(Param::Bytes(p.collection));
      params.push_back(Param::Int(p.created_position));
      params.push_back(Param::Int(p.applied));
      params.push_back(Param::Int(p.resume));
    }
    RETRACE_RETURN_IF_ERROR(
        conn->Exec(absl::StrCat("INSERT INTO replica_positions(replica, collection, "
                                "created_position, applied, resume) VALUES ",
                                values),
                   params, "record replica positions")
            .status());
  }
  return txn.Commit();
}

absl::StatusOr<std::vector<ReplicaRecord>> PostgresItemStore::ListReplicas() const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  std::vector<ReplicaRecord> replicas;
  {
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec("SELECT replica, address, started_at, heartbeat_at FROM replicas "
                             "ORDER BY replica",
                             {}, "list replicas"));
    for (int row = 0; row < r.rows(); ++row) {
      ReplicaRecord& rec = replicas.emplace_back();
      rec.replica = std::string(r.Bytes(row, 0));
      rec.address = std::string(r.Bytes(row, 1));
      rec.started = absl::FromUnixMillis(r.Int64(row, 2));
      rec.heartbeat = absl::FromUnixMillis(r.Int64(row, 3));
    }
  }
  RETRACE_ASSIGN_OR_RETURN(
      Result r, conn->Exec("SELECT replica, collection, created_position, applied, resume "
                           "FROM replica_positions ORDER BY replica, collection",
                           {}, "list replica positions"));
  for (int row = 0; row < r.rows(); ++row) {
    const absl::string_view replica = r.Bytes(row, 0);
    for (ReplicaRecord& rec : replicas) {
      if (rec.replica != replica) continue;
      ReplicaCollectionPosition& p = rec.positions.emplace_back();
      p.collection = std::string(r.Bytes(row, 1));
      p.created_position = r.Int64(row, 2);
      p.applied = r.Int64(row, 3);
      p.resume = r.Int64(row, 4);
    }
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return replicas;
}

absl::Status PostgresItemStore::ForgetReplica(const std::string& replica) {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  RETRACE_ASSIGN_OR_RETURN(Result r, conn->Exec("DELETE FROM replicas WHERE replica = $1",
                                                {Param::Bytes(replica)}, "forget replica"));
  if (r.affected() == 0) {
    return absl::NotFoundError(absl::StrCat("replica ", Quote(replica), " not found"));
  }
  return absl::OkStatus();
}

}  // namespace retrace::store
