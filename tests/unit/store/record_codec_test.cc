// The BLOB layouts of internal/record_codec.h: exact bytes, round trips, and rejection of
// malformed input.
#include "core/store/internal/record_codec.h"

#include "gtest/gtest.h"

namespace retrace::store::internal {
namespace {

using Attributes = std::map<std::string, std::string>;

TEST(RecordCodecTest, AttributesHaveTheDocumentedLayout) {
  EXPECT_EQ(EncodeAttributes({}), "");
  EXPECT_EQ(EncodeAttributes({{"b", "xy"}, {"a", ""}}), std::string("\x01"
                                                                    "a"
                                                                    "\x00"
                                                                    "\x01"
                                                                    "b"
                                                                    "\x02"
                                                                    "xy",
                                                                    8));
  // A 300-byte value: its size is the two-byte varint 0xac 0x02.
  std::string blob = EncodeAttributes({{"k", std::string(300, 'v')}});
  EXPECT_EQ(blob.substr(0, 4), std::string("\x01k\xac\x02", 4));
  EXPECT_EQ(blob.size(), 4u + 300u);
}

TEST(RecordCodecTest, AttributesRoundTripAnyBytes) {
  Attributes in = {{"", ""},
                   {std::string("\0", 1), std::string("\0\xff\n", 3)},
                   {"日本", "🎨"},
                   {"long", std::string(100000, 'z')}};
  Attributes out = {{"stale", "entry"}};
  ASSERT_TRUE(DecodeAttributes(EncodeAttributes(in), &out).ok());
  EXPECT_EQ(out, in);
}

TEST(RecordCodecTest, MalformedAttributesAreDataLoss) {
  Attributes out;
  for (const std::string& bad : {
           std::string("\x05"
                       "abc",
                       4),  // key size past the end
           std::string("\x01"
                       "a",
                       2),           // value missing
           std::string("\x80", 1),   // truncated varint
           std::string(11, '\xff'),  // varint longer than 64 bits
           std::string("\x01"
                       "a\x00\x01"
                       "a\x00",
                       6),  // repeated key
       }) {
    absl::Status status = DecodeAttributes(bad, &out);
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << testing::PrintToString(bad);
  }
}

TEST(RecordCodecTest, FloatsAreLittleEndianFloat32) {
  std::vector<float> values = {1.0f, -2.5f};
  EXPECT_EQ(std::string(FloatBytes(values)), std::string("\x00\x00\x80\x3f\x00\x00\x20\xc0", 8));
  std::vector<float> out = {9.0f};
  ASSERT_TRUE(DecodeFloats(FloatBytes(values), &out).ok());
  EXPECT_EQ(out, values);
  ASSERT_TRUE(DecodeFloats("", &out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(DecodeFloats("12345", &out).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace retrace::store::internal
