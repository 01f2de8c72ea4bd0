#include "core/store/internal/pg_rows.h"

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/internal/record_codec.h"

namespace retrace::store::internal::pg {

std::string BytesOrEmpty(const Result& r, int row, int col) {
  return r.IsNull(row, col) ? std::string() : std::string(r.Bytes(row, col));
}

std::string Placeholders(int first, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) absl::StrAppend(&out, i == 0 ? "" : ", ", "$", first + i);
  return out;
}

absl::StatusOr<StoredItem> ReadItem(const Result& r, int row, int col, bool embeddings,
                                    const std::string& collection) {
  StoredItem item;
  item.id = std::string(r.Bytes(row, col));
  item.content_hash = static_cast<uint64_t>(r.Int64(row, col + 1));
  item.position = r.Int64(row, col + 2);
  item.created_ms = r.Int64(row, col + 3);
  item.updated_ms = r.Int64(row, col + 4);
  item.caption = std::string(r.Bytes(row, col + 5));
  absl::Status s = DecodeAttributes(r.Bytes(row, col + 6), &item.attributes);
  if (embeddings) {
    if (s.ok()) s = DecodeFloats(BytesOrEmpty(r, row, col + 7), &item.clip_image);
    if (s.ok()) s = DecodeFloats(BytesOrEmpty(r, row, col + 8), &item.caption_text);
    if (s.ok()) s = DecodeFloats(BytesOrEmpty(r, row, col + 9), &item.image_features);
  }
  if (!s.ok()) {
    return absl::DataLossError(
        absl::StrCat("item ", Quote(item.id), " of ", Quote(collection), ": ", s.message()));
  }
  return item;
}

absl::StatusOr<int64_t> TakePosition(Connection& conn) {
  RETRACE_ASSIGN_OR_RETURN(
      Result r, conn.Exec("UPDATE retrace_meta SET value = value + 1 WHERE key = 'last_position' "
                          "RETURNING value",
                          {}, "take a position"));
  return r.Int64(0, 0);
}

absl::Status Announce(Connection& conn, int64_t position) {
  return conn
      .Exec("SELECT pg_notify($1, $2)", {Param::Text(kChannel), Param::Text(absl::StrCat(position))},
            "notify")
      .status();
}

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

}  // namespace retrace::store::internal::pg
