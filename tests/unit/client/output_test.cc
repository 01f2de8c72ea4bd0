// Tests of the CLI's output helpers (client/cli/output.h).
#include "client/cli/output.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retrace/v1/retrace.pb.h"

namespace retrace::cli {
namespace {

using ::testing::HasSubstr;

TEST(DisplayWidthTest, CountsCodePoints) {
  EXPECT_EQ(DisplayWidth(""), 0u);
  EXPECT_EQ(DisplayWidth("horse"), 5u);
  EXPECT_EQ(DisplayWidth("café"), 4u);      // é is 2 bytes
  EXPECT_EQ(DisplayWidth("一匹の馬"), 4u);  // 3 bytes each
  EXPECT_EQ(DisplayWidth("🐎 run"), 5u);     // 4 bytes
  EXPECT_EQ(DisplayWidth("…"), 1u);
}

TEST(TruncateToWidthTest, KeepsShortStringsAndCutsOnCodePoints) {
  EXPECT_EQ(TruncateToWidth("horse", 5), "horse");
  EXPECT_EQ(TruncateToWidth("horse", 4), "hor…");
  EXPECT_EQ(TruncateToWidth("horse", 1), "…");
  EXPECT_EQ(TruncateToWidth("horse", 0), "");
  EXPECT_EQ(TruncateToWidth("一匹の馬が走る", 4), "一匹の…");
  EXPECT_EQ(DisplayWidth(TruncateToWidth("一匹の馬が走る", 4)), 4u);
  EXPECT_EQ(TruncateToWidth("café au lait", 4), "caf…");
  EXPECT_EQ(TruncateToWidth("cafés", 5), "cafés");
}

TEST(RenderTableTest, AlignsColumnsWithoutTrailingSpaces) {
  Table table{{"rank", "score", "id", "caption"},
              {{"1", "0.9000", "sketch/horse/1.png", "a horse"}, {"10", "0.1234", "b", ""}},
              {true, true}};
  EXPECT_EQ(RenderTable(table),
            "rank   score  id                  caption\n"
            "   1  0.9000  sketch/horse/1.png  a horse\n"
            "  10  0.1234  b\n");
}

TEST(RenderTableTest, WidthsCountCodePoints) {
  Table table{{"file", "caption"}, {{"é.png", "x"}, {"ab.png", "y"}}, {}, -1};
  EXPECT_EQ(RenderTable(table),
            "file    caption\n"
            "é.png   x\n"
            "ab.png  y\n");
}

TEST(RenderTableTest, NoHeadersAndControlCharacters) {
  Table table{{}, {{"name", "a\tb\nc"}}, {}, -1};
  EXPECT_EQ(RenderTable(table), "name  a b c\n");
}

TEST(RenderTableTest, FlexibleColumnIsCutToTheWidth) {
  const std::string caption = "a watercolor painting of a horse running across a field at dawn";
  Table table{{"id", "caption"}, {{"x.png", caption}, {"y.png", "short"}}, {}, 1};
  const std::string out = RenderTable(table, 30);
  EXPECT_EQ(out,
            "id     caption\n"
            "x.png  a watercolor painting …\n"
            "y.png  short\n");
  EXPECT_EQ(DisplayWidth(out.substr(out.find("x.png"),
                                    out.find('\n', out.find("x.png")) - out.find("x.png"))),
            30u);
  // Wide enough: nothing is cut.
  EXPECT_THAT(RenderTable(table, 200), HasSubstr(caption));
}

TEST(RenderTableTest, FlexibleColumnKeepsAFloor) {
  Table table{{"id", "caption"}, {{std::string(50, 'i'), std::string(40, 'c')}}, {}, 1};
  const std::string out = RenderTable(table, 40);
  EXPECT_THAT(out, HasSubstr(std::string(9, 'c') + "…\n"));
}

TEST(RenderTableTest, UnicodeCaptionsAreCutByCodePoints) {
  Table table{{"id", "caption"}, {{"a", "一匹の馬が野原を走っている絵"}}, {}, 1};
  const std::string out = RenderTable(table, 15);  // "a" padded to 2, 2 apart: 11 columns
  EXPECT_EQ(out,
            "id  caption\n"
            "a   一匹の馬が野原を走っ…\n");
}

TEST(ToJsonTest, ProtoNamesAndDefaults) {
  retrace::v1::IndexResult result;
  result.set_id("x.png");
  result.mutable_status();  // present, all defaults
  EXPECT_EQ(ToJson(result, /*multiline=*/false),
            R"({"id":"x.png","status":{"code":0,"message":""},"caption":"","unchanged":false,)"
            R"("near_duplicate_id":"","near_duplicate_similarity":0,"skipped":false})");
  retrace::v1::SearchRequest request;
  request.set_top_k(5);
  const std::string json = ToJson(request, /*multiline=*/true);
  EXPECT_THAT(json, HasSubstr("\"top_k\": 5"));
  EXPECT_THAT(json, HasSubstr("\"mode\": \"SEARCH_MODE_UNSPECIFIED\""));
  EXPECT_NE(json.back(), '\n');
}

TEST(CodeNameTest, CanonicalNames) {
  EXPECT_EQ(CodeName(0), "OK");
  EXPECT_EQ(CodeName(5), "NOT_FOUND");
  EXPECT_EQ(CodeName(14), "UNAVAILABLE");
  EXPECT_EQ(CodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(CodeName(42), "CODE(42)");
  EXPECT_EQ(CodeName(-1), "CODE(-1)");
}

TEST(FormatProgressTest, BarPercentAndRate) {
  EXPECT_EQ(FormatProgress(120, 224, 18.2, 8), "indexed 120/224 ▕████░░░░▏ 53%  18 items/s");
  EXPECT_EQ(FormatProgress(0, 10, 0, 4), "indexed 0/10 ▕░░░░▏ 0%  0.0 items/s");
  EXPECT_EQ(FormatProgress(10, 10, 2.25, 4), "indexed 10/10 ▕████▏ 100%  2.2 items/s");
  EXPECT_EQ(FormatProgress(3, 8, 12, 4, "mined"), "mined 3/8 ▕█░░░▏ 37%  12 items/s");
  EXPECT_EQ(FormatProgress(120, -1, 18.2, 4, "mined"), "mined 120  18 items/s");  // total unknown
}

}  // namespace
}  // namespace retrace::cli
