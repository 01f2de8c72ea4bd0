// validation.h — bound and format checks for every caller-supplied field.
//
// Each check returns INVALID_ARGUMENT with a message that names the field (e.g.
// "id: 600 bytes, over the limit of 512"); callers prefix the item ("items[3] 'a.jpg': ").
// Messages are valid UTF-8 whatever the input (they travel in proto3 string fields): input
// quoted in one is escaped unless it is valid UTF-8.
//
// Thread-safety: pure functions.
//
//   RETRACE_RETURN_IF_ERROR(ValidateId(item.id, limits));
//   RETRACE_RETURN_IF_ERROR(ValidateCollectionName(name));
#ifndef RETRACE_CORE_ENGINE_VALIDATION_H_
#define RETRACE_CORE_ENGINE_VALIDATION_H_

#include <optional>

#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "core/common/utf8.h"
#include "core/engine/engine_types.h"

namespace retrace::engine {

// ValidateId: 1..max_id_bytes bytes of valid UTF-8 without NUL or other control characters.
absl::Status ValidateId(absl::string_view id, const EngineLimits& limits);

// ValidateCaption: at most max_caption_bytes of valid UTF-8 (empty is allowed: caption it).
absl::Status ValidateCaption(absl::string_view caption, const EngineLimits& limits);

// ValidateText: a text query (or another text named `field`), 1..max_text_bytes bytes of valid
// UTF-8, not only whitespace.
absl::Status ValidateText(absl::string_view text, const EngineLimits& limits,
                          absl::string_view field = "text");

// ValidateAttributes: count, key and value sizes, UTF-8, non-empty keys.
absl::Status ValidateAttributes(const std::map<std::string, std::string>& attributes,
                                const EngineLimits& limits);

// ValidateCollectionName: 1..64 of [A-Za-z0-9_.-], first a letter or digit.
absl::Status ValidateCollectionName(absl::string_view name);

// ValidateItemCount: 1..max_items_per_call entries in `field`.
absl::Status ValidateItemCount(size_t count, absl::string_view field, const EngineLimits& limits);

// FilterLimitsFor: the bounds of a filter (a request's, or a token's scope) under `limits`.
filter::FilterLimits FilterLimitsFor(const EngineLimits& limits);
// ValidateFilter: a request's filter (named "filter") within max_filter_terms,
// max_filter_depth and the attribute key and value bounds (filter::Validate).
absl::Status ValidateFilter(const filter::Filter& filter, const EngineLimits& limits);

// ValidateSearchQuery: the bounds of a search that need no collection: top_k in 1..max_top_k;
// for PROVENANCE and HYBRID also provenance.candidates in 1..max_candidates, beta, w1 and w2
// finite in 0..kMaxRerankParam, a non-empty query_caption as ValidateText; for HYBRID rrf_k in
// 1..kMaxRrfK. The query itself (text, image, embedding) is checked where it is used, except
// in lexical search: CAPTION_TEXT needs a text query (INVALID_ARGUMENT naming `query` and
// `mode` otherwise), HYBRID with `lexical` needs a text query or a query_caption, and that text
// must hold 1..max_query_terms words (store::CaptionTerms).
absl::Status ValidateSearchQuery(const SearchQuery& query, const EngineLimits& limits);

// ValidateNearDuplicate: threshold finite in kMinNearDuplicateThreshold..1, INVALID_ARGUMENT
// naming near_duplicate.threshold.
absl::Status ValidateNearDuplicate(const NearDuplicateCheck& check);
// LexicalText: the text a lexical ranking reads and the request field it came from.
struct LexicalText {
  absl::string_view field;
  absl::string_view text;
};
// LexicalQueryText: CAPTION_TEXT's text query; HYBRID's text query, else its query_caption
// (HYBRID's lexical ranking). nullopt when the query has no such text.
std::optional<LexicalText> LexicalQueryText(const SearchQuery& query);

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_VALIDATION_H_
