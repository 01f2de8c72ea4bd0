// record_codec.h — how SqliteItemStore lays an item's fields out in BLOB columns.
//
// Attributes: the map's entries in key order, each as varint(key size) key varint(value size)
// value, where varint is unsigned LEB128 (7 bits a byte, low bits first). An empty map is an
// empty BLOB. Binary-safe (any bytes in keys and values) and compact; JSON was not used because
// it cannot hold non-UTF-8 bytes without escaping them away.
// Embeddings: the floats as IEEE-754 float32, little-endian, packed (4 bytes each). On a
// little-endian host that is the vector's memory, bound without copying.
//
// Thread-safety: pure functions.
//
//   std::string blob = EncodeAttributes(item.attributes);
//   RETRACE_RETURN_IF_ERROR(DecodeAttributes(blob, &item.attributes));
#ifndef RETRACE_CORE_STORE_INTERNAL_RECORD_CODEC_H_
#define RETRACE_CORE_STORE_INTERNAL_RECORD_CODEC_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace retrace::store::internal {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "embeddings are stored as little-endian float32 straight from memory");

// EncodeAttributes returns the attribute BLOB for `attributes` (format in the banner).
std::string EncodeAttributes(const std::map<std::string, std::string>& attributes);

// DecodeAttributes parses an attribute BLOB into *out (cleared first). DATA_LOSS if `blob` is
// malformed: a truncated or overlong varint, a size past the end, or a repeated key.
absl::Status DecodeAttributes(absl::string_view blob, std::map<std::string, std::string>* out);

// FloatBytes views `values` as their stored bytes; valid while `values` is unchanged.
inline absl::string_view FloatBytes(const std::vector<float>& values) {
  return absl::string_view(reinterpret_cast<const char*>(values.data()),
                           values.size() * sizeof(float));
}

// DecodeFloats copies an embedding BLOB into *out. DATA_LOSS if its size is not a multiple of 4.
absl::Status DecodeFloats(absl::string_view blob, std::vector<float>* out);

// Quote renders caller bytes (ids, collection names) for a message: C-escaped, in single
// quotes, so that any bytes print safely. Both stores' messages use it.
std::string Quote(absl::string_view bytes);

}  // namespace retrace::store::internal

#endif  // RETRACE_CORE_STORE_INTERNAL_RECORD_CODEC_H_
