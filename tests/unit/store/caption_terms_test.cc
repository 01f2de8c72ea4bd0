// CaptionTerms (core/store/caption_terms.h): the words a lexical caption query passes to the
// stores, and that no query syntax survives into them.
#include "core/store/caption_terms.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::store {
namespace {

using ::testing::ElementsAre;

TEST(CaptionTermsTest, SplitsOnEverythingButLettersAndDigitsAndLowersAscii) {
  EXPECT_THAT(CaptionTerms("A red Bicycle, 2 WHEELS."),
              ElementsAre("a", "red", "bicycle", "2", "wheels"));
  EXPECT_THAT(CaptionTerms("  \t\n"), ElementsAre());
  EXPECT_THAT(CaptionTerms(""), ElementsAre());
}

TEST(CaptionTermsTest, KeepsEachWordOnceInFirstSeenOrder) {
  EXPECT_THAT(CaptionTerms("red car red Car RED"), ElementsAre("red", "car"));
}

TEST(CaptionTermsTest, KeepsUtf8WordsWhole) {
  EXPECT_THAT(CaptionTerms("un café à Paris"), ElementsAre("un", "café", "à", "paris"));
}

TEST(CaptionTermsTest, QuerySyntaxOnlySeparatesWords) {
  EXPECT_THAT(CaptionTerms("\"red\" OR car* NEAR(a b) -x ^y col:z 'q' a&b|!c"),
              ElementsAre("red", "or", "car", "near", "a", "b", "x", "y", "col", "z", "q", "c"));
}

}  // namespace
}  // namespace retrace::store
