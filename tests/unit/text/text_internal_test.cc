// Tests for core/text/internal: html.unescape, the Unicode classes, UTF-8 repair, BPE merging.
// Expected values come from CPython 3.11 (html.unescape, str.isspace, the regex module's \s,
// bytes.decode(errors="replace")).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/text/internal/bpe_merge.h"
#include "core/text/internal/html_unescape.h"
#include "core/text/internal/unicode.h"
#include "gtest/gtest.h"

namespace retrace::text::internal {
namespace {

TEST(HtmlUnescapeTest, MatchesPython) {
  const struct {
    const char* in;
    const char* out;
  } kCases[] = {
      {"", ""},
      {"no references", "no references"},
      {"&amp;", "&"},
      {"&amp", "&"},    // legacy name without ';'
      {"&ampx", "&x"},  // longest legacy prefix
      {"&notit;", "\u00ACit;"},
      {"&notin;", "\u2209"},
      {"&LT", "<"},
      {"&lt", "<"},
      {"&gt\u00E9;", ">\u00E9;"},
      {"&\u00E9t;", "&\u00E9t;"},
      {"&bogus;", "&bogus;"},
      {"&;", "&;"},
      {"& amp;", "& amp;"},
      {"&&amp;", "&&"},
      {"&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;", "&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;"},
      {"&CounterClockwiseContourIntegral;", "\u2233"},  // the longest name, 32 characters
      {"&amp;lt;", "&lt;"},                             // one pass only
      {"&#65", "A"},
      {"&#x41;", "A"},
      {"&#X41", "A"},
      {"&#x263A;", "\u263A"},
      {"&#39;", "'"},
      {"&#128;", "\u20AC"},  // cp1252 remapping
      {"&#150;", "\u2013"},
      {"&#x81;", "\u0081"},
      {"&#13;", "\r"},
      {"&#12;", "\f"},
      {"&#1;", ""},  // invalid code points vanish
      {"&#11;", ""},
      {"&#xFFFE;", ""},
      {"&#0;", "\uFFFD"},
      {"&#xD800;", "\uFFFD"},
      {"&#x110000;", "\uFFFD"},
      {"&#99999999999999999999;", "\uFFFD"},
      {"&#", "&#"},
      {"&#x;", "&#x;"},
      {"&#xg;", "&#xg;"},
      {"Tom &amp;amp; Jerry", "Tom &amp; Jerry"},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(HtmlUnescape(c.in), c.out) << "input: " << c.in;
  }
  EXPECT_EQ(HtmlUnescape(std::string("a&#0\0b", 6)), std::string("a\uFFFD\0b", 6));
}

TEST(UnicodeTest, SpaceClassesMatchPython) {
  // regex.compile(r'\s').match over all code points, and str.isspace().
  const std::vector<char32_t> regex_space = {0x9,    0xA,    0xB,    0xC,    0xD,    0x20,   0x85,
                                             0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                                             0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028,
                                             0x2029, 0x202F, 0x205F, 0x3000};
  std::vector<char32_t> python_space = regex_space;
  python_space.insert(python_space.end(), {0x1C, 0x1D, 0x1E, 0x1F});
  std::vector<char32_t> got_regex, got_python;
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    if (IsRegexSpace(c)) got_regex.push_back(c);
    if (IsPythonSpace(c)) got_python.push_back(c);
  }
  std::sort(python_space.begin(), python_space.end());
  EXPECT_EQ(got_regex, regex_space);
  EXPECT_EQ(got_python, python_space);
}

TEST(UnicodeTest, LettersAndNumbers) {
  for (char32_t c : {U'a', U'Z', U'\u00E9', U'\u6771', U'\uAC00', U'\u01C5', U'\u02B0'}) {
    EXPECT_TRUE(IsLetter(c)) << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U'0', U'\u00BD', U'\u00B2', U'\u2162', U'\u0663'}) {
    EXPECT_TRUE(IsNumber(c)) << static_cast<uint32_t>(c);
    EXPECT_FALSE(IsLetter(c)) << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U' ', U'.', U'\u0301', U'\u0345', U'\U0001F431'}) {
    EXPECT_FALSE(IsLetter(c) || IsNumber(c)) << static_cast<uint32_t>(c);
  }
}

TEST(UnicodeTest, InvalidUtf8BecomesOneReplacementPerMaximalSubpart) {
  // bytes.decode("utf-8", errors="replace") in Python 3.11.
  EXPECT_EQ(ReplaceInvalidUtf8("plain \u00E9\U0001F431"), "plain \u00E9\U0001F431");
  EXPECT_EQ(ReplaceInvalidUtf8("\xF0\x9F\x90"
                               "a"),
            "\uFFFD"
            "a");
  EXPECT_EQ(ReplaceInvalidUtf8("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // a surrogate
  EXPECT_EQ(ReplaceInvalidUtf8("\xC0\xAF"), "\uFFFD\uFFFD");
  EXPECT_EQ(ReplaceInvalidUtf8("\xE6\x9D"), "\uFFFD");
  EXPECT_EQ(ReplaceInvalidUtf8("\x80\x80"
                               "b"),
            "\uFFFD\uFFFD"
            "b");
  EXPECT_FALSE(IsValidUtf8("\xE6\x9D"));
  EXPECT_TRUE(IsValidUtf8("\xE6\x9D\xB1"));
  EXPECT_EQ(DecodeUtf8("a\xFF\xE6\x9D\xB1"), (std::u32string{U'a', 0xFFFD, 0x6771}));
  EXPECT_EQ(EncodeUtf8(U"a\u00E9\U0001F431"), "a\u00E9\U0001F431");
}

TEST(UnicodeTest, ByteToUnicodeIsGpt2sTable) {
  EXPECT_EQ(ByteToUnicode()['A'], U'A');
  EXPECT_EQ(ByteToUnicode()[' '], U'\u0120');   // "Ġ"
  EXPECT_EQ(ByteToUnicode()['\n'], U'\u010A');  // "Ċ"
  EXPECT_EQ(ByteToUnicode()[0xAD], U'\u0143');  // the last non-printable byte
  EXPECT_EQ(ByteOrder()['!'], 0);
  EXPECT_EQ(ByteOrder()[0xFF], 187);
  EXPECT_EQ(ByteOrder()[0x00], 188);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(UnicodeToByte(ByteToUnicode()[b]), b);
  EXPECT_EQ(UnicodeToByte(U'\u0144'), -1);
}

TEST(ApplyMergesTest, LowestRankFirstAndLeftmostAmongEqualRanks) {
  // Symbols: a=0, b=1; merges: (a,a)->aa=2 rank 0, (aa,b)->aab=3 rank 1, (a,b)->ab=4 rank 2.
  MergeTable table;
  table.Add(0, 0, 0, 2);
  table.Add(2, 1, 1, 3);
  table.Add(0, 1, 2, 4);
  std::vector<int32_t> word = {0, 0, 0, 1};  // "aaab" -> aa a b -> aa ab
  ApplyMerges(table, &word);
  EXPECT_EQ(word, (std::vector<int32_t>{2, 4}));
  word = {0, 0, 0, 0, 1};  // "aaaab" -> aa aa b -> aa aab
  ApplyMerges(table, &word);
  EXPECT_EQ(word, (std::vector<int32_t>{2, 3}));
  word = {1};
  ApplyMerges(table, &word);
  EXPECT_EQ(word, (std::vector<int32_t>{1}));
  word = {};
  ApplyMerges(table, &word);
  EXPECT_TRUE(word.empty());
}

TEST(WordChunkEndTest, CutsAtCharacterBoundariesWithinTheLimit) {
  EXPECT_EQ(WordChunkEnd("abc", 0), 3u);
  const std::string ascii(kMaxWordBytes + 1, 'a');
  EXPECT_EQ(WordChunkEnd(ascii, 0), kMaxWordBytes);
  EXPECT_EQ(WordChunkEnd(ascii, kMaxWordBytes), ascii.size());
  std::string cjk;  // 3-byte characters; kMaxWordBytes is not a multiple of 3
  while (cjk.size() < 3 * kMaxWordBytes) cjk += "\u6771";
  for (size_t start = 0; start < cjk.size();) {
    const size_t end = WordChunkEnd(cjk, start);
    ASSERT_GT(end, start);
    ASSERT_LE(end - start, kMaxWordBytes);
    ASSERT_EQ(end % 3, 0u) << "cut inside a character at " << end;
    start = end;
  }
}

}  // namespace
}  // namespace retrace::text::internal
