// item_rows.h — what SqliteItemStore's two source files (sqlite_item_store.cc and
// sqlite_item_store_changes.cc) share: the item columns they read and how a row becomes a
// StoredItem, the collection check every call starts with, and the store's clock.
//
// Thread-safety: as the Connection passed in (none of its own).
//
//   RETRACE_RETURN_IF_ERROR(CheckCollection(conn, collection));
//   RETRACE_ASSIGN_OR_RETURN(StoredItem item, ReadItem(stmt, 0, collection));
#ifndef RETRACE_CORE_STORE_INTERNAL_ITEM_ROWS_H_
#define RETRACE_CORE_STORE_INTERNAL_ITEM_ROWS_H_

#include <cstdint>
#include <string>

#include "absl/base/casts.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/store/internal/record_codec.h"
#include "core/store/internal/sqlite_connection.h"
#include "core/store/item_store.h"

namespace retrace::store::internal {

// kItemColumns are the columns of `items` that make a StoredItem, in ReadItem's order.
inline constexpr char kItemColumns[] =
    "id, content_hash, seq, created_at, updated_at, caption, attributes, clip_image, "
    "caption_text, image_features";

// kItemTextColumns: kItemColumns without the embeddings, in ReadItemText's order.
inline constexpr char kItemTextColumns[] =
    "id, content_hash, seq, created_at, updated_at, caption, attributes";

// ReadItem decodes the current row of `stmt`, whose columns from `col` on are kItemColumns.
// DATA_LOSS naming the item and `collection` if a stored BLOB is malformed.
absl::StatusOr<StoredItem> ReadItem(Statement& stmt, int col, const std::string& collection);
// ReadItemText decodes a row whose columns from `col` on are kItemTextColumns.
absl::StatusOr<StoredItem> ReadItemText(Statement& stmt, int col, const std::string& collection);

// CheckCollection returns OK if `name` is a collection, else NOT_FOUND.
absl::Status CheckCollection(Connection& conn, const std::string& name);

// NowMillis: the store's clock for created_at / updated_at / heartbeats, Unix milliseconds.
int64_t NowMillis();

// StoredHash and LoadedHash convert a content hash to and from the signed 64-bit integer that
// SQLite stores, keeping all 64 bits.
inline int64_t StoredHash(uint64_t hash) { return absl::bit_cast<int64_t>(hash); }
inline uint64_t LoadedHash(int64_t stored) { return absl::bit_cast<uint64_t>(stored); }

}  // namespace retrace::store::internal

#endif  // RETRACE_CORE_STORE_INTERNAL_ITEM_ROWS_H_
