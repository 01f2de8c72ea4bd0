#include "core/text/internal/unicode.h"

#include <unicode/uchar.h>
#include <unicode/utf8.h>

namespace retrace::text::internal {

bool IsLetter(char32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_L_MASK) != 0; }

bool IsNumber(char32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_N_MASK) != 0; }

bool IsRegexSpace(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

bool IsPythonSpace(char32_t c) {
  // The same definition as CPython's makeunicodedata.py uses for str.isspace().
  const UChar32 cp = static_cast<UChar32>(c);
  if (u_charType(cp) == U_SPACE_SEPARATOR) return true;
  const UCharDirection dir = u_charDirection(cp);
  return dir == U_WHITE_SPACE_NEUTRAL || dir == U_BLOCK_SEPARATOR || dir == U_SEGMENT_SEPARATOR;
}

bool IsValidUtf8(std::string_view bytes) {
  const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
  const int64_t length = static_cast<int64_t>(bytes.size());
  for (int64_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT(s, i, length, c);
    if (c < 0) return false;
  }
  return true;
}

std::u32string DecodeUtf8(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  const auto* s = reinterpret_cast<const uint8_t*>(utf8.data());
  const int64_t length = static_cast<int64_t>(utf8.size());
  // ICU >= 60 advances past exactly one maximal ill-formed subsequence per U+FFFD.
  for (int64_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT_OR_FFFD(s, i, length, c);
    out.push_back(static_cast<char32_t>(c));
  }
  return out;
}

void AppendUtf8(char32_t c, std::string* out) {
  uint8_t buffer[U8_MAX_LENGTH];
  int32_t n = 0;
  U8_APPEND_UNSAFE(buffer, n, static_cast<UChar32>(c));
  out->append(reinterpret_cast<const char*>(buffer), n);
}

std::string EncodeUtf8(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) AppendUtf8(c, &out);
  return out;
}

std::string ReplaceInvalidUtf8(std::string_view bytes) {
  const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
  const int64_t length = static_cast<int64_t>(bytes.size());
  std::string out;
  out.reserve(bytes.size());
  int64_t copied = 0;  // bytes [copied, i) are valid and not yet appended
  for (int64_t i = 0; i < length;) {
    const int64_t start = i;
    UChar32 c;
    U8_NEXT(s, i, length, c);
    if (c < 0) {
      out.append(bytes.data() + copied, start - copied);
      out.append("\xEF\xBF\xBD");
      copied = i;
    }
  }
  out.append(bytes.data() + copied, length - copied);
  return out;
}

namespace {

struct ByteTables {
  std::array<char32_t, 256> byte_to_unicode{};
  std::array<int32_t, 256> order{};
  std::array<int16_t, 0x144> unicode_to_byte{};  // every mapped code point is below U+0144
};

// The port of bytes_to_unicode() from GPT-2's encoder.py, which CLIP copies.
ByteTables MakeByteTables() {
  ByteTables t;
  t.unicode_to_byte.fill(-1);
  int32_t position = 0;
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  for (int b = 0; b < 256; ++b) {
    if (printable(b)) {
      t.byte_to_unicode[b] = static_cast<char32_t>(b);
      t.order[b] = position++;
    }
  }
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    if (!printable(b)) {
      t.byte_to_unicode[b] = static_cast<char32_t>(256 + extra++);
      t.order[b] = position++;
    }
  }
  for (int b = 0; b < 256; ++b) t.unicode_to_byte[t.byte_to_unicode[b]] = static_cast<int16_t>(b);
  return t;
}

const ByteTables& Tables() {
  static const ByteTables kTables = MakeByteTables();
  return kTables;
}

}  // namespace

const std::array<char32_t, 256>& ByteToUnicode() { return Tables().byte_to_unicode; }

const std::array<int32_t, 256>& ByteOrder() { return Tables().order; }

int UnicodeToByte(char32_t c) {
  const auto& table = Tables().unicode_to_byte;
  return c < table.size() ? table[c] : -1;
}

}  // namespace retrace::text::internal
