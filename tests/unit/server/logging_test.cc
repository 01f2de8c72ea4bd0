// The server's log formats: JSON escaping and one JSON object per line.
#include "server/logging.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace retrace::server {
namespace {

TEST(JsonEscapeTest, EscapesQuotesControlsAndReplacesInvalidUtf8) {
  EXPECT_EQ(JsonEscape("plain"), "plain");
  EXPECT_EQ(JsonEscape("a\"b\\c\nd\te\x01"), "a\\\"b\\\\c\\nd\\te\\u0001");
  EXPECT_EQ(JsonEscape("caf\xc3\xa9"), "caf\xc3\xa9");             // valid UTF-8 kept
  EXPECT_EQ(JsonEscape("bad\xc3\x28"), "bad\\ufffd(");             // broken sequence
  EXPECT_EQ(JsonEscape("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // a surrogate
  EXPECT_EQ(JsonEscape("\xf0\x9f\x90\xb6"), "\xf0\x9f\x90\xb6");   // a 4-byte sequence
  // Every output parses as a JSON string.
  for (const std::string& s :
       {std::string("x\xff\xfe"), std::string("\x7f"), std::string(3, '\0')}) {
    auto parsed = nlohmann::json::parse("\"" + JsonEscape(s) + "\"", nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << JsonEscape(s);
  }
}

TEST(StatusCodeNameTest, SpellsCodesAsGrpcDoes) {
  EXPECT_STREQ(StatusCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_STREQ(StatusCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_STREQ(StatusCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
}

}  // namespace
}  // namespace retrace::server
