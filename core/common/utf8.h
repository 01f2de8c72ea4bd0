// utf8.h — UTF-8 well-formedness, shared by the engine (which validates every text field) and
// the client (which refuses to send what protobuf would reject for the whole message).
//
// Thread-safety: pure function.
//
//   if (!IsValidUtf8(id)) return absl::InvalidArgumentError("id: not valid UTF-8");
#ifndef RETRACE_CORE_COMMON_UTF8_H_
#define RETRACE_CORE_COMMON_UTF8_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace retrace {

// IsValidUtf8 says whether `s` is well-formed UTF-8: no stray or missing continuation bytes,
// no overlong forms, no surrogates, nothing above U+10FFFF.
inline bool IsValidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    int extra;
    uint32_t cp;
    if (c < 0x80) {
      ++p;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += extra + 1;
  }
  return true;
}

}  // namespace retrace

#endif  // RETRACE_CORE_COMMON_UTF8_H_
