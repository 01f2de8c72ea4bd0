#include "core/store/internal/sqlite_schema.h"

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/sqlite_item_store.h"

namespace retrace::store::internal {
namespace {

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

}  // namespace

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

}  // namespace retrace::store::internal
