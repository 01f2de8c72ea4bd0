#include "core/image/decode.h"

#include <climits>
#include <exception>
#include <new>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/image/internal/header_probe.h"

namespace retrace::image {
namespace {

// OpenCV logs decoder warnings to stderr; with untrusted input that is noise (our statuses
// carry the information). Its log level is process-wide, so this is done once.
void SilenceOpenCvLogging() {
  static const bool silenced = [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    return true;
  }();
  (void)silenced;
}

absl::Status CheckLimits(const ImageHeader& header, const DecodeLimits& limits) {
  if (header.width > limits.max_side || header.height > limits.max_side) {
    return absl::InvalidArgumentError(absl::StrCat("image is ", header.width, "x", header.height,
                                                   ", over the limit of ", limits.max_side,
                                                   " pixels per side"));
  }
  const int64_t pixels = int64_t{header.width} * header.height;
  if (pixels > limits.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("image is ", header.width, "x", header.height,
                                                   " (", pixels, " pixels), over the limit of ",
                                                   limits.max_pixels, " pixels"));
  }
  return absl::OkStatus();
}

// ApplyExifOrientation turns the stored pixels into the picture as it should be displayed.
// The EXIF value says where the stored row 0 and column 0 belong: 2 mirrored, 3 upside down,
// 4 flipped vertically, 5 transposed, 6 needs 90 degrees clockwise, 7 transverse, 8 needs
// 90 degrees counter-clockwise.
cv::Mat ApplyExifOrientation(const cv::Mat& stored, int orientation) {
  cv::Mat out;
  switch (orientation) {
    case 2:
      cv::flip(stored, out, 1);
      return out;
    case 3:
      cv::rotate(stored, out, cv::ROTATE_180);
      return out;
    case 4:
      cv::flip(stored, out, 0);
      return out;
    case 5:
      cv::transpose(stored, out);
      return out;
    case 6:
      cv::rotate(stored, out, cv::ROTATE_90_CLOCKWISE);
      return out;
    case 7:
      cv::transpose(stored, out);
      cv::flip(out, out, -1);
      return out;
    case 8:
      cv::rotate(stored, out, cv::ROTATE_90_COUNTERCLOCKWISE);
      return out;
    default:
      return stored;
  }
}

// CompositeOverWhite writes BGRA `src` as RGB into `dst` (CV_8UC3, same size), blending each
// pixel over a white background: out = (c * a + 255 * (255 - a)) / 255, rounded.
void CompositeOverWhite(const cv::Mat& src, cv::Mat& dst) {
  for (int y = 0; y < src.rows; ++y) {
    const uint8_t* in = src.ptr<uint8_t>(y);
    uint8_t* out = dst.ptr<uint8_t>(y);
    for (int x = 0; x < src.cols; ++x, in += 4, out += 3) {
      const int alpha = in[3];
      const int white = 255 * (255 - alpha) + 127;
      out[0] = static_cast<uint8_t>((in[2] * alpha + white) / 255);
      out[1] = static_cast<uint8_t>((in[1] * alpha + white) / 255);
      out[2] = static_cast<uint8_t>((in[0] * alpha + white) / 255);
    }
  }
}

// ToRgb converts what cv::imdecode(IMREAD_UNCHANGED) returned (8 or 16 bit; gray, BGR or
// BGRA) into an oriented RGB Image. May throw cv::Exception or std::bad_alloc.
absl::StatusOr<Image> ToRgb(const cv::Mat& decoded, int orientation, ImageFormat format) {
  cv::Mat eight_bit;
  if (decoded.depth() == CV_8U) {
    eight_bit = decoded;
  } else if (decoded.depth() == CV_16U) {
    decoded.convertTo(eight_bit, CV_8U, 1.0 / 257.0);  // 65535 -> 255, rounded
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unsupported ", std::string(FormatName(format)),
                                                   " sample depth (OpenCV depth ", decoded.depth(),
                                                   ")"));
  }
  const cv::Mat oriented = ApplyExifOrientation(eight_bit, orientation);

  Image image;
  image.width = oriented.cols;
  image.height = oriented.rows;
  image.rgb.resize(size_t{3} * image.width * image.height);
  // Converting straight into the vector's buffer saves a copy of the whole image.
  cv::Mat rgb(image.height, image.width, CV_8UC3, image.rgb.data());
  switch (oriented.channels()) {
    case 1:
      cv::cvtColor(oriented, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 3:
      cv::cvtColor(oriented, rgb, cv::COLOR_BGR2RGB);
      break;
    case 4:
      CompositeOverWhite(oriented, rgb);
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unsupported ",
                                                     std::string(FormatName(format)), " with ",
                                                     oriented.channels(), " channels"));
  }
  if (rgb.data != image.rgb.data()) {  // cvtColor reallocated: a size/type mismatch, our bug
    return absl::InternalError("DecodeImage: colour conversion did not write in place");
  }
  return image;
}

}  // namespace

std::string_view FormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kWebp:
      return "WebP";
    case ImageFormat::kBmp:
      return "BMP";
  }
  return "unknown";
}

absl::StatusOr<ImageHeader> ProbeImage(std::string_view bytes) {
  return internal::ProbeHeader(bytes);
}

absl::StatusOr<Image> DecodeImage(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.empty()) return absl::InvalidArgumentError("image is empty (0 bytes)");
  if (bytes.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image is ", bytes.size(), " bytes, over the limit of ", limits.max_bytes, " bytes"));
  }
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {  // cv::Mat sizes are int
    return absl::InvalidArgumentError(
        absl::StrCat("image is ", bytes.size(), " bytes, over the decoder's limit of ", INT_MAX));
  }
  RETRACE_ASSIGN_OR_RETURN(const ImageHeader header, internal::ProbeHeader(bytes));
  RETRACE_RETURN_IF_ERROR(CheckLimits(header, limits));
  RETRACE_RETURN_IF_ERROR(internal::CheckComplete(header.format, bytes));
  const std::string format(FormatName(header.format));

  SilenceOpenCvLogging();
  cv::Mat decoded;
  try {
    // imdecode only reads the buffer; the const_cast is for cv::Mat's constructor.
    const cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8UC1,
                          const_cast<char*>(bytes.data()));
    // IMREAD_UNCHANGED keeps alpha, gray and 16-bit, and skips OpenCV's EXIF rotation
    // (applied in ToRgb from our own parse).
    decoded = cv::imdecode(encoded, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("could not decode ", format, ": ", e.err));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "out of memory decoding ", format, " image of ", header.width, "x", header.height));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("could not decode ", format, ": ", e.what()));
  }
  if (decoded.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "could not decode ", format, ": the data is corrupt or uses an unsupported feature"));
  }
  // Our limits were checked against the header; never return more pixels than it declared.
  if (decoded.cols != header.width || decoded.rows != header.height) {
    return absl::InvalidArgumentError(
        absl::StrCat("could not decode ", format, ": decoded ", decoded.cols, "x", decoded.rows,
                     " but the header declares ", header.width, "x", header.height));
  }

  try {
    return ToRgb(decoded, header.exif_orientation, header.format);
  } catch (const cv::Exception& e) {
    return absl::InternalError(
        absl::StrCat("converting decoded ", format, " to RGB failed: ", e.err));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("out of memory converting ", format,
                                                     " image of ", header.width, "x", header.height,
                                                     " to RGB"));
  }
}

}  // namespace retrace::image
