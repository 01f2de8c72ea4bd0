// unicode.h — the Unicode character classes, UTF-8 helpers and byte-to-unicode table that the
// CLIP and GPT-2 tokenizers share. The classes are defined to match the Python references
// (the `regex` module's \s, \p{L}, \p{N}, and str.isspace), using ICU's character database.
//
// Thread-safety: free functions without mutable state; safe for concurrent use.
//
//   std::u32string cps = DecodeUtf8(text);                 // invalid bytes become U+FFFD
//   if (IsLetter(cps[0])) { ... }
#ifndef RETRACE_CORE_TEXT_INTERNAL_UNICODE_H_
#define RETRACE_CORE_TEXT_INTERNAL_UNICODE_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace retrace::text::internal {

// IsLetter returns whether `c` is in \p{L} (general categories Lu, Ll, Lt, Lm, Lo).
bool IsLetter(char32_t c);

// IsNumber returns whether `c` is in \p{N} (general categories Nd, Nl, No).
bool IsNumber(char32_t c);

// IsRegexSpace returns whether the Python `regex` module's \s matches `c`: the Unicode
// White_Space property (25 code points; U+001C..U+001F are not in it).
bool IsRegexSpace(char32_t c);

// IsPythonSpace returns Python's str.isspace() for `c` (used by str.strip()): bidi class WS,
// B or S, or category Zs. It is IsRegexSpace plus U+001C..U+001F.
bool IsPythonSpace(char32_t c);

// IsValidUtf8 returns whether `bytes` is well-formed UTF-8.
bool IsValidUtf8(std::string_view bytes);

// DecodeUtf8 returns the code points of `utf8`. Each maximal ill-formed subsequence becomes
// one U+FFFD, as Python's bytes.decode("utf-8", errors="replace") does.
std::u32string DecodeUtf8(std::string_view utf8);

// AppendUtf8 appends the UTF-8 encoding of `c` to `out`. REQUIRES: `c` is a Unicode scalar
// value (not a surrogate, at most U+10FFFF).
void AppendUtf8(char32_t c, std::string* out);

// EncodeUtf8 returns the UTF-8 encoding of `cps` (REQUIRES as AppendUtf8).
std::string EncodeUtf8(std::u32string_view cps);

// ReplaceInvalidUtf8 returns `bytes` with each maximal ill-formed subsequence replaced by
// U+FFFD (as Python's errors="replace" and Rust's from_utf8_lossy); valid input is returned
// unchanged.
std::string ReplaceInvalidUtf8(std::string_view bytes);

// ByteToUnicode returns GPT-2's bytes_to_unicode() table: the code point that stands for
// each byte in byte-level BPE token strings (printable Latin-1 bytes stand for themselves,
// the others map to U+0100..U+0143).
const std::array<char32_t, 256>& ByteToUnicode();

// ByteOrder returns, for each byte, its position in the iteration order of
// bytes_to_unicode() (printable bytes first). CLIP's vocabulary uses this order for its
// first 256 ids.
const std::array<int32_t, 256>& ByteOrder();

// UnicodeToByte returns the byte that `c` stands for in byte-level BPE token strings, or -1
// when `c` is not one of the 256 characters of ByteToUnicode().
int UnicodeToByte(char32_t c);

}  // namespace retrace::text::internal

#endif  // RETRACE_CORE_TEXT_INTERNAL_UNICODE_H_
