#include "core/engine/validation.h"

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/caption_terms.h"

namespace retrace::engine {
namespace {

absl::Status TooLong(absl::string_view field, size_t size, size_t limit) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": ", size, " bytes, over the limit of ", limit));
}

absl::Status CheckUtf8(absl::string_view field, absl::string_view value) {
  if (!IsValidUtf8(value)) return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
  return absl::OkStatus();
}

absl::Status CheckRerankParam(float value, absl::string_view field) {
  if (!std::isfinite(value) || value < 0 || value > kMaxRerankParam) {
    return absl::InvalidArgumentError(absl::StrCat("provenance.", field, ": ", value,
                                                   " is not a finite number in 0..",
                                                   kMaxRerankParam));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateId(absl::string_view id, const EngineLimits& limits) {
  if (id.empty()) return absl::InvalidArgumentError("id: empty");
  if (id.size() > limits.max_id_bytes) return TooLong("id", id.size(), limits.max_id_bytes);
  if (absl::Status s = CheckUtf8("id", id); !s.ok()) return s;
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7F) {
      return absl::InvalidArgumentError(
          absl::StrCat("id: contains control character 0x", absl::Hex(c, absl::kZeroPad2)));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCaption(absl::string_view caption, const EngineLimits& limits) {
  if (caption.size() > limits.max_caption_bytes) {
    return TooLong("caption", caption.size(), limits.max_caption_bytes);
  }
  return CheckUtf8("caption", caption);
}

absl::Status ValidateText(absl::string_view text, const EngineLimits& limits,
                          absl::string_view field) {
  if (text.size() > limits.max_text_bytes) return TooLong(field, text.size(), limits.max_text_bytes);
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": empty or only whitespace"));
  }
  return CheckUtf8(field, text);
}

absl::Status ValidateAttributes(const std::map<std::string, std::string>& attributes,
                                const EngineLimits& limits) {
  if (attributes.size() > static_cast<size_t>(limits.max_attributes)) {
    return absl::InvalidArgumentError(absl::StrCat("attributes: ", attributes.size(),
                                                   " pairs, over the limit of ",
                                                   limits.max_attributes));
  }
  for (const auto& [key, value] : attributes) {
    if (key.empty()) return absl::InvalidArgumentError("attributes: empty key");
    if (key.size() > limits.max_attribute_key_bytes) {
      return TooLong("attributes key", key.size(), limits.max_attribute_key_bytes);
    }
    if (value.size() > limits.max_attribute_value_bytes) {
      // The key is not checked yet: echo it escaped unless it is UTF-8, or the message could
      // not travel in a proto3 string (ItemStatus.message).
      return TooLong(absl::StrCat("attributes['", IsValidUtf8(key) ? key : absl::CHexEscape(key),
                                  "']"),
                     value.size(), limits.max_attribute_value_bytes);
    }
    if (!IsValidUtf8(key) || !IsValidUtf8(value)) {
      return absl::InvalidArgumentError("attributes: not valid UTF-8");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCollectionName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("collection: name is empty");
  if (name.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("collection: name is ", name.size(), " characters, over the limit of 64"));
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    return absl::InvalidArgumentError("collection: name must start with a letter or digit");
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return absl::InvalidArgumentError(
          "collection: name may hold only letters, digits, '_', '.' and '-'");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateItemCount(size_t count, absl::string_view field, const EngineLimits& limits) {
  if (count == 0) return absl::InvalidArgumentError(absl::StrCat(field, ": none given"));
  if (count > static_cast<size_t>(limits.max_items_per_call)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", count,
                                                   " given, over the limit of ",
                                                   limits.max_items_per_call, " per call"));
  }
  return absl::OkStatus();
}

filter::FilterLimits FilterLimitsFor(const EngineLimits& limits) {
  return filter::FilterLimits{limits.max_filter_terms, limits.max_filter_depth,
                              limits.max_attribute_key_bytes, limits.max_attribute_value_bytes};
}

absl::Status ValidateFilter(const filter::Filter& filter, const EngineLimits& limits) {
  return filter::Validate(filter, FilterLimitsFor(limits), "filter");
}

std::optional<LexicalText> LexicalQueryText(const SearchQuery& query) {
  if (query.kind == SearchQuery::Kind::kText) return LexicalText{"text", query.text};
  if (query.mode == SearchMode::kHybrid && !query.query_caption.empty()) {
    return LexicalText{"query_caption", query.query_caption};
  }
  return std::nullopt;
}

namespace {

// ValidateLexicalQuery: the lexical text's presence, bytes and words (ValidateSearchQuery).
absl::Status ValidateLexicalQuery(const SearchQuery& query, const EngineLimits& limits) {
  const std::optional<LexicalText> lexical = LexicalQueryText(query);
  if (!lexical.has_value()) {
    if (query.mode == SearchMode::kCaptionText) {
      return absl::InvalidArgumentError(
          "query: mode CAPTION_TEXT ranks captions by the words of a text query; give `text`, "
          "not an image or an embedding");
    }
    return absl::InvalidArgumentError(
        "hybrid.lexical: the lexical ranking needs words: give a text query or a query_caption");
  }
  RETRACE_RETURN_IF_ERROR(ValidateText(lexical->text, limits, lexical->field));
  const size_t words = store::CaptionTerms(lexical->text).size();
  if (words == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        lexical->field, ": no words (letters or digits) to match the captions against"));
  }
  if (words > static_cast<size_t>(limits.max_query_terms)) {
    return absl::InvalidArgumentError(absl::StrCat(lexical->field, ": ", words,
                                                   " distinct words, over the limit of ",
                                                   limits.max_query_terms,
                                                   " for a lexical search"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSearchQuery(const SearchQuery& query, const EngineLimits& limits) {
  if (query.top_k < 1 || query.top_k > limits.max_top_k) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k: ", query.top_k, " is not in 1..", limits.max_top_k));
  }
  if (query.mode == SearchMode::kCaptionText ||
      (query.mode == SearchMode::kHybrid && query.lexical)) {
    RETRACE_RETURN_IF_ERROR(ValidateLexicalQuery(query, limits));
  }
  if (query.filter.has_value()) RETRACE_RETURN_IF_ERROR(ValidateFilter(*query.filter, limits));
  if (query.min_score.has_value()) {
    // The range each mode's score can take; a threshold outside it is a mistake (a percentage,
    // a distance), not a request.
    float low = -1, high = 1;
    absl::string_view what = "CAPTION_MATCH scores are cosine similarities";
    if (query.mode == SearchMode::kProvenance) {
      if (query.provenance.rerank) high = 1 + query.provenance.w1 + query.provenance.w2;
      what = "PROVENANCE scores are S' = S + w1 * exp(-beta * P) + w2 * exp(-beta * P')";
    } else if (query.mode == SearchMode::kHybrid) {
      low = 0;
      // Each fused ranking adds at most 1 / (rrf_k + 1) <= 1/2.
      if (query.lexical) high = 1.5f;
      what = "HYBRID scores are reciprocal-rank fusion scores";
    } else if (query.mode == SearchMode::kCaptionText) {
      low = 0;
      high = std::numeric_limits<float>::max();
      what = "CAPTION_TEXT scores are the store's lexical relevance, 0 or more";
    }
    const float m = *query.min_score;
    if (!std::isfinite(m) || m < low || m > high) {
      return absl::InvalidArgumentError(
          absl::StrCat("min_score: ", m, " is not in ", low, "..", high, " (", what, ")"));
    }
  }
  if (query.mode == SearchMode::kCaptionMatch || query.mode == SearchMode::kCaptionText) {
    return absl::OkStatus();
  }
  const ProvenanceOptions& p = query.provenance;
  if (p.candidates < 1 || p.candidates > limits.max_candidates) {
    return absl::InvalidArgumentError(absl::StrCat("provenance.candidates: ", p.candidates,
                                                   " is not in 1..", limits.max_candidates));
  }
  RETRACE_RETURN_IF_ERROR(CheckRerankParam(p.beta, "beta"));
  RETRACE_RETURN_IF_ERROR(CheckRerankParam(p.w1, "w1"));
  RETRACE_RETURN_IF_ERROR(CheckRerankParam(p.w2, "w2"));
  if (query.mode == SearchMode::kHybrid && (query.rrf_k < 1 || query.rrf_k > kMaxRrfK)) {
    return absl::InvalidArgumentError(
        absl::StrCat("hybrid.rrf_k: ", query.rrf_k, " is not in 1..", kMaxRrfK));
  }
  if (!query.query_caption.empty()) {
    RETRACE_RETURN_IF_ERROR(ValidateText(query.query_caption, limits, "query_caption"));
  }
  return absl::OkStatus();
}

absl::Status ValidateNearDuplicate(const NearDuplicateCheck& check) {
  const float t = check.threshold;
  if (!std::isfinite(t) || t < defaults::kMinNearDuplicateThreshold || t > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("near_duplicate.threshold: ", t, " is not in ",
                     defaults::kMinNearDuplicateThreshold,
                     "..1 (a cosine similarity in the image space; 0 means the default ",
                     defaults::kNearDuplicateThreshold, ")"));
  }
  return absl::OkStatus();
}

}  // namespace retrace::engine
