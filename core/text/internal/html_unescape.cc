#include "core/text/internal/html_unescape.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "core/text/internal/unicode.h"

namespace retrace::text::internal {
namespace {

struct HtmlEntity {
  std::string_view name;
  std::string_view value;
};

struct InvalidCharref {
  uint32_t number;
  std::string_view value;
};

#include "core/text/internal/html_entities.inc"

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr uint32_t kTooLarge = 0x110000;                   // numbers saturate here
constexpr int kMaxNameCodePoints = 32;                     // `[^\t\n\f <&#;]{1,32}`

const std::string_view* FindEntity(std::string_view name) {
  auto it = std::lower_bound(std::begin(kHtmlEntities), std::end(kHtmlEntities), name,
                             [](const HtmlEntity& e, std::string_view n) { return e.name < n; });
  return it != std::end(kHtmlEntities) && it->name == name ? &it->value : nullptr;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// AppendNumericReference appends what Python's _replace_charref gives for `number`.
void AppendNumericReference(uint32_t number, std::string* out) {
  auto invalid = std::lower_bound(std::begin(kInvalidCharrefs), std::end(kInvalidCharrefs), number,
                                  [](const InvalidCharref& r, uint32_t n) { return r.number < n; });
  if (invalid != std::end(kInvalidCharrefs) && invalid->number == number) {
    out->append(invalid->value);
    return;
  }
  if ((number >= 0xD800 && number <= 0xDFFF) || number > 0x10FFFF) {
    out->append(kReplacement);
    return;
  }
  if (std::binary_search(std::begin(kInvalidCodepoints), std::end(kInvalidCodepoints), number)) {
    return;
  }
  AppendUtf8(static_cast<char32_t>(number), out);
}

// ReplaceReference handles the '&' at text[amp]: it appends the replacement of the
// reference that starts there (or the '&' alone when none does) and returns the index just
// past what it consumed.
size_t ReplaceReference(std::string_view text, size_t amp, std::string* out) {
  const size_t n = text.size();
  size_t i = amp + 1;
  if (i < n && text[i] == '#') {
    // `#[0-9]+;?` or `#[xX][0-9a-fA-F]+;?`
    uint32_t number = 0;
    size_t j = i + 1;
    if (j < n && IsDigit(text[j])) {
      for (; j < n && IsDigit(text[j]); ++j) {
        number = std::min<uint32_t>(number * 10 + (text[j] - '0'), kTooLarge);
      }
    } else if (j + 1 < n && (text[j] == 'x' || text[j] == 'X') && HexValue(text[j + 1]) >= 0) {
      for (++j; j < n && HexValue(text[j]) >= 0; ++j) {
        number = std::min<uint32_t>(number * 16 + HexValue(text[j]), kTooLarge);
      }
    } else {
      out->push_back('&');
      return amp + 1;
    }
    if (j < n && text[j] == ';') ++j;
    AppendNumericReference(number, out);
    return j;
  }

  // `[^\t\n\f <&#;]{1,32};?`, counted in code points. `ends[k]` is the byte length of the
  // first k code points of the name.
  size_t ends[kMaxNameCodePoints + 1];
  int count = 0;
  ends[0] = 0;
  size_t j = i;
  while (j < n && count < kMaxNameCodePoints) {
    const char c = text[j];
    if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
        c == ';') {
      break;
    }
    ++j;
    while (j < n && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80) ++j;
    ends[++count] = j - i;
  }
  if (count == 0) {
    out->push_back('&');
    return amp + 1;
  }
  if (j < n && text[j] == ';') ++j;
  const std::string_view name = text.substr(i, j - i);  // with its ';', if any
  if (const std::string_view* value = FindEntity(name)) {
    out->append(*value);
    return j;
  }
  // The longest prefix of at least two code points that is an entity (only the legacy
  // names without ';' can match, since ';' can only be last).
  const int name_code_points = count + (name.back() == ';' ? 1 : 0);
  for (int x = name_code_points - 1; x > 1; --x) {
    const size_t prefix_bytes = ends[x];  // x <= count: a prefix never includes the ';'
    if (const std::string_view* value = FindEntity(name.substr(0, prefix_bytes))) {
      out->append(*value);
      out->append(name.substr(prefix_bytes));
      return j;
    }
  }
  out->push_back('&');
  out->append(name);
  return j;
}

}  // namespace

std::string HtmlUnescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t amp = text.find('&', i);
    if (amp == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, amp - i));
    i = ReplaceReference(text, amp, &out);
  }
  return out;
}

}  // namespace retrace::text::internal
