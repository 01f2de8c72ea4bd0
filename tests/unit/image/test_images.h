// test_images.h — builders for the encoded test inputs of the image tests.
//
// Inputs are made at test time with OpenCV's encoders (cv::imencode) or byte by byte for
// containers OpenCV will not write (a PNG declaring 100000x100000, EXIF segments), so the
// expectations come from how the inputs were built, never from the code under test.
//
// Thread-safety: pure functions.
//
//   std::string png = Encode(Quadrants(64, 48), ".png");
//   EXPECT_EQ(PixelAt(*DecodeImage(png, {}), 0, 0), (Rgb{255, 0, 0}));
#ifndef RETRACE_TESTS_UNIT_IMAGE_TEST_IMAGES_H_
#define RETRACE_TESTS_UNIT_IMAGE_TEST_IMAGES_H_

#include <array>
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/image/image.h"

namespace retrace::image::testing {

using Rgb = std::array<int, 3>;

// Encode runs cv::imencode(ext, image, params); fails the test (empty result) on error.
std::string Encode(const cv::Mat& image, const std::string& ext,
                   const std::vector<int>& params = {});

// Quadrants returns a BGR image whose quadrants are, in RGB: top-left red, top-right green,
// bottom-left blue, bottom-right yellow.
cv::Mat Quadrants(int width, int height);
inline constexpr Rgb kRed{255, 0, 0}, kGreen{0, 255, 0}, kBlue{0, 0, 255}, kYellow{255, 255, 0};

// PixelAt returns the RGB pixel at (x, y) of a decoded image.
Rgb PixelAt(const Image& image, int x, int y);

// Big-endian bytes, as PNG and JPEG headers store them.
std::string Be16(uint16_t v);
std::string Be32(uint32_t v);

// PngChunk returns length | type | data | CRC-32 of type and data (zlib's crc32).
std::string PngChunk(std::string_view type, std::string_view data);

// PngWithIhdr returns a complete-looking PNG (signature, IHDR, a tiny IDAT that does not
// hold width x height pixels, IEND) declaring width x height, 8-bit RGB.
std::string PngWithIhdr(uint32_t width, uint32_t height);

// ExifApp1 returns an APP1 segment (FF E1 ...) with "Exif\0\0" and a TIFF IFD0 whose entries
// are `tags` (tag, value) as SHORTs, in little- or big-endian byte order.
std::string ExifApp1(const std::vector<std::pair<uint16_t, uint16_t>>& tags, bool little_endian);

// WithSegmentAfterSoi inserts `segment` right after the JPEG's SOI marker.
std::string WithSegmentAfterSoi(const std::string& jpeg, const std::string& segment);

}  // namespace retrace::image::testing

#endif  // RETRACE_TESTS_UNIT_IMAGE_TEST_IMAGES_H_
