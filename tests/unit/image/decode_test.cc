// Tests for DecodeImage / ProbeImage: round trips per format, colour handling, EXIF
// orientation, and every rejection an untrusted client can cause.
#include "core/image/decode.h"

#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/image/test_images.h"

namespace retrace::image {
namespace {

using ::retrace::image::testing::Encode;
using ::retrace::image::testing::ExifApp1;
using ::retrace::image::testing::kBlue;
using ::retrace::image::testing::kGreen;
using ::retrace::image::testing::kRed;
using ::retrace::image::testing::kYellow;
using ::retrace::image::testing::PixelAt;
using ::retrace::image::testing::PngWithIhdr;
using ::retrace::image::testing::Quadrants;
using ::retrace::image::testing::Rgb;
using ::retrace::image::testing::WithSegmentAfterSoi;
using ::testing::AllOf;
using ::testing::HasSubstr;

MATCHER_P2(NearRgb, expected, tolerance, "") {
  for (int c = 0; c < 3; ++c) {
    if (std::abs(arg[c] - expected[c]) > tolerance) {
      *result_listener << "channel " << c << " is " << arg[c] << ", expected " << expected[c];
      return false;
    }
  }
  return true;
}

// ExpectInvalid checks that decoding fails with INVALID_ARGUMENT and a message matching `m`.
template <typename Matcher>
void ExpectInvalid(std::string_view bytes, Matcher m, const DecodeLimits& limits = {}) {
  const absl::StatusOr<Image> image = DecodeImage(bytes, limits);
  ASSERT_FALSE(image.ok()) << "decoded a " << image->width << "x" << image->height << " image";
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument) << image.status();
  EXPECT_THAT(std::string(image.status().message()), m);
}

// --- Round trips -------------------------------------------------------------------------

struct RoundTripCase {
  std::string name;
  std::string ext;
  std::vector<int> params;
  ImageFormat format;
  int tolerance;  // lossy codecs blur colours near edges; quadrant centres stay close
};

// PrintTo keeps CTest's test names short (gtest would print the struct's bytes).
void PrintTo(const RoundTripCase& c, std::ostream* os) { *os << c.name; }

class RoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTripTest, SizeColoursAndRgbOrder) {
  const RoundTripCase& c = GetParam();
  const std::string bytes = Encode(Quadrants(64, 48), c.ext, c.params);
  absl::StatusOr<ImageHeader> header = ProbeImage(bytes);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->format, c.format);
  EXPECT_EQ(header->width, 64);
  EXPECT_EQ(header->height, 48);
  EXPECT_EQ(header->exif_orientation, 1);

  absl::StatusOr<Image> image = DecodeImage(bytes, DecodeLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->width, 64);
  ASSERT_EQ(image->height, 48);
  ASSERT_EQ(image->rgb.size(), 64u * 48 * 3);
  EXPECT_THAT(PixelAt(*image, 16, 12), NearRgb(kRed, c.tolerance));
  EXPECT_THAT(PixelAt(*image, 48, 12), NearRgb(kGreen, c.tolerance));
  EXPECT_THAT(PixelAt(*image, 16, 36), NearRgb(kBlue, c.tolerance));
  EXPECT_THAT(PixelAt(*image, 48, 36), NearRgb(kYellow, c.tolerance));
}

INSTANTIATE_TEST_SUITE_P(
    Formats, RoundTripTest,
    ::testing::Values(
        RoundTripCase{"Png", ".png", {}, ImageFormat::kPng, 0},
        RoundTripCase{"Bmp", ".bmp", {}, ImageFormat::kBmp, 0},
        RoundTripCase{"Jpeg", ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95}, ImageFormat::kJpeg, 12},
        RoundTripCase{"JpegProgressive",
                      ".jpg",
                      {cv::IMWRITE_JPEG_QUALITY, 95, cv::IMWRITE_JPEG_PROGRESSIVE, 1},
                      ImageFormat::kJpeg,
                      12},
        RoundTripCase{"WebpLossy", ".webp", {cv::IMWRITE_WEBP_QUALITY, 95}, ImageFormat::kWebp, 20},
        // quality above 100 selects lossless WebP (a VP8L chunk)
        RoundTripCase{
            "WebpLossless", ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}, ImageFormat::kWebp, 0}),
    [](const ::testing::TestParamInfo<RoundTripCase>& info) { return info.param.name; });

TEST(DecodeImageTest, FormatNames) {
  EXPECT_EQ(FormatName(ImageFormat::kJpeg), "JPEG");
  EXPECT_EQ(FormatName(ImageFormat::kPng), "PNG");
  EXPECT_EQ(FormatName(ImageFormat::kWebp), "WebP");
  EXPECT_EQ(FormatName(ImageFormat::kBmp), "BMP");
}

// --- Colour handling ---------------------------------------------------------------------

TEST(DecodeImageTest, GrayscalePngBecomesEqualRgb) {
  cv::Mat gray(10, 12, CV_8UC1, cv::Scalar(77));
  gray.at<uint8_t>(0, 0) = 200;
  absl::StatusOr<Image> image = DecodeImage(Encode(gray, ".png"), {});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 12);
  EXPECT_EQ(image->height, 10);
  EXPECT_EQ(PixelAt(*image, 0, 0), (Rgb{200, 200, 200}));
  EXPECT_EQ(PixelAt(*image, 5, 5), (Rgb{77, 77, 77}));
}

TEST(DecodeImageTest, GrayscaleJpegBecomesEqualRgb) {
  cv::Mat gray(16, 16, CV_8UC1, cv::Scalar(90));
  absl::StatusOr<Image> image = DecodeImage(Encode(gray, ".jpg"), {});
  ASSERT_TRUE(image.ok()) << image.status();
  const Rgb p = PixelAt(*image, 8, 8);
  EXPECT_EQ(p[0], p[1]);
  EXPECT_EQ(p[1], p[2]);
  EXPECT_NEAR(p[0], 90, 2);
}

TEST(DecodeImageTest, TransparencyIsCompositedOverWhite) {
  // BGRA: left third fully transparent black, middle half-transparent black, right opaque red.
  cv::Mat bgra(8, 30, CV_8UC4, cv::Scalar(0, 0, 0, 0));
  bgra(cv::Rect(10, 0, 10, 8)).setTo(cv::Scalar(0, 0, 0, 128));
  bgra(cv::Rect(20, 0, 10, 8)).setTo(cv::Scalar(0, 0, 255, 255));
  for (const char* ext : {".png", ".webp"}) {
    SCOPED_TRACE(ext);
    std::vector<int> params;
    if (std::string(ext) == ".webp") params = {cv::IMWRITE_WEBP_QUALITY, 101};  // lossless
    absl::StatusOr<Image> image = DecodeImage(Encode(bgra, ext, params), {});
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(PixelAt(*image, 5, 4), (Rgb{255, 255, 255}));
    // black at alpha 128/255 over white: 255 * (1 - 128/255) = 127
    EXPECT_THAT(PixelAt(*image, 15, 4), NearRgb(Rgb{127, 127, 127}, 1));
    EXPECT_EQ(PixelAt(*image, 25, 4), kRed);
  }
}

TEST(DecodeImageTest, LossyWebpWithAlphaUsesVp8xChunk) {
  cv::Mat bgra(16, 16, CV_8UC4, cv::Scalar(255, 0, 0, 255));
  bgra(cv::Rect(0, 0, 8, 16)).setTo(cv::Scalar(0, 0, 0, 0));
  const std::string bytes = Encode(bgra, ".webp", {cv::IMWRITE_WEBP_QUALITY, 90});
  ASSERT_EQ(bytes.substr(12, 4), "VP8X");  // else this test does not cover VP8X
  absl::StatusOr<Image> image = DecodeImage(bytes, {});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 16);
  EXPECT_THAT(PixelAt(*image, 2, 8), NearRgb(Rgb{255, 255, 255}, 8));
  EXPECT_THAT(PixelAt(*image, 13, 8), NearRgb(kBlue, 20));
}

TEST(DecodeImageTest, SixteenBitPngIsScaledToEightBit) {
  // BGR order: B = 0, G = 128 * 257, R = 65535
  cv::Mat deep(6, 7, CV_16UC3, cv::Scalar(0, 128 * 257, 65535));
  absl::StatusOr<Image> image = DecodeImage(Encode(deep, ".png"), {});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 7);
  EXPECT_EQ(PixelAt(*image, 3, 3), (Rgb{255, 128, 0}));
}

TEST(DecodeImageTest, TopDownBmpWithNegativeHeight) {
  // cv::imencode writes bottom-up rows; flip the rows and negate the height by hand.
  const cv::Mat bgr = Quadrants(8, 6);
  std::string bmp = Encode(bgr, ".bmp");
  const uint32_t offset = static_cast<uint8_t>(bmp[10]) | (static_cast<uint8_t>(bmp[11]) << 8);
  const size_t row = 8 * 3;  // 24 bytes, already a multiple of 4
  std::string flipped = bmp.substr(0, offset);
  for (int y = 5; y >= 0; --y) flipped += bmp.substr(offset + y * row, row);
  const int32_t negative = -6;
  for (int i = 0; i < 4; ++i) flipped[22 + i] = static_cast<char>((negative >> (8 * i)) & 0xFF);

  absl::StatusOr<ImageHeader> header = ProbeImage(flipped);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->height, 6);
  absl::StatusOr<Image> image = DecodeImage(flipped, {});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->height, 6);
  EXPECT_EQ(PixelAt(*image, 0, 0), kRed);
  EXPECT_EQ(PixelAt(*image, 7, 5), kYellow);
}

// --- EXIF orientation --------------------------------------------------------------------

// Stored picture: 48x32, a red 16x16 block in the top-left corner, a green one in the
// top-right corner, grey elsewhere. Blocks align with JPEG's 16x16 MCUs so colours survive.
std::string MarkedCornersJpeg() {
  cv::Mat bgr(32, 48, CV_8UC3, cv::Scalar(128, 128, 128));
  bgr(cv::Rect(0, 0, 16, 16)).setTo(cv::Scalar(0, 0, 255));
  bgr(cv::Rect(32, 0, 16, 16)).setTo(cv::Scalar(0, 255, 0));
  return Encode(bgr, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
}

enum Corner { kTopLeft, kTopRight, kBottomLeft, kBottomRight };

Rgb CornerPixel(const Image& image, Corner corner) {
  const int x = (corner == kTopLeft || corner == kBottomLeft) ? 8 : image.width - 9;
  const int y = (corner == kTopLeft || corner == kTopRight) ? 8 : image.height - 9;
  return PixelAt(image, x, y);
}

struct OrientationCase {
  int orientation;
  bool swaps_sides;
  Corner red;    // where the stored top-left corner is displayed
  Corner green;  // where the stored top-right corner is displayed
};

void PrintTo(const OrientationCase& c, std::ostream* os) { *os << "orientation " << c.orientation; }

class ExifOrientationTest
    : public ::testing::TestWithParam<std::tuple<OrientationCase, bool /*little_endian*/>> {};

// Expectations follow the EXIF 2.3 definitions of the tag ("the 0th row is the visual
// right-hand side, the 0th column the visual top" for 6, etc.).
TEST_P(ExifOrientationTest, DecodedPictureIsTurnedAsTheTagSays) {
  const auto& [c, little_endian] = GetParam();
  const std::string jpeg = WithSegmentAfterSoi(
      MarkedCornersJpeg(),
      ExifApp1({{0x0112, static_cast<uint16_t>(c.orientation)}}, little_endian));

  absl::StatusOr<ImageHeader> header = ProbeImage(jpeg);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->exif_orientation, c.orientation);
  EXPECT_EQ(header->width, 48);  // as stored
  EXPECT_EQ(header->height, 32);

  absl::StatusOr<Image> image = DecodeImage(jpeg, {});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, c.swaps_sides ? 32 : 48);
  EXPECT_EQ(image->height, c.swaps_sides ? 48 : 32);
  EXPECT_THAT(CornerPixel(*image, c.red), NearRgb(kRed, 40));
  EXPECT_THAT(CornerPixel(*image, c.green), NearRgb(kGreen, 40));
}

INSTANTIATE_TEST_SUITE_P(
    AllEight, ExifOrientationTest,
    ::testing::Combine(::testing::Values(OrientationCase{1, false, kTopLeft, kTopRight},
                                         OrientationCase{2, false, kTopRight, kTopLeft},
                                         OrientationCase{3, false, kBottomRight, kBottomLeft},
                                         OrientationCase{4, false, kBottomLeft, kBottomRight},
                                         OrientationCase{5, true, kTopLeft, kBottomLeft},
                                         OrientationCase{6, true, kTopRight, kBottomRight},
                                         OrientationCase{7, true, kBottomRight, kTopRight},
                                         OrientationCase{8, true, kBottomLeft, kTopLeft}),
                       ::testing::Bool()),
    [](const auto& info) {
      return "Orientation" + std::to_string(std::get<0>(info.param).orientation) +
             (std::get<1>(info.param) ? "LittleEndian" : "BigEndian");
    });

TEST(DecodeImageTest, OrientationTagAfterOtherTagsIsFound) {
  // ImageWidth (0x0100), Make-like junk tag, then Orientation 6.
  const std::string jpeg = WithSegmentAfterSoi(
      MarkedCornersJpeg(), ExifApp1({{0x0100, 48}, {0x010F, 7}, {0x0112, 6}}, false));
  absl::StatusOr<Image> image = DecodeImage(jpeg, {});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 32);
  EXPECT_THAT(CornerPixel(*image, kTopRight), NearRgb(kRed, 40));
}

TEST(DecodeImageTest, MalformedExifIsIgnored) {
  // An IFD0 offset far past the segment, and an orientation value out of range.
  std::string bad_offset = ExifApp1({{0x0112, 6}}, true);
  bad_offset[4 + 6 + 4] =
      '\xF0';  // low byte of the IFD0 offset (after FF E1, length, Exif\0\0, II*\0)
  bad_offset[4 + 6 + 7] = '\x7F';
  for (const std::string& app1 : {bad_offset, ExifApp1({{0x0112, 9}}, true)}) {
    const std::string jpeg = WithSegmentAfterSoi(MarkedCornersJpeg(), app1);
    absl::StatusOr<Image> image = DecodeImage(jpeg, {});
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(image->width, 48);
    EXPECT_THAT(CornerPixel(*image, kTopLeft), NearRgb(kRed, 40));
  }
}

// --- Rejections --------------------------------------------------------------------------

TEST(DecodeImageRejectTest, Empty) { ExpectInvalid("", HasSubstr("image is empty (0 bytes)")); }

TEST(DecodeImageRejectTest, ZeroBytes) {
  ExpectInvalid(std::string(1024, '\0'),
                AllOf(HasSubstr("not a supported image format (JPEG, PNG, WebP, BMP)"),
                      HasSubstr("all zero bytes"), HasSubstr("00 00 00 00")));
}

TEST(DecodeImageRejectTest, RandomBytes) {
  std::mt19937 rng(1234);
  std::string bytes(4096, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
  bytes[0] = '\x13';  // pin the first byte so no seed can start with a supported magic
  ExpectInvalid(bytes,
                AllOf(HasSubstr("not a supported image format"), HasSubstr("first bytes 13")));
}

TEST(DecodeImageRejectTest, Gif) {
  ExpectInvalid(std::string("GIF89a\x01\x00\x01\x00\x80\x00\x00", 13),
                AllOf(HasSubstr("not a supported image format"), HasSubstr("looks like GIF"),
                      HasSubstr("47 49 46 38 39 61")));
}

TEST(DecodeImageRejectTest, Tiff) {
  ExpectInvalid(std::string("II*\0\x08\0\0\0\0\0", 10),
                AllOf(HasSubstr("not a supported image format"), HasSubstr("TIFF")));
  ExpectInvalid(std::string("MM\0*\0\0\0\x08\0\0", 10), HasSubstr("TIFF"));
}

TEST(DecodeImageRejectTest, SvgAndHtmlText) {
  ExpectInvalid("<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
                AllOf(HasSubstr("not a supported image format"), HasSubstr("SVG")));
  ExpectInvalid("  <svg width=\"10\" height=\"10\"></svg>", HasSubstr("SVG"));
  ExpectInvalid("<!DOCTYPE html><html><body>Not Found</body></html>",
                AllOf(HasSubstr("not a supported image format"), HasSubstr("HTML"),
                      HasSubstr("first bytes 3c 21 44 4f")));
}

TEST(DecodeImageRejectTest, OtherFormatsAreNamed) {
  ExpectInvalid("%PDF-1.7\n", HasSubstr("PDF"));
  ExpectInvalid(std::string("\0\0\0\x1c"
                            "ftypavif\0\0\0\0",
                            16),
                HasSubstr("AVIF"));
  ExpectInvalid(std::string("RIFF\x24\0\0\0WAVEfmt ", 16), HasSubstr("not WebP"));
  ExpectInvalid("/9j/4AAQSkZJRgABAQ", HasSubstr("base64"));
}

TEST(DecodeImageRejectTest, JpegCutInHalf) {
  // Noise, so that most of the file is scan data and the cut lands inside the scan, where
  // libjpeg would only warn and fill the rest with grey.
  cv::Mat noise(128, 128, CV_8UC3);
  cv::RNG rng(42);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
  const std::string jpeg = Encode(noise, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
  ASSERT_GT(jpeg.size(), 10000u);  // headers and tables are under 1 KB
  ExpectInvalid(jpeg.substr(0, jpeg.size() / 2), HasSubstr("truncated JPEG"));
  // The complete file, and the file with a few trailing zero bytes, decode.
  EXPECT_TRUE(DecodeImage(jpeg, {}).ok());
  EXPECT_TRUE(DecodeImage(jpeg + std::string(4, '\0'), {}).ok());
}

TEST(DecodeImageRejectTest, JpegCutBeforeItsEndMarker) {
  const std::string jpeg = Encode(Quadrants(64, 48), ".jpg");
  ASSERT_EQ(jpeg.substr(jpeg.size() - 2), "\xFF\xD9");
  ExpectInvalid(jpeg.substr(0, jpeg.size() - 2), HasSubstr("truncated JPEG"));
}

TEST(DecodeImageRejectTest, PngCutAfterIhdr) {
  const std::string png = Encode(Quadrants(64, 48), ".png");
  const std::string cut = png.substr(0, 8 + 25);  // signature + IHDR chunk (12 + 13 bytes)
  ASSERT_TRUE(ProbeImage(cut).ok());              // the header alone is intact
  ExpectInvalid(cut, HasSubstr("truncated PNG"));
  ExpectInvalid(png.substr(0, png.size() - 12), HasSubstr("truncated PNG"));  // IEND missing
  ExpectInvalid(png.substr(0, png.size() / 2), HasSubstr("truncated PNG"));
}

TEST(DecodeImageRejectTest, TruncatedHeaders) {
  ExpectInvalid(Encode(Quadrants(64, 48), ".jpg").substr(0, 10), HasSubstr("truncated JPEG"));
  ExpectInvalid(Encode(Quadrants(64, 48), ".png").substr(0, 20), HasSubstr("truncated PNG"));
  ExpectInvalid(Encode(Quadrants(64, 48), ".png").substr(0, 5), HasSubstr("truncated PNG"));
  ExpectInvalid(Encode(Quadrants(64, 48), ".webp").substr(0, 16), HasSubstr("truncated WebP"));
  ExpectInvalid(Encode(Quadrants(64, 48), ".bmp").substr(0, 20), HasSubstr("truncated BMP"));
}

TEST(DecodeImageRejectTest, TruncatedWebpAndBmpData) {
  const std::string webp = Encode(Quadrants(64, 48), ".webp");
  ExpectInvalid(webp.substr(0, webp.size() - 10), HasSubstr("truncated WebP"));
  const std::string bmp = Encode(Quadrants(64, 48), ".bmp");
  ExpectInvalid(bmp.substr(0, bmp.size() - 10), HasSubstr("truncated BMP"));
}

TEST(DecodeImageRejectTest, DecompressionBombRejectedFromTheHeader) {
  const std::string bomb = PngWithIhdr(100000, 100000);  // ~70 bytes
  absl::StatusOr<ImageHeader> header = ProbeImage(bomb);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->width, 100000);
  EXPECT_EQ(header->height, 100000);
  // Raise max_side so the pixel limit is the one that trips. Had the IDAT been decoded, the
  // error would be "could not decode PNG" (the IDAT holds one byte), not the pixel count.
  DecodeLimits limits;
  limits.max_side = 1 << 20;
  ExpectInvalid(bomb,
                AllOf(HasSubstr("100000x100000"), HasSubstr("10000000000 pixels"),
                      HasSubstr("over the limit of 50000000 pixels")),
                limits);
  // With the default limits the side limit trips first.
  ExpectInvalid(bomb, AllOf(HasSubstr("100000x100000"), HasSubstr("16384")));
}

TEST(DecodeImageRejectTest, SideLimit) {
  ExpectInvalid(PngWithIhdr(20000, 10),
                AllOf(HasSubstr("20000x10"), HasSubstr("over the limit of 16384 pixels per side")));
}

TEST(DecodeImageRejectTest, PixelLimitBoundary) {
  const std::string png = Encode(cv::Mat(100, 100, CV_8UC3, cv::Scalar(1, 2, 3)), ".png");
  DecodeLimits limits;
  limits.max_pixels = 10000;
  EXPECT_TRUE(DecodeImage(png, limits).ok());
  limits.max_pixels = 9999;
  ExpectInvalid(png, AllOf(HasSubstr("100x100 (10000 pixels)"), HasSubstr("9999")), limits);
}

TEST(DecodeImageRejectTest, ByteLimit) {
  const std::string png = Encode(Quadrants(64, 48), ".png");
  DecodeLimits limits;
  limits.max_bytes = png.size();
  EXPECT_TRUE(DecodeImage(png, limits).ok());
  limits.max_bytes = 100;
  ExpectInvalid(png,
                AllOf(HasSubstr(std::to_string(png.size()) + " bytes"),
                      HasSubstr("over the limit of 100 bytes")),
                limits);
}

TEST(DecodeImageRejectTest, CorruptPixelDataCouldNotDecode) {
  // Structurally complete PNG whose IDAT cannot hold 16x16 pixels.
  ExpectInvalid(PngWithIhdr(16, 16), HasSubstr("could not decode PNG"));
}

// --- Concurrency -------------------------------------------------------------------------

TEST(DecodeImageTest, ConcurrentDecodesAgree) {
  const std::string jpeg = WithSegmentAfterSoi(MarkedCornersJpeg(), ExifApp1({{0x0112, 6}}, true));
  const absl::StatusOr<Image> reference = DecodeImage(jpeg, {});
  ASSERT_TRUE(reference.ok()) << reference.status();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        absl::StatusOr<Image> image = DecodeImage(jpeg, {});
        if (!image.ok() || image->rgb != reference->rgb) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace retrace::image
