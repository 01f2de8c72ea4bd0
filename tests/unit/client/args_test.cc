// Tests of the CLI's argument parser (client/cli/args.h).
#include "client/cli/args.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<OptionSpec> kSpecs = {
    {"collection", true}, {"top-k", true}, {"json", false}, {"help", false}};

TEST(ParseArgsTest, SpaceAndEqualsFormsAndPositionals) {
  auto parsed =
      ParseArgs({"a.png", "--collection", "pacs", "--top-k=5", "b.png", "--json"}, kSpecs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Value("collection"), "pacs");
  EXPECT_EQ(parsed->Value("top-k"), "5");
  EXPECT_TRUE(parsed->Has("json"));
  EXPECT_EQ(parsed->Value("json"), "");
  EXPECT_FALSE(parsed->Has("help"));
  EXPECT_EQ(parsed->Value("help", "fallback"), "fallback");
  EXPECT_THAT(parsed->positional(), ElementsAre("a.png", "b.png"));
}

TEST(ParseArgsTest, LastValueWinsAndEqualsKeepsTheRest) {
  auto parsed = ParseArgs({"--collection=a", "--collection", "b=c", "--top-k="}, kSpecs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Value("collection"), "b=c");
  EXPECT_TRUE(parsed->Has("top-k"));
  EXPECT_EQ(parsed->Value("top-k", "x"), "");
}

TEST(ParseArgsTest, DoubleDashEndsOptions) {
  auto parsed = ParseArgs({"--json", "--", "--collection", "-x"}, kSpecs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->positional(), ElementsAre("--collection", "-x"));
  EXPECT_FALSE(parsed->Has("collection"));
}

TEST(ParseArgsTest, ShortHelpAndSingleDash) {
  auto parsed = ParseArgs({"-h", "-"}, kSpecs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->Has("help"));
  EXPECT_THAT(parsed->positional(), ElementsAre("-"));
  EXPECT_FALSE(ParseArgs({"-h"}, {{"json", false}}).ok());  // no help option: unknown
}

TEST(ParseArgsTest, ValueMayStartWithOneDash) {
  auto parsed = ParseArgs({"--collection", "-0.5,1"}, kSpecs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Value("collection"), "-0.5,1");
}

TEST(ParseArgsTest, StopAtPositionalLeavesTheCommandsArguments) {
  auto parsed = ParseArgs({"--json", "search", "--top-k", "3", "--unknown"}, kSpecs,
                          /*stop_at_positional=*/true);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->Has("json"));
  EXPECT_FALSE(parsed->Has("top-k"));
  EXPECT_THAT(parsed->positional(), ElementsAre("search", "--top-k", "3", "--unknown"));
}

TEST(ParseArgsTest, Errors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"--colection", "x"}, "unknown option --colection"},
      {{"--bogus=1"}, "unknown option --bogus"},
      {{"-c"}, "unknown option -c"},
      {{"--collection"}, "option --collection needs a value"},
      {{"--collection", "--json"}, "option --collection needs a value"},
      {{"--json=yes"}, "option --json takes no value"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseArgs(c.args, kSpecs);
    ASSERT_FALSE(parsed.ok()) << c.args[0];
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(), c.message);
  }
}

TEST(ParseIntTest, RangeAndSyntax) {
  EXPECT_EQ(*ParseInt("batch", "16", 1, 1024), 16);
  EXPECT_EQ(*ParseInt("batch", "1024", 1, 1024), 1024);
  for (const char* bad : {"0", "1025", "", "12x", "1.5", "-3", "99999999999999999999"}) {
    auto n = ParseInt("batch", bad, 1, 1024);
    ASSERT_FALSE(n.ok()) << bad;
    EXPECT_THAT(n.status().message(), HasSubstr("--batch: expected an integer from 1 to 1024"));
  }
}

TEST(ParsePositiveSecondsTest, AcceptsFractionsRefusesTheRest) {
  EXPECT_DOUBLE_EQ(*ParsePositiveSeconds("timeout", "2.5"), 2.5);
  EXPECT_DOUBLE_EQ(*ParsePositiveSeconds("timeout", "60"), 60);
  for (const char* bad : {"0", "-1", "abc", "", "inf", "nan"}) {
    EXPECT_FALSE(ParsePositiveSeconds("timeout", bad).ok()) << bad;
  }
}

TEST(ParseFloatListTest, ParsesAndNamesTheBadElement) {
  auto values = ParseFloatList("embedding", "0.5,-1, 2e-3,3");
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_THAT(*values, ElementsAre(0.5f, -1.0f, 2e-3f, 3.0f));
  auto bad = ParseFloatList("embedding", "1,,2");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("--embedding: element 2"));
  EXPECT_FALSE(ParseFloatList("embedding", "1,nan").ok());
  EXPECT_FALSE(ParseFloatList("embedding", "").ok());
  EXPECT_FALSE(ParseFloatList("embedding", "1,x").ok());
}

}  // namespace
}  // namespace retrace::cli
