#include "tests/support/test_images.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <vector>

namespace retrace::testing {
namespace {

std::string Encode(const cv::Mat& bgr, const std::string& ext) {
  std::vector<uint8_t> bytes;
  cv::imencode(ext, bgr, bytes);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

std::string SolidImage(int width, int height, std::array<uint8_t, 3> rgb, const std::string& ext) {
  cv::Mat bgr(height, width, CV_8UC3, cv::Scalar(rgb[2], rgb[1], rgb[0]));
  return Encode(bgr, ext);
}

std::string NoiseImage(int width, int height, int seed, const std::string& ext) {
  cv::Mat bgr(height, width, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(bgr, cv::RNG::UNIFORM, 0, 256);
  return Encode(bgr, ext);
}

}  // namespace retrace::testing
