#include "tests/unit/image/test_images.h"

#include <zlib.h>

#include <opencv2/imgcodecs.hpp>

#include "gtest/gtest.h"

namespace retrace::image::testing {

std::string Encode(const cv::Mat& image, const std::string& ext, const std::vector<int>& params) {
  std::vector<uint8_t> buffer;
  const bool ok = cv::imencode(ext, image, buffer, params);
  EXPECT_TRUE(ok) << "cv::imencode(" << ext << ") failed";
  return std::string(buffer.begin(), buffer.end());
}

cv::Mat Quadrants(int width, int height) {
  cv::Mat bgr(height, width, CV_8UC3);
  const int half_w = width / 2;
  const int half_h = height / 2;
  bgr(cv::Rect(0, 0, half_w, half_h)).setTo(cv::Scalar(0, 0, 255));                // red
  bgr(cv::Rect(half_w, 0, width - half_w, half_h)).setTo(cv::Scalar(0, 255, 0));   // green
  bgr(cv::Rect(0, half_h, half_w, height - half_h)).setTo(cv::Scalar(255, 0, 0));  // blue
  bgr(cv::Rect(half_w, half_h, width - half_w, height - half_h))
      .setTo(cv::Scalar(0, 255, 255));  // yellow
  return bgr;
}

Rgb PixelAt(const Image& image, int x, int y) {
  const size_t i = (static_cast<size_t>(y) * image.width + x) * 3;
  return {image.rgb[i], image.rgb[i + 1], image.rgb[i + 2]};
}

std::string Be16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)}; }

std::string Be32(uint32_t v) { return Be16(static_cast<uint16_t>(v >> 16)) + Be16(v & 0xFFFF); }

std::string PngChunk(std::string_view type, std::string_view data) {
  const std::string body = std::string(type) + std::string(data);
  const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(body.data()), body.size());
  return Be32(static_cast<uint32_t>(data.size())) + body + Be32(static_cast<uint32_t>(crc));
}

std::string PngWithIhdr(uint32_t width, uint32_t height) {
  // bit depth 8, colour type 2 (RGB), compression 0, filter 0, no interlace
  const std::string ihdr = Be32(width) + Be32(height) + std::string("\x08\x02\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + PngChunk("IHDR", ihdr) +
         PngChunk("IDAT", std::string("\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9)) +
         PngChunk("IEND", "");
}

std::string ExifApp1(const std::vector<std::pair<uint16_t, uint16_t>>& tags, bool little_endian) {
  auto u16 = [&](uint16_t v) {
    return little_endian ? std::string{static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)}
                         : Be16(v);
  };
  auto u32 = [&](uint32_t v) {
    return little_endian ? u16(v & 0xFFFF) + u16(static_cast<uint16_t>(v >> 16)) : Be32(v);
  };
  std::string tiff = little_endian ? std::string("II*\0", 4) : std::string("MM\0*", 4);
  tiff += u32(8);  // IFD0 right after this 8-byte header
  tiff += u16(static_cast<uint16_t>(tags.size()));
  for (const auto& [tag, value] : tags) {
    // tag, type 3 (SHORT), count 1, value left-justified in the 4-byte field
    tiff += u16(tag) + u16(3) + u32(1) + u16(value) + u16(0);
  }
  tiff += u32(0);  // no IFD1
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  return "\xFF\xE1" + Be16(static_cast<uint16_t>(payload.size() + 2)) + payload;
}

std::string WithSegmentAfterSoi(const std::string& jpeg, const std::string& segment) {
  return jpeg.substr(0, 2) + segment + jpeg.substr(2);
}

}  // namespace retrace::image::testing
