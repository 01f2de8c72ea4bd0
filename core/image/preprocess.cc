#include "core/image/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "absl/strings/str_cat.h"

namespace retrace::image {
namespace {

constexpr int kMaxSize = 4096;

// Die reports a violated REQUIRES (a caller's bug) and aborts, as a failed CHECK would.
[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "retrace::image::PreprocessInto: %s\n", message.c_str());
  std::abort();
}

// ResizeTo resizes `src` to width x height (see the banner of preprocess.h for why an axis
// shrinking below 1/2 is first reduced with INTER_AREA to twice the target).
cv::Mat ResizeTo(const cv::Mat& src, int width, int height, Interpolation interpolation) {
  if (src.cols == width && src.rows == height) return src;
  cv::Mat from = src;
  if (2 * width < src.cols || 2 * height < src.rows) {
    const cv::Size halfway(std::min(src.cols, 2 * width), std::min(src.rows, 2 * height));
    cv::resize(src, from, halfway, 0, 0, cv::INTER_AREA);
  }
  cv::Mat out;
  cv::resize(from, out, cv::Size(width, height), 0, 0,
             interpolation == Interpolation::kBilinear ? cv::INTER_LINEAR : cv::INTER_CUBIC);
  return out;
}

// HalfRoundedToEven returns Python's round(d / 2.0): halves go to the even neighbour.
int HalfRoundedToEven(int d) {
  const int half = d / 2;
  return (d % 2 != 0 && half % 2 != 0) ? half + 1 : half;
}

// CropOfUpscaled returns the size x size window at (left, top) of `src` upscaled to
// new_w x new_h, computing only that window: each output pixel samples the source where
// cv::resize would ((x + 0.5) * src / dst - 0.5 on each axis, edges replicated), with the same
// cubic or linear kernel, by cv::remap. Values can differ from resize-then-crop by one level
// (remap rounds source positions to 1/32 pixel). REQUIRES: an upscale on both axes, so resize
// needs no INTER_AREA pass either.
cv::Mat CropOfUpscaled(const cv::Mat& src, int new_w, int new_h, int left, int top, int size,
                       Interpolation interpolation) {
  // As cv::resize computes its scales: 1 / (dst / src), in double.
  const double scale_x = 1.0 / (static_cast<double>(new_w) / src.cols);
  const double scale_y = 1.0 / (static_cast<double>(new_h) / src.rows);
  cv::Mat map_x(size, size, CV_32FC1);
  cv::Mat map_y(size, size, CV_32FC1);
  for (int y = 0; y < size; ++y) {
    const float sy = static_cast<float>((top + y + 0.5) * scale_y - 0.5);
    float* mx = map_x.ptr<float>(y);
    float* my = map_y.ptr<float>(y);
    for (int x = 0; x < size; ++x) {
      mx[x] = static_cast<float>((left + x + 0.5) * scale_x - 0.5);
      my[x] = sy;
    }
  }
  cv::Mat out;
  cv::remap(src, out, map_x, map_y,
            interpolation == Interpolation::kBilinear ? cv::INTER_LINEAR : cv::INTER_CUBIC,
            cv::BORDER_REPLICATE);
  return out;
}

// CenterCropped: torchvision Resize(size) then CenterCrop(size); a size x size image.
cv::Mat CenterCropped(const cv::Mat& src, int size, Interpolation interpolation) {
  const int short_side = std::min(src.cols, src.rows);
  const int long_side = std::max(src.cols, src.rows);
  // Python: int(size * long / short) — an exact integer product, one division, truncation.
  const int new_long =
      static_cast<int>(static_cast<double>(int64_t{size} * long_side) / short_side);
  const int new_w = src.cols <= src.rows ? size : new_long;
  const int new_h = src.cols <= src.rows ? new_long : size;
  const int top = HalfRoundedToEven(new_h - size);
  const int left = HalfRoundedToEven(new_w - size);
  // Upscaling a thin image makes the intermediate image size x (size * aspect ratio): a
  // 1 x 16384 image, a few hundred bytes of PNG, would become 224 x 3.7M (2.5 GB) to keep
  // 224 rows. Past 4:1, only the kept window is computed. Shrinking is left to the exact path:
  // its intermediate is smaller than the decoded image.
  if (short_side < size && int64_t{new_w} * new_h > int64_t{4} * size * size) {
    return CropOfUpscaled(src, new_w, new_h, left, top, size, interpolation);
  }
  const cv::Mat resized = ResizeTo(src, new_w, new_h, interpolation);
  return resized(cv::Rect(left, top, size, size));
}

// Letterboxed: the longer side to `size`, centred on a `fill` canvas.
cv::Mat Letterboxed(const cv::Mat& src, int size, Interpolation interpolation,
                    const std::array<uint8_t, 3>& fill) {
  const double scale = static_cast<double>(size) / std::max(src.cols, src.rows);
  const int new_w = std::clamp(static_cast<int>(std::lround(src.cols * scale)), 1, size);
  const int new_h = std::clamp(static_cast<int>(std::lround(src.rows * scale)), 1, size);
  const cv::Mat resized = ResizeTo(src, new_w, new_h, interpolation);
  // `src` is RGB, so the Scalar is in RGB order too.
  cv::Mat canvas(size, size, CV_8UC3, cv::Scalar(fill[0], fill[1], fill[2]));
  resized.copyTo(canvas(cv::Rect((size - new_w) / 2, (size - new_h) / 2, new_w, new_h)));
  return canvas;
}

// WriteNormalizedChw writes `square` (size x size RGB) as normalised CHW planes.
void WriteNormalizedChw(const cv::Mat& square, const PreprocessSpec& spec, float* out) {
  // A table per channel computes the formula exactly once per possible byte value.
  float table[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      table[c][v] = (static_cast<float>(v) / 255.0f - spec.mean[c]) / spec.std[c];
    }
  }
  const size_t plane = size_t{1} * spec.size * spec.size;
  float* r = out;
  float* g = out + plane;
  float* b = out + 2 * plane;
  for (int y = 0; y < spec.size; ++y) {
    const uint8_t* px = square.ptr<uint8_t>(y);
    for (int x = 0; x < spec.size; ++x, px += 3) {
      *r++ = table[0][px[0]];
      *g++ = table[1][px[1]];
      *b++ = table[2][px[2]];
    }
  }
}

}  // namespace

absl::Status ValidatePreprocessSpec(const PreprocessSpec& spec) {
  if (spec.size < 1 || spec.size > kMaxSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("PreprocessSpec.size is ", spec.size, ", must be in 1..", kMaxSize));
  }
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(spec.mean[c])) {
      return absl::InvalidArgumentError(
          absl::StrCat("PreprocessSpec.mean[", c, "] is ", spec.mean[c], ", must be finite"));
    }
    if (!std::isfinite(spec.std[c]) || !(spec.std[c] > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("PreprocessSpec.std[", c, "] is ", spec.std[c], ", must be finite and > 0"));
    }
  }
  switch (spec.resize_mode) {
    case ResizeMode::kShortestSideCenterCrop:
    case ResizeMode::kLetterbox:
    case ResizeMode::kStretch:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("PreprocessSpec.resize_mode is ",
                                                     static_cast<int>(spec.resize_mode),
                                                     ", not a ResizeMode"));
  }
  if (spec.interpolation != Interpolation::kBicubic &&
      spec.interpolation != Interpolation::kBilinear) {
    return absl::InvalidArgumentError(absl::StrCat("PreprocessSpec.interpolation is ",
                                                   static_cast<int>(spec.interpolation),
                                                   ", not an Interpolation"));
  }
  return absl::OkStatus();
}

void PreprocessInto(const Image& image, const PreprocessSpec& spec, float* out) {
  if (absl::Status status = ValidatePreprocessSpec(spec); !status.ok()) {
    Die(std::string(status.message()));
  }
  if (image.width < 1 || image.height < 1 ||
      image.rgb.size() != size_t{3} * image.width * image.height) {
    Die(absl::StrCat("image is ", image.width, "x", image.height, " with ", image.rgb.size(),
                     " bytes; needs width, height >= 1 and width * height * 3 bytes"));
  }
  try {
    // Read-only view of the caller's pixels; nothing below writes through it.
    const cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
    cv::Mat square;
    switch (spec.resize_mode) {
      case ResizeMode::kShortestSideCenterCrop:
        square = CenterCropped(rgb, spec.size, spec.interpolation);
        break;
      case ResizeMode::kLetterbox:
        square = Letterboxed(rgb, spec.size, spec.interpolation, spec.letterbox_fill);
        break;
      case ResizeMode::kStretch:
        square = ResizeTo(rgb, spec.size, spec.size, spec.interpolation);
        break;
    }
    WriteNormalizedChw(square, spec, out);
  } catch (const cv::Exception& e) {
    Die(absl::StrCat("OpenCV failed: ", e.err));  // unreachable with the REQUIREs met
  } catch (const std::exception& e) {
    Die(absl::StrCat("failed: ", e.what()));  // std::bad_alloc
  }
}

std::vector<float> Preprocess(const Image& image, const PreprocessSpec& spec) {
  // Checked before allocating: a bad size would make the vector's length nonsense.
  if (absl::Status status = ValidatePreprocessSpec(spec); !status.ok()) {
    Die(std::string(status.message()));
  }
  std::vector<float> out(size_t{3} * spec.size * spec.size);
  PreprocessInto(image, spec, out.data());
  return out;
}

bool SameGeometry(const PreprocessSpec& a, const PreprocessSpec& b) {
  return a.size == b.size && a.resize_mode == b.resize_mode &&
         a.interpolation == b.interpolation && a.mean == b.mean && a.std == b.std &&
         a.letterbox_fill == b.letterbox_fill;
}

}  // namespace retrace::image
