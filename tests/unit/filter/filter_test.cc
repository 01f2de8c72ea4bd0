// filter_test.cc — the filter text syntax (parse.h), the tree's bounds (filter.h Validate) and
// its evaluation, on hand-written cases.
#include <map>
#include <string>

#include "core/filter/filter.h"
#include "core/filter/parse.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::filter {
namespace {

using ::testing::HasSubstr;
using Attributes = std::map<std::string, std::string>;

constexpr FilterLimits kLimits{/*max_terms=*/64, /*max_depth=*/8, /*max_key_bytes=*/128,
                               /*max_value_bytes=*/1024};

Filter Parsed(const std::string& text) {
  absl::StatusOr<Filter> f = ParseFilter(text, kLimits);
  EXPECT_TRUE(f.ok()) << text << ": " << f.status();
  return f.ok() ? *f : Filter::Exists("__parse_failed__");
}

bool Matches(const std::string& text, const Attributes& attributes) {
  return Evaluate(Parsed(text), {attributes});
}

std::string ParseError(const std::string& text) {
  absl::StatusOr<Filter> f = ParseFilter(text, kLimits);
  EXPECT_FALSE(f.ok()) << text << " parsed";
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
  return std::string(f.status().message());
}

TEST(ParseFilterTest, EveryOperatorBuildsItsCondition) {
  EXPECT_EQ(Parsed("license = \"cc-by\""), Filter::Equals("license", "cc-by"));
  EXPECT_EQ(Parsed("license == \"cc-by\""), Filter::Equals("license", "cc-by"));
  EXPECT_EQ(Parsed("license != \"cc-by\""), Filter::Not(Filter::Equals("license", "cc-by")));
  EXPECT_EQ(Parsed("year = 2020"), Filter::Equals("year", "2020"));
  EXPECT_EQ(Parsed("domain in (\"sketch\", \"painting\")"),
            Filter::In("domain", {"sketch", "painting"}));
  EXPECT_EQ(Parsed("domain not in (\"photo\")"), Filter::Not(Filter::In("domain", {"photo"})));
  EXPECT_EQ(Parsed("license exists"), Filter::Exists("license"));
  EXPECT_EQ(Parsed("not license exists"), Filter::Not(Filter::Exists("license")));
  EXPECT_EQ(Parsed("source prefix \"laion/\""), Filter::Prefix("source", "laion/"));
  EXPECT_EQ(Parsed("year >= 2020"), Filter::Range("year", Bound{2020, true}, std::nullopt));
  EXPECT_EQ(Parsed("year > 2020"), Filter::Range("year", Bound{2020, false}, std::nullopt));
  EXPECT_EQ(Parsed("year <= -1.5e2"), Filter::Range("year", std::nullopt, Bound{-150, true}));
  EXPECT_EQ(Parsed("year < \"2020\""), Filter::Range("year", std::nullopt, Bound{2020, false}));
  EXPECT_EQ(Parsed("LICENSE EXISTS AND Year > 1"),
            Filter::All({Filter::Exists("LICENSE"), Filter::Range("Year", Bound{1, false}, {})}));
}

TEST(ParseFilterTest, PrecedenceIsNotThenAndThenOr) {
  const Filter a = Filter::Equals("a", "1"), b = Filter::Equals("b", "2"),
               c = Filter::Equals("c", "3");
  EXPECT_EQ(Parsed("a = 1 or b = 2 and c = 3"), Filter::Any({a, Filter::All({b, c})}));
  EXPECT_EQ(Parsed("a = 1 and b = 2 or c = 3"), Filter::Any({Filter::All({a, b}), c}));
  EXPECT_EQ(Parsed("(a = 1 or b = 2) and c = 3"), Filter::All({Filter::Any({a, b}), c}));
  EXPECT_EQ(Parsed("not a = 1 and b = 2"), Filter::All({Filter::Not(a), b}));
  EXPECT_EQ(Parsed("not (a = 1 and b = 2)"), Filter::Not(Filter::All({a, b})));
  // A chain is one group, not a nest.
  EXPECT_EQ(Parsed("a = 1 and b = 2 and c = 3"), Filter::All({a, b, c}));
  EXPECT_EQ(Parsed("((a = 1))"), a);
}

TEST(ParseFilterTest, QuotingAndUnicode) {
  EXPECT_EQ(Parsed(R"("and" = "x \"y\" \\ z")"), Filter::Equals("and", "x \"y\" \\ z"));
  EXPECT_EQ(Parsed(R"("key with spaces" exists)"), Filter::Exists("key with spaces"));
  EXPECT_EQ(Parsed(R"(title = "a\tb\nc")"), Filter::Equals("title", "a\tb\nc"));
  EXPECT_EQ(Parsed("année >= 2020"), Filter::Range("année", Bound{2020, true}, {}));
  EXPECT_EQ(Parsed("artiste = \"Hokusai 葛飾北斎\""), Filter::Equals("artiste", "Hokusai 葛飾北斎"));
  EXPECT_EQ(Parsed("path prefix \"日本/\""), Filter::Prefix("path", "日本/"));
  EXPECT_EQ(Parsed("ns:key.sub-part/x = \"v\""), Filter::Equals("ns:key.sub-part/x", "v"));
}

TEST(ParseFilterTest, ErrorsPointAtTheToken) {
  EXPECT_EQ(ParseError("license = \"cc-by\" xyz"),
            "filter: unexpected token \"xyz\" at column 19");
  // Columns count characters, not bytes.
  EXPECT_EQ(ParseError("année = \"é\" )"), "filter: unexpected token \")\" at column 13");
  EXPECT_THAT(ParseError("license = cc-by"),
              HasSubstr("unexpected token \"cc-by\" (expected a \"quoted string\" or a number"));
  EXPECT_THAT(ParseError("license = cc-by"), HasSubstr("at column 11"));
  EXPECT_THAT(ParseError("license"), HasSubstr("unexpected end"));
  EXPECT_THAT(ParseError("license ~ \"x\""), HasSubstr("unexpected token \"~\" at column 9"));
  EXPECT_THAT(ParseError("(a = 1"), HasSubstr("expected \")\""));
  EXPECT_THAT(ParseError("a = \"open"), HasSubstr("unterminated string starting at column 5"));
  EXPECT_THAT(ParseError("a = \"x\\q\""), HasSubstr("unknown escape"));
  EXPECT_THAT(ParseError("and = 1"), HasSubstr("quote a key that is a keyword"));
  EXPECT_THAT(ParseError("a in \"x\""), HasSubstr("expected \"(\" after in"));
  EXPECT_THAT(ParseError("a in ()"), HasSubstr("unexpected token \")\""));
  EXPECT_THAT(ParseError("a = 1 and"), HasSubstr("unexpected end"));
  EXPECT_THAT(ParseError("   "), HasSubstr("filter: empty"));
  EXPECT_THAT(ParseError("a = 1.2.3"), HasSubstr("bad number \"1.2.3\" at column 5"));
}

TEST(ParseFilterTest, NumericRangeNeedsANumber) {
  EXPECT_EQ(ParseError("year >= \"recent\""),
            "filter: \">=\" needs a finite number, not \"\"recent\"\" at column 9");
  EXPECT_THAT(ParseError("year < later"), HasSubstr("needs a finite number, not \"later\""));
  EXPECT_THAT(ParseError("year < \"nan\""), HasSubstr("needs a finite number"));
  EXPECT_THAT(ParseError("year <"), HasSubstr("not the end"));
}

TEST(ParseFilterTest, BoundsDepthAndSize) {
  std::string deep = "a = 1";
  for (int i = 0; i < 8; ++i) deep = "not " + deep;
  EXPECT_THAT(ParseError(deep), HasSubstr("nested deeper than 8 levels"));
  std::string nested(10000, '(');  // must not recurse without bound
  EXPECT_FALSE(ParseFilter(nested, kLimits).ok());
  std::string wide = "a = 1";
  for (int i = 0; i < 70; ++i) wide += " or a = 1";
  EXPECT_THAT(ParseError(wide), HasSubstr("more than 64 terms"));
  EXPECT_THAT(ParseError(std::string(70 * 1024, ' ')), HasSubstr("at most 65536"));
  EXPECT_THAT(ParseError("a = \"\xff\""), HasSubstr("UTF-8"));
}

TEST(EvaluateTest, EveryOperator) {
  const Attributes item{{"license", "cc-by"}, {"year", "2021"}, {"source", "laion/part-7"},
                        {"domain", "sketch"}, {"score", "n/a"}, {"empty", ""}};
  EXPECT_TRUE(Matches("license = \"cc-by\"", item));
  EXPECT_FALSE(Matches("license = \"cc-by-sa\"", item));
  EXPECT_FALSE(Matches("missing = \"\"", item));
  EXPECT_TRUE(Matches("empty = \"\"", item));
  EXPECT_TRUE(Matches("license != \"mit\"", item));
  EXPECT_TRUE(Matches("domain in (\"photo\", \"sketch\")", item));
  EXPECT_FALSE(Matches("domain in (\"photo\", \"painting\")", item));
  EXPECT_TRUE(Matches("domain not in (\"photo\")", item));
  EXPECT_TRUE(Matches("license exists", item));
  EXPECT_FALSE(Matches("missing exists", item));
  EXPECT_TRUE(Matches("not missing exists", item));
  EXPECT_TRUE(Matches("source prefix \"laion/\"", item));
  EXPECT_TRUE(Matches("source prefix \"\"", item));
  EXPECT_FALSE(Matches("source prefix \"laion/part-7/\"", item));
  EXPECT_FALSE(Matches("missing prefix \"\"", item));
  EXPECT_TRUE(Matches("year >= 2021", item));
  EXPECT_FALSE(Matches("year > 2021", item));
  EXPECT_TRUE(Matches("year <= 2021", item));
  EXPECT_FALSE(Matches("year < 2021", item));
  EXPECT_TRUE(Matches("year > 2020.5 and year < 2021.5", item));
  // Equality compares text: "2021.0" reads as the same number but is another string.
  EXPECT_FALSE(Matches("year = \"2021.0\"", item));
  EXPECT_TRUE(Matches("year >= 2021.0 and year <= 2021.0", item));
}

TEST(EvaluateTest, RangeOnANonNumericValueIsFalseNotAnError) {
  const Attributes item{{"score", "n/a"}, {"inf", "inf"}, {"hex", "0x10"}, {"sci", "1e3"}};
  EXPECT_FALSE(Matches("score > 0", item));
  EXPECT_FALSE(Matches("score < 0", item));
  EXPECT_TRUE(Matches("not score > 0", item));
  EXPECT_FALSE(Matches("inf > 0", item));  // non-finite values do not count as numbers
  EXPECT_FALSE(Matches("hex > 0", item));
  EXPECT_TRUE(Matches("sci = \"1e3\" and sci >= 1000 and sci <= 1000", item));
  EXPECT_FALSE(Matches("missing < 1", item));
}

TEST(EvaluateTest, GroupsCombine) {
  const Attributes item{{"a", "1"}, {"b", "2"}};
  EXPECT_TRUE(Matches("a = 1 or b = 9 and c = 9", item));
  EXPECT_FALSE(Matches("(a = 1 or b = 9) and c = 9", item));
  EXPECT_TRUE(Matches("not (a = 2 or b = 3)", item));
  EXPECT_FALSE(Matches("not not c exists", item));
  EXPECT_TRUE(Matches("a = 1 and b = 2 and not c exists", item));
}

// 2026-01-31T00:00:00Z in milliseconds since the epoch.
constexpr double kJan31 = 1769817600000.0;

TEST(ParseFilterTest, ItemTimesTakeMillisecondsOrRfc3339) {
  using S = Condition::Subject;
  EXPECT_EQ(Parsed("@created >= 1769817600000"),
            Filter::Time(S::kCreated, Bound{kJan31, true}, std::nullopt));
  EXPECT_EQ(Parsed("@updated < \"2026-01-31\""),
            Filter::Time(S::kUpdated, std::nullopt, Bound{kJan31, false}));
  EXPECT_EQ(Parsed("@CREATED > \"2026-01-31T01:00:00+01:00\""),
            Filter::Time(S::kCreated, Bound{kJan31, false}, std::nullopt));
  EXPECT_EQ(Parsed("@created > \"2026-01-31T00:00:00.5Z\" and license = \"x\""),
            Filter::All({Filter::Time(S::kCreated, Bound{kJan31 + 500, false}, std::nullopt),
                         Filter::Equals("license", "x")}));
  // Quoted, "@created" is an attribute key like any other.
  EXPECT_EQ(Parsed("\"@created\" = \"x\""), Filter::Equals("@created", "x"));
  EXPECT_THAT(ParseError("@made > 1"), HasSubstr("unknown item time \"@made\" (@created or "
                                                 "@updated; quote an attribute key"));
  EXPECT_THAT(ParseError("@created = 1"),
              HasSubstr("unexpected token \"=\" (expected <, <=, > or >= after @created) at "
                        "column 10"));
  EXPECT_THAT(ParseError("@created > \"yesterday\""),
              HasSubstr("\">\" on a time needs milliseconds since the epoch or a quoted RFC "
                        "3339 time or date (\"2026-01-31\"), not \"\"yesterday\"\" at column 12"));
}

TEST(EvaluateTest, ItemTimesAreRangesOnTheStoreTimes) {
  const Attributes attributes{{"a", "1"}};
  const ItemView old_item{attributes, /*created_ms=*/1000, /*updated_ms=*/5000};
  EXPECT_TRUE(Evaluate(Parsed("@created < 2000"), old_item));
  EXPECT_FALSE(Evaluate(Parsed("@created >= 2000"), old_item));
  EXPECT_TRUE(Evaluate(Parsed("@updated >= 5000 and @updated <= 5000"), old_item));
  EXPECT_FALSE(Evaluate(Parsed("@updated > 5000"), old_item));
  EXPECT_TRUE(Evaluate(Parsed("@created < 2000 and a = 1 and not @updated < 5000"), old_item));
}

TEST(ValidateTest, NamesTheField) {
  auto error = [](const Filter& f) {
    absl::Status s = Validate(f, kLimits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    return std::string(s.message());
  };
  EXPECT_THAT(error(Filter::All({Filter::Exists("a"), Filter::Exists("b"),
                                 Filter::Prefix("c", "\xc3")})),
              HasSubstr("filter.all.filters[2].condition.prefix: must be valid UTF-8"));
  EXPECT_THAT(error(Filter::Any({})), HasSubstr("filter.any.filters: must hold at least one"));
  EXPECT_THAT(error(Filter::Not(Filter::Equals("", "x"))),
              HasSubstr("filter.negate.condition.attribute: must not be empty"));
  EXPECT_THAT(error(Filter::Equals(std::string(129, 'k'), "x")),
              HasSubstr("filter.condition.attribute: 129 bytes; at most 128"));
  EXPECT_THAT(error(Filter::Equals("k", std::string(1025, 'v'))),
              HasSubstr("filter.condition.equals: 1025 bytes; at most 1024"));
  EXPECT_THAT(error(Filter::In("k", {})), HasSubstr("filter.condition.in.values: must hold"));
  EXPECT_THAT(error(Filter::Range("k", std::nullopt, std::nullopt)),
              HasSubstr("filter.condition.range: needs a lower or an upper bound"));
  EXPECT_THAT(error(Filter::Range("k", Bound{std::nan(""), false}, std::nullopt)),
              HasSubstr("filter.condition.range.gt: must be a finite number"));
  Filter deep = Filter::Exists("a");
  for (int i = 0; i < 8; ++i) deep = Filter::Not(deep);
  EXPECT_THAT(error(deep), HasSubstr("filter.negate.negate.negate.negate.negate.negate.negate"
                                     ".negate: nested deeper than 8 levels"));
  std::vector<std::string> many(64, "v");
  EXPECT_THAT(error(Filter::In("k", many)),
              HasSubstr("filter.condition.in.values[63]: the filter has more than 64 terms"));
  EXPECT_TRUE(Validate(Filter::In("k", std::vector<std::string>(63, "v")), kLimits).ok());
  Filter not_a_range = Filter::Time(Condition::Subject::kUpdated, Bound{1, true}, std::nullopt);
  not_a_range.condition.op = Condition::Op::kEquals;
  EXPECT_THAT(error(Filter::Not(not_a_range)),
              HasSubstr("filter.negate.time: a time takes only a range"));
  EXPECT_THAT(error(Filter::Time(Condition::Subject::kCreated, std::nullopt, std::nullopt)),
              HasSubstr("filter.time.range: needs a lower or an upper bound"));
}

}  // namespace
}  // namespace retrace::filter
