// caption_terms.h — the words of a lexical caption query (ItemStore::SearchCaptions), made in
// one place so both stores and the engine's bound on terms see the same words.
//
// A query is split into words the way the stores' tokenisers split captions: runs of ASCII
// letters and digits, with every non-ASCII byte counted as a letter (so a UTF-8 word such as
// "café" stays whole; the stores' Unicode tokenisers also split on non-ASCII punctuation,
// which then only turns one term into a phrase of its parts). ASCII letters are lowered; the
// stores fold the rest of the case themselves. Repeated words are kept once, in first-seen
// order. Everything else — quotes, operators, parentheses, '*', ':', '^', '-' — separates
// words and is never passed on, so user text cannot write FTS5 or tsquery syntax.
//
// Thread-safety: a pure function.
//
//   std::vector<std::string> terms = CaptionTerms("A red \"bicycle\" OR car*");
//   // {"a", "red", "bicycle", "or", "car"}
#ifndef RETRACE_CORE_STORE_CAPTION_TERMS_H_
#define RETRACE_CORE_STORE_CAPTION_TERMS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace retrace::store {

// CaptionTerms returns the distinct words of `text` (see the banner), in first-seen order.
std::vector<std::string> CaptionTerms(absl::string_view text);

}  // namespace retrace::store

#endif  // RETRACE_CORE_STORE_CAPTION_TERMS_H_
