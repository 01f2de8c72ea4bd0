// pg_rows.h — what PostgresItemStore's source files (postgres_item_store.cc and
// postgres_item_store_changes.cc) share: the item columns they read and how a row becomes a
// StoredItem, the statements every write starts and ends with (a position, the collection's
// last change, the notification), and the collection check.
//
// Thread-safety: as the Connection passed in (none of its own).
//
//   RETRACE_ASSIGN_OR_RETURN(int64_t position, TakePosition(conn));
//   RETRACE_ASSIGN_OR_RETURN(StoredItem item, ReadItem(r, row, 0, /*embeddings=*/true, name));
#ifndef RETRACE_CORE_STORE_INTERNAL_PG_ROWS_H_
#define RETRACE_CORE_STORE_INTERNAL_PG_ROWS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/store/internal/pg_connection.h"
#include "core/store/item_store.h"

namespace retrace::store::internal::pg {

// kChannel: the LISTEN/NOTIFY channel that announces each committed position.
inline constexpr char kChannel[] = "retrace_changes";
// kNowMillis: the store's clock, in SQL, for created_at / updated_at.
inline constexpr char kNowMillis[] = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

// kItemColumns are the columns of `items` that make a StoredItem, in ReadItem's order;
// kItemTextColumns the same without the embeddings.
inline constexpr char kItemColumns[] =
    "id, content_hash, position, created_at, updated_at, caption, attributes, clip_image, "
    "caption_text, image_features";
inline constexpr char kItemTextColumns[] =
    "id, content_hash, position, created_at, updated_at, caption, attributes";

// BytesOrEmpty: a column's bytes, empty for NULL.
std::string BytesOrEmpty(const Result& r, int row, int col);

// Placeholders returns "$first, $first+1, ..." for n parameters.
std::string Placeholders(int first, size_t n);

// ReadItem decodes row `row`, whose columns from `col` on are kItemColumns (kItemTextColumns
// without `embeddings`). DATA_LOSS naming the item and `collection` if a stored value is
// malformed.
absl::StatusOr<StoredItem> ReadItem(const Result& r, int row, int col, bool embeddings,
                                    const std::string& collection);

// TakePosition starts a write: the next position, whose counter row stays locked until the
// transaction ends, so writes commit in position order (see postgres_item_store.h).
absl::StatusOr<int64_t> TakePosition(Connection& conn);

// Announce tells listeners about `position`; PostgreSQL delivers it when the transaction commits.
absl::Status Announce(Connection& conn, int64_t position);

// TouchCollection records `position` as the collection's latest change; NOT_FOUND if absent.
absl::Status TouchCollection(Connection& conn, const std::string& collection, int64_t position);

// CheckCollection returns OK if `collection` exists, else NOT_FOUND.
absl::Status CheckCollection(Connection& conn, const std::string& collection);

}  // namespace retrace::store::internal::pg

#endif  // RETRACE_CORE_STORE_INTERNAL_PG_ROWS_H_
