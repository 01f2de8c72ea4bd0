// Bounds and formats of caller-supplied fields: each rejection names its field.
#include "core/engine/validation.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace retrace::engine {
namespace {

TEST(ValidationTest, Utf8AcceptsWellFormedAndRejectsTheRest) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\xb4"));  // é, 日本, 🐴
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("ok\xe2\x82"));        // cut in the middle of €
}

TEST(ValidationTest, IdsAreBoundedAndPrintable) {
  EngineLimits limits;
  limits.max_id_bytes = 8;
  EXPECT_TRUE(ValidateId("a/b.png", limits).ok());
  EXPECT_TRUE(absl::StrContains(ValidateId("", limits).message(), "id: empty"));
  absl::Status long_id = ValidateId("123456789", limits);
  EXPECT_EQ(long_id.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(long_id.message(), "9 bytes, over the limit of 8"));
  EXPECT_TRUE(absl::StrContains(ValidateId(std::string("a\0b", 3), limits).message(), "0x00"));
  EXPECT_TRUE(absl::StrContains(ValidateId("tab\there", limits).message(), "control"));
  EXPECT_TRUE(absl::StrContains(ValidateId("\xff", limits).message(), "UTF-8"));
}

TEST(ValidationTest, CaptionsTextsAndAttributes) {
  EngineLimits limits;
  limits.max_caption_bytes = 4;
  limits.max_text_bytes = 4;
  limits.max_attributes = 1;
  limits.max_attribute_value_bytes = 3;
  EXPECT_TRUE(ValidateCaption("", limits).ok());
  EXPECT_TRUE(absl::StrContains(ValidateCaption("12345", limits).message(), "caption: 5 bytes"));
  EXPECT_TRUE(absl::StrContains(ValidateText("  \t", limits).message(), "text: empty"));
  EXPECT_TRUE(absl::StrContains(ValidateText("12345", limits).message(), "text: 5 bytes"));
  EXPECT_TRUE(ValidateAttributes({{"k", "abc"}}, limits).ok());
  EXPECT_TRUE(absl::StrContains(ValidateAttributes({{"k", "abcd"}}, limits).message(),
                                "attributes['k']"));
  EXPECT_TRUE(absl::StrContains(ValidateAttributes({{"a", ""}, {"b", ""}}, limits).message(),
                                "2 pairs"));
  EXPECT_TRUE(absl::StrContains(ValidateAttributes({{"", "x"}}, limits).message(), "empty key"));
}

// A key that is not UTF-8 was quoted raw when its value was too long; the message goes to the
// client in ItemStatus.message, a proto3 string, so the whole Index response became unparseable.
// Seen while writing fuzz/request_conversion_fuzzer's UTF-8 check, which fails on it.
TEST(ValidationTest, AttributeMessagesAreUtf8WhateverTheKey) {
  EngineLimits limits;
  limits.max_attribute_value_bytes = 3;
  const absl::Status status = ValidateAttributes({{"k\xff", "abcd"}}, limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsValidUtf8(status.message())) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "attributes['k\\xff']: 4 bytes")) << status;
  EXPECT_TRUE(absl::StrContains(ValidateAttributes({{"caf\xc3\xa9", "abcd"}}, limits).message(),
                                "attributes['caf\xc3\xa9']"));
}

TEST(ValidationTest, CollectionNamesAndCounts) {
  EXPECT_TRUE(ValidateCollectionName("pacs-mini_v1.2").ok());
  EXPECT_FALSE(ValidateCollectionName("").ok());
  EXPECT_FALSE(ValidateCollectionName("-leading").ok());
  EXPECT_FALSE(ValidateCollectionName("has space").ok());
  EXPECT_FALSE(ValidateCollectionName(std::string(65, 'a')).ok());
  EXPECT_TRUE(ValidateCollectionName(std::string(64, 'a')).ok());
  EngineLimits limits;
  limits.max_items_per_call = 2;
  EXPECT_TRUE(absl::StrContains(ValidateItemCount(0, "items", limits).message(), "items: none"));
  EXPECT_TRUE(ValidateItemCount(2, "items", limits).ok());
  EXPECT_TRUE(absl::StrContains(ValidateItemCount(3, "ids", limits).message(),
                                "ids: 3 given, over the limit of 2"));
}

TEST(ValidationTest, SearchQueryBounds) {
  EngineLimits limits;
  limits.max_top_k = 5;
  limits.max_candidates = 7;
  SearchQuery query;
  query.top_k = 5;
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.top_k = 6;
  EXPECT_TRUE(absl::StrContains(ValidateSearchQuery(query, limits).message(), "top_k: 6"));
  query.top_k = 1;
  // CAPTION_MATCH ignores the provenance options; PROVENANCE checks them.
  query.provenance.candidates = 8;
  query.provenance.beta = std::nanf("");
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.mode = SearchMode::kProvenance;
  EXPECT_TRUE(absl::StrContains(ValidateSearchQuery(query, limits).message(),
                                "provenance.candidates: 8"));
  query.provenance.candidates = 7;
  EXPECT_TRUE(absl::StrContains(ValidateSearchQuery(query, limits).message(), "provenance.beta"));
  query.provenance.beta = 1;
  query.provenance.w2 = -0.5f;
  EXPECT_TRUE(absl::StrContains(ValidateSearchQuery(query, limits).message(), "provenance.w2"));
  query.provenance.w2 = kMaxRerankParam;
  query.query_caption = " ";
  EXPECT_TRUE(absl::StrContains(ValidateSearchQuery(query, limits).message(), "query_caption"));
  query.query_caption = "a horse";
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.mode = SearchMode::kHybrid;
  query.rrf_k = 0;
  EXPECT_TRUE(absl::StrContains(ValidateSearchQuery(query, limits).message(), "hybrid.rrf_k: 0"));
  query.rrf_k = kMaxRrfK;
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
}

}  // namespace
TEST(ValidationTest, SearchFilterAndMinScoreBounds) {
  EngineLimits limits;
  SearchQuery query;
  query.filter = filter::Filter::Equals("license", "cc-by");
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());

  // Over the size bound: one condition more than max_filter_terms allows.
  std::vector<filter::Filter> many(static_cast<size_t>(limits.max_filter_terms),
                                   filter::Filter::Exists("k"));
  query.filter = filter::Filter::Any(many);
  absl::Status s = ValidateSearchQuery(query, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "filter.any.filters[")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "more than 256 terms")) << s;

  // Nesting too deep.
  filter::Filter deep = filter::Filter::Exists("k");
  for (int i = 0; i < limits.max_filter_depth; ++i) deep = filter::Filter::Not(deep);
  query.filter = deep;
  s = ValidateSearchQuery(query, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "nested deeper than 8 levels")) << s;

  // A value over the attribute bound, named by its field.
  query.filter = filter::Filter::All(
      {filter::Filter::Exists("a"),
       filter::Filter::Prefix("b", std::string(limits.max_attribute_value_bytes + 1, 'x'))});
  s = ValidateSearchQuery(query, limits);
  EXPECT_TRUE(absl::StrContains(s.message(), "filter.all.filters[1].condition.prefix")) << s;

  // min_score: each mode's range.
  query.filter.reset();
  query.min_score = 0.5f;
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.min_score = 1.5f;
  s = ValidateSearchQuery(query, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "min_score: 1.5 is not in -1..1")) << s;
  query.min_score = std::nanf("");
  EXPECT_TRUE(absl::StrContains(ValidateSearchQuery(query, limits).message(), "min_score"));
  query.mode = SearchMode::kProvenance;
  query.min_score = 1.15f;  // within 1 + w1 + w2 = 1.2
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.min_score = 1.25f;
  EXPECT_TRUE(absl::StrContains(ValidateSearchQuery(query, limits).message(), "min_score"));
  query.mode = SearchMode::kHybrid;
  query.min_score = -0.1f;
  EXPECT_TRUE(absl::StrContains(ValidateSearchQuery(query, limits).message(),
                                "min_score: -0.1 is not in 0..1"));
}

TEST(ValidationTest, NearDuplicateThresholdBounds) {
  NearDuplicateCheck check;
  EXPECT_TRUE(ValidateNearDuplicate(check).ok()) << "the default";
  for (float ok : {defaults::kMinNearDuplicateThreshold, 0.99f, 1.0f}) {
    check.threshold = ok;
    EXPECT_TRUE(ValidateNearDuplicate(check).ok()) << ok;
  }
  for (float bad : {0.0f, 0.49f, 1.01f, -1.0f, std::nanf(""), INFINITY}) {
    check.threshold = bad;
    const absl::Status s = ValidateNearDuplicate(check);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(s.message(), "near_duplicate.threshold: ")) << s;
  }
}

// Lexical search: CAPTION_TEXT takes a text query with 1..max_query_terms words; HYBRID's
// lexical ranking reads the text query, else query_caption; min_score ranges follow.
TEST(ValidationTest, LexicalQueries) {
  EngineLimits limits;
  SearchQuery query;
  query.mode = SearchMode::kCaptionText;
  query.text = "a red bicycle";
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.min_score = 12.5f;  // BM25 has no upper bound
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.min_score = -0.1f;
  EXPECT_TRUE(absl::StartsWith(ValidateSearchQuery(query, limits).message(), "min_score: "));
  query.min_score.reset();

  query.text = "\"*\" (NEAR) -";  // all query syntax but the word NEAR
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.text = "\"*\" () -";
  absl::Status s = ValidateSearchQuery(query, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(s.message(), "text: no words")) << s;
  query.text.clear();
  for (int i = 0; i <= limits.max_query_terms; ++i) query.text += "w" + std::to_string(i) + " ";
  s = ValidateSearchQuery(query, limits);
  EXPECT_TRUE(absl::StrContains(s.message(), "33 distinct words, over the limit of 32")) << s;
  query.text = "red red red";  // one distinct word
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());

  query.kind = SearchQuery::Kind::kImage;
  s = ValidateSearchQuery(query, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(s.message(), "query: mode CAPTION_TEXT")) << s;

  // HYBRID: the lexical ranking is off by default; on, it needs a text or a query_caption.
  query.mode = SearchMode::kHybrid;
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.lexical = true;
  EXPECT_TRUE(absl::StartsWith(ValidateSearchQuery(query, limits).message(), "hybrid.lexical: "));
  query.query_caption = "!!";
  EXPECT_TRUE(
      absl::StartsWith(ValidateSearchQuery(query, limits).message(), "query_caption: no words"));
  query.query_caption = "a red bicycle";
  ASSERT_TRUE(LexicalQueryText(query).has_value());
  EXPECT_EQ(LexicalQueryText(query)->field, "query_caption");
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.min_score = 1.4f;  // three rankings: up to 1.5
  EXPECT_TRUE(ValidateSearchQuery(query, limits).ok());
  query.kind = SearchQuery::Kind::kText;  // a text query is the lexical text
  EXPECT_EQ(LexicalQueryText(query)->field, "text");
}

}  // namespace retrace::engine
