#include "core/store/internal/pg_schema.h"

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/postgres_item_store.h"

namespace retrace::store::internal::pg {
namespace {

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

}  // namespace

absl::Status MigrateSchema(Connection& conn) {
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

}  // namespace retrace::store::internal::pg
