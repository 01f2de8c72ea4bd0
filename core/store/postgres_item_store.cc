#include "core/store/postgres_item_store.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/internal/pg_connection.h"
#include "core/store/internal/pg_pool.h"
#include "core/store/internal/pg_rows.h"
#include "core/store/internal/pg_schema.h"
#include "core/store/internal/record_codec.h"

// The schema is in internal/pg_schema.cc; the change feed, positions and replicas' records in
// postgres_item_store_changes.cc.
namespace retrace::store {

using internal::Quote;
using internal::pg::Announce;
using internal::pg::BytesOrEmpty;
using internal::pg::CheckCollection;
using internal::pg::Connection;
using internal::pg::kItemColumns;
using internal::pg::kItemTextColumns;
using internal::pg::kNowMillis;
using internal::pg::Param;
using internal::pg::Placeholders;
using internal::pg::ReadItem;
using internal::pg::Result;
using internal::pg::TakePosition;
using internal::pg::TouchCollection;
using internal::pg::Transaction;

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
  RETRACE_RETURN_IF_ERROR(internal::pg::MigrateSchema(*first));
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
      pool_(std::make_unique<internal::pg::Pool>(options_.conninfo, options_.pool_size,
                                   options_.connect_timeout_seconds)) {}

PostgresItemStore::~PostgresItemStore() {
  {
    absl::MutexLock lock(&seen_mu_);
    stopping_ = true;
  }
  if (listener_.joinable()) listener_.join();
}

std::string PostgresItemStore::Describe() const { return absl::StrCat("postgresql ", target_); }

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
  return Put(collection, std::move(items), may_replace ? &may_replace : nullptr);
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

}  // namespace retrace::store
