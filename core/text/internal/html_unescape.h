// html_unescape.h — a port of Python's html.unescape() (3.11), which CLIP's basic_clean
// applies twice before tokenizing.
//
// It replaces every HTML5 named reference (`&amp;`, and the legacy names that need no `;`,
// such as `&amp` or the `&not` in `&notit;`), decimal and hex references (`&#39;`, `&#x27;`),
// with Python's special rules: NUL, surrogates and values above U+10FFFF become U+FFFD,
// &#128;..&#159; are remapped as cp1252, other control and non-character references vanish.
// Anything that is not a reference is copied unchanged.
//
// Thread-safety: a pure function over constant tables; safe for concurrent use.
//
//   std::string text = HtmlUnescape("Tom &amp; Jerry &#x263A;");  // "Tom & Jerry ☺"
//   text = HtmlUnescape(HtmlUnescape("&amp;lt;"));                 // "<"
#ifndef RETRACE_CORE_TEXT_INTERNAL_HTML_UNESCAPE_H_
#define RETRACE_CORE_TEXT_INTERNAL_HTML_UNESCAPE_H_

#include <string>
#include <string_view>

namespace retrace::text::internal {

// HtmlUnescape returns `text` with its character references replaced as html.unescape does.
// REQUIRES: `text` is valid UTF-8 (names are limited to 32 code points, as in Python).
std::string HtmlUnescape(std::string_view text);

}  // namespace retrace::text::internal

#endif  // RETRACE_CORE_TEXT_INTERNAL_HTML_UNESCAPE_H_
