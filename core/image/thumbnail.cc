#include "core/image/thumbnail.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"

namespace retrace::image {

absl::StatusOr<std::string> EncodeThumbnail(const Image& image, int longest_side, int quality) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return absl::InvalidArgumentError("thumbnail: the image is empty");
  }
  if (longest_side < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("thumbnail: the longest side must be at least 1, not ", longest_side));
  }
  const cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
  cv::Mat bgr;
  const int longest = std::max(image.width, image.height);
  if (longest > longest_side) {
    const double scale = static_cast<double>(longest_side) / longest;
    const int width = std::max(1, static_cast<int>(std::lround(image.width * scale)));
    const int height = std::max(1, static_cast<int>(std::lround(image.height * scale)));
    cv::Mat small;
    cv::resize(rgb, small, cv::Size(width, height), 0, 0, cv::INTER_AREA);
    cv::cvtColor(small, bgr, cv::COLOR_RGB2BGR);
  } else {
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  }
  std::vector<uint8_t> jpeg;
  try {
    if (!cv::imencode(".jpg", bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, std::clamp(quality, 1, 100)})) {
      return absl::InternalError("thumbnail: JPEG encoding failed");
    }
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("thumbnail: JPEG encoding failed: ", e.what()));
  }
  return std::string(jpeg.begin(), jpeg.end());
}

}  // namespace retrace::image
