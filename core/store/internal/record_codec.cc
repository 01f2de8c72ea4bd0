#include "core/store/internal/record_codec.h"

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace retrace::store::internal {
namespace {

void PutVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// GetVarint reads a varint at *pos, advancing it. False if truncated or longer than 64 bits.
bool GetVarint(absl::string_view in, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && *pos < in.size(); shift += 7) {
    uint64_t byte = static_cast<unsigned char>(in[(*pos)++]);
    if (shift == 63 && byte > 1) return false;  // bits past the 64th
    *value |= (byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// GetBytes reads one size-prefixed string at *pos, advancing it.
bool GetBytes(absl::string_view in, size_t* pos, absl::string_view* bytes) {
  uint64_t size = 0;
  if (!GetVarint(in, pos, &size) || size > in.size() - *pos) return false;
  *bytes = in.substr(*pos, size);
  *pos += size;
  return true;
}

}  // namespace

std::string EncodeAttributes(const std::map<std::string, std::string>& attributes) {
  std::string out;
  for (const auto& [key, value] : attributes) {
    PutVarint(key.size(), &out);
    out += key;
    PutVarint(value.size(), &out);
    out += value;
  }
  return out;
}

absl::Status DecodeAttributes(absl::string_view blob, std::map<std::string, std::string>* out) {
  out->clear();
  size_t pos = 0;
  while (pos < blob.size()) {
    absl::string_view key, value;
    if (!GetBytes(blob, &pos, &key) || !GetBytes(blob, &pos, &value)) {
      return absl::DataLossError(
          absl::StrCat("attributes are malformed at byte ", pos, " of ", blob.size()));
    }
    if (!out->emplace(std::string(key), std::string(value)).second) {
      return absl::DataLossError("attributes repeat a key");
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeFloats(absl::string_view blob, std::vector<float>* out) {
  if (blob.size() % sizeof(float) != 0) {
    return absl::DataLossError(
        absl::StrCat("embedding has ", blob.size(), " bytes, not a multiple of 4"));
  }
  out->resize(blob.size() / sizeof(float));
  if (!blob.empty()) std::memcpy(out->data(), blob.data(), blob.size());
  return absl::OkStatus();
}

std::string Quote(absl::string_view bytes) {
  return absl::StrCat("'", absl::CHexEscape(bytes), "'");
}

}  // namespace retrace::store::internal
