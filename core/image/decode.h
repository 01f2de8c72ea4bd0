// decode.h — turns untrusted encoded bytes (JPEG, PNG, WebP, BMP) into an RGB Image, safely.
//
// Every image a client sends passes through here, so the checks come before the expensive
// work: the format is recognised from magic bytes, the dimensions are read from the header
// by our own parser and checked against DecodeLimits (a 100-byte PNG can declare 10^10
// pixels), and a JPEG without its end marker or a PNG without IEND is rejected as truncated
// (OpenCV would otherwise return a half-grey image with only a warning). Only then does
// OpenCV decode. The result is always 8-bit RGB: 16-bit is scaled down, grayscale expanded,
// transparency composited over white (sketches often have transparent backgrounds), and the
// JPEG EXIF orientation applied.
//
// Limits of this version:
//   - EXIF orientation is read from JPEG only (APP1 "Exif"); orientation stored in WebP
//     (VP8X EXIF chunk) or PNG (eXIf chunk) is rare and is not applied.
//   - Animated WebP is not supported by OpenCV 4.6 and fails to decode.
//   - Trailing bytes after a JPEG's end marker, a PNG's IEND or a WebP's RIFF chunk are
//     tolerated (some cameras append data there).
//
// Thread-safety: free functions with no shared state; safe to call concurrently. The first
// call silences OpenCV's own log output process-wide (once, thread-safe): malformed client
// images would otherwise spam stderr. OpenCV's worker-thread count (cv::setNumThreads) is the
// caller's decision; nothing here changes it. No exception escapes these functions.
//
//   RETRACE_ASSIGN_OR_RETURN(Image image, DecodeImage(request.image_bytes(), DecodeLimits{}));
//   // image.width, image.height, image.rgb (interleaved RGB)
#ifndef RETRACE_CORE_IMAGE_DECODE_H_
#define RETRACE_CORE_IMAGE_DECODE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/image/image.h"

namespace retrace::image {

// ImageFormat lists the encodings DecodeImage accepts; anything else is rejected.
enum class ImageFormat { kJpeg, kPng, kWebp, kBmp };

// DecodeLimits bounds the work one untrusted image may cause. A limit of 0 rejects every image.
struct DecodeLimits {
  // max_bytes: the largest encoded input accepted. Default 32 MiB.
  size_t max_bytes = 32 << 20;
  // max_pixels: the largest width * height accepted, checked from the header before any pixel
  // is decoded (decompression bombs). Default 50 million (about 7000 x 7000; 150 MB of RGB).
  int64_t max_pixels = 50'000'000;
  // max_side: the largest width or height accepted. Default 16384.
  int max_side = 16384;
};

// ImageHeader is what the file header says, before any pixel is decoded.
struct ImageHeader {
  ImageFormat format = ImageFormat::kJpeg;
  // width, height: as stored in the file. For exif_orientation 5..8 DecodeImage returns an
  // image with the two swapped (the picture is turned by 90 degrees).
  int width = 0;
  int height = 0;
  // exif_orientation: the EXIF Orientation tag (1..8) of a JPEG; 1 when absent, malformed or
  // out of range, and always 1 for PNG, WebP and BMP.
  int exif_orientation = 1;
};

// ProbeImage reads the format, dimensions and EXIF orientation from the header, without
// decoding pixels or checking any DecodeLimits. Cheap: it reads at most the header segments.
// Returns INVALID_ARGUMENT when `bytes` is empty, is not JPEG/PNG/WebP/BMP (the message names
// what it looks like, e.g. GIF, and the first bytes), when the header is cut short (message
// contains "truncated"), or when the header is malformed (e.g. a zero width).
absl::StatusOr<ImageHeader> ProbeImage(std::string_view bytes);

// DecodeImage decodes `bytes` into an 8-bit RGB Image with EXIF orientation applied (JPEG).
// 16-bit samples are scaled to 8 bits; gray becomes R=G=B; alpha is composited over white.
// Returns INVALID_ARGUMENT, with a message a client can act on, when:
//   - `bytes` is empty or larger than limits.max_bytes;
//   - ProbeImage fails (unsupported format, truncated or malformed header);
//   - a side exceeds limits.max_side or width * height exceeds limits.max_pixels (checked
//     from the header, before decoding; the message names the dimensions and the limit);
//   - the data is truncated (JPEG without EOI after its scan, PNG without IEND, WebP shorter
//     than its RIFF size, uncompressed BMP shorter than its pixel array);
//   - OpenCV cannot decode it ("could not decode <format>").
// Returns RESOURCE_EXHAUSTED if memory runs out, INTERNAL if OpenCV fails unexpectedly after
// a successful decode.
absl::StatusOr<Image> DecodeImage(std::string_view bytes, const DecodeLimits& limits);

// FormatName returns "JPEG", "PNG", "WebP" or "BMP".
std::string_view FormatName(ImageFormat format);

}  // namespace retrace::image

#endif  // RETRACE_CORE_IMAGE_DECODE_H_
