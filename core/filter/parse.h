// parse.h — the filter text syntax of the CLI (`retrace search … --filter '…'`), read into a
// filter::Filter (filter.h).
//
// Syntax, loosest binding first: `or`, `and`, `not`; parentheses group. A condition is a key and
// a test:
//   license = "cc-by"        equals (also `!=`, which is `not (… = …)`); year = 2020 compares
//                            the text "2020"
//   domain in ("sketch", "painting")     in a set (also `not in`)
//   license exists           present (`not license exists`: absent)
//   source prefix "laion/"   starts with
//   year >= 2020             numeric range: <, <=, >, >= against a number (or a quoted string
//                            that reads as one); the attribute's value must read as a number
//   @created >= "2026-01-01"  the item's store times, @created (first stored) and @updated (this
//                            version stored): <, <=, >, >= against milliseconds since the Unix
//                            epoch or a quoted RFC 3339 time ("2026-01-31T12:00:00Z") or date
//                            (midnight UTC)
// A key is a bare word (letters, digits, _ . - : /, any non-ASCII letter) or a quoted string;
// the keywords and, or, not, in, exists, prefix (any case) must be quoted to be keys. Strings are
// in double quotes with the escapes \" \\ \n \t. `a and b and c` is one group of three.
//
// Errors are INVALID_ARGUMENT and point at the token: `filter: unexpected token "xyz" at column
// 14` (columns count characters from 1). The parsed tree is checked with filter::Validate, whose
// messages name the tree's fields.
//
// Thread-safety: a pure function.
//
//   RETRACE_ASSIGN_OR_RETURN(filter::Filter f,
//                            filter::ParseFilter("license = \"cc-by\" and year >= 2020", limits));
#ifndef RETRACE_CORE_FILTER_PARSE_H_
#define RETRACE_CORE_FILTER_PARSE_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/filter/filter.h"

namespace retrace::filter {

// kMaxFilterTextBytes bounds the text ParseFilter reads.
inline constexpr size_t kMaxFilterTextBytes = 64 * 1024;

// ParseFilter reads `text` (see the banner). INVALID_ARGUMENT for text over kMaxFilterTextBytes,
// empty or not UTF-8, a syntax error (naming the token and its column), nesting deeper than
// limits.max_depth, or a tree that fails Validate(…, limits).
absl::StatusOr<Filter> ParseFilter(absl::string_view text, const FilterLimits& limits);

}  // namespace retrace::filter

#endif  // RETRACE_CORE_FILTER_PARSE_H_
