#include "core/store/internal/item_rows.h"

#include <sqlite3.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/internal/record_codec.h"

namespace retrace::store::internal {

absl::StatusOr<StoredItem> ReadItem(Statement& stmt, int col, const std::string& collection) {
  StoredItem item;
  item.id = std::string(stmt.ColumnBytes(col));
  item.content_hash = LoadedHash(stmt.ColumnInt64(col + 1));
  item.position = stmt.ColumnInt64(col + 2);
  item.created_ms = stmt.ColumnInt64(col + 3);
  item.updated_ms = stmt.ColumnInt64(col + 4);
  item.caption = std::string(stmt.ColumnBytes(col + 5));
  absl::Status status = DecodeAttributes(stmt.ColumnBytes(col + 6), &item.attributes);
  if (status.ok()) status = DecodeFloats(stmt.ColumnBytes(col + 7), &item.clip_image);
  if (status.ok()) status = DecodeFloats(stmt.ColumnBytes(col + 8), &item.caption_text);
  if (status.ok()) status = DecodeFloats(stmt.ColumnBytes(col + 9), &item.image_features);
  if (!status.ok()) {
    return absl::DataLossError(
        absl::StrCat("item ", Quote(item.id), " of ", Quote(collection), ": ", status.message()));
  }
  return item;
}

absl::StatusOr<StoredItem> ReadItemText(Statement& stmt, int col, const std::string& collection) {
  StoredItem item;
  item.id = std::string(stmt.ColumnBytes(col));
  item.content_hash = LoadedHash(stmt.ColumnInt64(col + 1));
  item.position = stmt.ColumnInt64(col + 2);
  item.created_ms = stmt.ColumnInt64(col + 3);
  item.updated_ms = stmt.ColumnInt64(col + 4);
  item.caption = std::string(stmt.ColumnBytes(col + 5));
  if (absl::Status status = DecodeAttributes(stmt.ColumnBytes(col + 6), &item.attributes);
      !status.ok()) {
    return absl::DataLossError(
        absl::StrCat("item ", Quote(item.id), " of ", Quote(collection), ": ", status.message()));
  }
  return item;
}

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

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace retrace::store::internal
