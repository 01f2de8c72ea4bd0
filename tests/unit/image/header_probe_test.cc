// Tests for the header parsers behind ProbeImage and the truncation checks (internal).
#include "core/image/internal/header_probe.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "core/common/utf8.h"
#include "core/image/decode.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/image/test_images.h"

namespace retrace::image::internal {
namespace {

using ::retrace::image::testing::Be16;
using ::retrace::image::testing::Be32;
using ::retrace::image::testing::Encode;
using ::retrace::image::testing::PngChunk;
using ::retrace::image::testing::Quadrants;
using ::testing::HasSubstr;

std::string Le16(uint16_t v) { return {static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)}; }
std::string Le32(uint32_t v) { return Le16(v & 0xFFFF) + Le16(static_cast<uint16_t>(v >> 16)); }

void ExpectHeader(const std::string& bytes, ImageFormat format, int width, int height) {
  absl::StatusOr<ImageHeader> header = ProbeHeader(bytes);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->format, format);
  EXPECT_EQ(header->width, width);
  EXPECT_EQ(header->height, height);
}

void ExpectProbeError(const std::string& bytes, const std::string& substring) {
  absl::StatusOr<ImageHeader> header = ProbeHeader(bytes);
  ASSERT_FALSE(header.ok());
  EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(header.status().message()), HasSubstr(substring));
}

// A hand-made JPEG header: SOI, `before_frame`, SOF0 declaring width x height.
std::string JpegHeader(const std::string& before_frame, uint16_t width, uint16_t height,
                       uint8_t sof = 0xC0) {
  const std::string sof_payload =
      std::string("\x08", 1) + Be16(height) + Be16(width) + std::string("\x01\x01\x11\x00", 4);
  return std::string("\xFF\xD8") + before_frame + "\xFF" + std::string(1, static_cast<char>(sof)) +
         Be16(static_cast<uint16_t>(sof_payload.size() + 2)) + sof_payload;
}

TEST(HeaderProbeTest, JpegSkipsSegmentsFillBytesAndStandaloneMarkers) {
  const std::string app0 = "\xFF\xE0" + Be16(16) + std::string("JFIF\0\1\1\0\0\1\0\1\0\0", 14);
  // DHT (C4) and DAC-free tables in the SOF range must not be taken for a frame header.
  const std::string dht = "\xFF\xC4" + Be16(6) + std::string("\0\0\0\0", 4);
  ExpectHeader(JpegHeader(app0 + dht, 640, 480), ImageFormat::kJpeg, 640, 480);
  ExpectHeader(JpegHeader("\xFF\xFF\xFF" + app0.substr(1), 33, 17), ImageFormat::kJpeg, 33, 17);
  ExpectHeader(JpegHeader(std::string("\xFF\xD0\xFF\x01", 4) + app0, 7, 9), ImageFormat::kJpeg, 7,
               9);
  ExpectHeader(JpegHeader(app0, 1000, 2000, 0xC2), ImageFormat::kJpeg, 1000, 2000);  // progressive
  ExpectHeader(JpegHeader(app0, 65535, 65535, 0xC1), ImageFormat::kJpeg, 65535, 65535);
}

TEST(HeaderProbeTest, JpegErrors) {
  ExpectProbeError(JpegHeader("", 0, 10), "width 0");
  ExpectProbeError(JpegHeader("", 10, 0), "DNL");
  ExpectProbeError(std::string("\xFF\xD8\xFF\xD9"), "end-of-image marker before the frame");
  ExpectProbeError(std::string("\xFF\xD8\xFF\xDA") + Be16(8), "scan data before the frame");
  ExpectProbeError(std::string("\xFF\xD8\xFF\xE0") + Be16(1), "segment length 1");
  ExpectProbeError(std::string("\xFF\xD8\xFF\xE0") + Be16(100) + "JFIF", "truncated JPEG");
  ExpectProbeError(std::string("\xFF\xD8\xFF"), "truncated JPEG");
  ExpectProbeError(std::string("\xFF\xD8"), "truncated JPEG");
}

TEST(HeaderProbeTest, JpegCompletenessNeedsEoiAfterTheScan) {
  const std::string jpeg = Encode(Quadrants(32, 32), ".jpg");
  EXPECT_TRUE(CheckComplete(ImageFormat::kJpeg, jpeg).ok());
  EXPECT_TRUE(CheckComplete(ImageFormat::kJpeg, jpeg + "trailing data").ok());
  // An EOI inside a header segment (before the scan) does not count.
  const std::string app = "\xFF\xE2" + Be16(6) + std::string("\xFF\xD9\0\0", 4);
  const std::string cut = jpeg.substr(0, jpeg.size() - 2);
  absl::Status status = CheckComplete(ImageFormat::kJpeg, cut.substr(0, 2) + app + cut.substr(2));
  EXPECT_THAT(std::string(status.message()), HasSubstr("truncated JPEG"));
}

TEST(HeaderProbeTest, PngIhdr) {
  const std::string ihdr = Be32(300) + Be32(200) + std::string("\x08\x06\0\0\0", 5);
  const std::string signature("\x89PNG\r\n\x1a\n", 8);
  ExpectHeader(signature + PngChunk("IHDR", ihdr), ImageFormat::kPng, 300, 200);
  ExpectProbeError(signature + PngChunk("IHDR", Be32(0) + Be32(5) + std::string(5, '\0')),
                   "IHDR declares 0x5");
  ExpectProbeError(signature + PngChunk("IHDR", Be32(0x80000000u) + Be32(5) + std::string(5, '\0')),
                   "IHDR declares");
  ExpectProbeError(signature + PngChunk("gAMA", std::string(13, '\0')), "not a 13-byte IHDR");
}

TEST(HeaderProbeTest, PngCompletenessWalksChunks) {
  const std::string png = Encode(Quadrants(32, 32), ".png");
  EXPECT_TRUE(CheckComplete(ImageFormat::kPng, png).ok());
  EXPECT_TRUE(CheckComplete(ImageFormat::kPng, png + "trailing").ok());
  // "IEND" bytes inside a chunk's data must not count as the IEND chunk.
  const std::string fake = png.substr(0, 33) + PngChunk("tEXt", "IEND IEND");
  EXPECT_FALSE(CheckComplete(ImageFormat::kPng, fake).ok());
}

// Found by fuzz/image_decode_fuzzer: the chunk type was copied raw into the message, which
// reaches the client in a proto3 string field (ItemStatus.message) and must be UTF-8.
TEST(HeaderProbeTest, ChunkTypesInMessagesAreEscaped) {
  const std::string png = Encode(Quadrants(8, 8), ".png");
  // A chunk of type B6 BA 4E 44 whose declared length runs past the end.
  const std::string cut = png.substr(0, 33) + Be32(1000) + std::string("\xb6\xbaND", 4) + "data";
  absl::Status status = CheckComplete(ImageFormat::kPng, cut);
  EXPECT_THAT(std::string(status.message()), HasSubstr("the chunk '\\xb6\\xbaND' at offset 33"));
  EXPECT_TRUE(IsValidUtf8(status.message())) << status;
  const std::string webp = "RIFF" + Le32(20) + "WEBP" + std::string("\xff\xfe\x00Z", 4) +
                           Le32(4) + "abcd";
  ExpectProbeError(webp, "first chunk is '\\xff\\xfe\\x00Z'");
  EXPECT_TRUE(IsValidUtf8(ProbeHeader(webp).status().message()));
}

std::string Riff(const std::string& chunks) {
  return "RIFF" + Le32(4 + chunks.size()) + "WEBP" + chunks;
}

TEST(HeaderProbeTest, WebpChunks) {
  // VP8 key frame: frame tag (bit 0 clear), start code, 14-bit sizes with 2 scale bits above.
  const std::string vp8 = std::string("\x50\x01\x00\x9d\x01\x2a", 6) + Le16(0xC000 | 321) +
                          Le16(0x4000 | 123) + std::string(4, '\0');
  ExpectHeader(Riff("VP8 " + Le32(vp8.size()) + vp8), ImageFormat::kWebp, 321, 123);
  // VP8L: 0x2F, then (width-1) in 14 bits and (height-1) in the next 14.
  const std::string vp8l = "\x2F" + Le32((1000 - 1) | ((700 - 1) << 14)) + std::string(3, '\0');
  ExpectHeader(Riff("VP8L" + Le32(vp8l.size()) + vp8l), ImageFormat::kWebp, 1000, 700);
  // VP8X: flags, 3 reserved, canvas (width-1), (height-1) as 24-bit little-endian.
  const std::string vp8x =
      std::string(4, '\0') + Le32(20000 - 1).substr(0, 3) + Le32(30000 - 1).substr(0, 3);
  ExpectHeader(Riff("VP8X" + Le32(vp8x.size()) + vp8x), ImageFormat::kWebp, 20000, 30000);

  ExpectProbeError(Riff("ALPH" + Le32(4) + "abcd"), "expected VP8, VP8L or VP8X");
  ExpectProbeError(Riff("VP8 " + Le32(10) + std::string("\x51\x01\x00\x9d\x01\x2a\0\0\0\0", 10)),
                   "key frame");
  ExpectProbeError(Riff("VP8L" + Le32(5) + std::string("\x2E\0\0\0\0", 5)), "VP8L signature");
  ExpectProbeError("RIFF\x10\0\0", "truncated WebP");
}

TEST(HeaderProbeTest, BmpHeaders) {
  // BITMAPCOREHEADER: 12 bytes, unsigned 16-bit sides.
  const std::string core =
      "BM" + Le32(0) + Le32(0) + Le32(26) + Le32(12) + Le16(40) + Le16(30) + Le16(1) + Le16(24);
  ExpectHeader(core, ImageFormat::kBmp, 40, 30);
  // BITMAPINFOHEADER with a negative (top-down) height.
  const std::string info = "BM" + Le32(0) + Le32(0) + Le32(54) + Le32(40) + Le32(17) +
                           Le32(static_cast<uint32_t>(-9)) + Le16(1) + Le16(24) + Le32(0) +
                           std::string(20, '\0');  // image size, resolution, palette counts
  ExpectHeader(info, ImageFormat::kBmp, 17, 9);
  ExpectProbeError("BM" + Le32(0) + Le32(0) + Le32(54) + Le32(7), "unsupported info header size 7");
  ExpectProbeError("BM" + Le32(0) + Le32(0) + Le32(54) + Le32(40) + Le32(0) + Le32(5) + Le16(1) +
                       Le16(24) + Le32(0),
                   "declares 0x5");
  // The rows of an uncompressed 17x9 24-bit image: 52 bytes each (51 padded to 4).
  EXPECT_FALSE(CheckComplete(ImageFormat::kBmp, info + std::string(52 * 9 - 1, '\0')).ok());
  EXPECT_TRUE(CheckComplete(ImageFormat::kBmp, info + std::string(52 * 9, '\0')).ok());
}

TEST(HeaderProbeTest, ShortPrefixesOfAMagicAreTruncated) {
  ExpectProbeError("\x89PNG", "truncated PNG");
  ExpectProbeError("RIFF", "truncated WebP");
  ExpectProbeError("\xFF\xD8", "truncated JPEG");
  ExpectProbeError("BM", "truncated BMP");
}

}  // namespace
}  // namespace retrace::image::internal
