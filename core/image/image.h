// image.h — the decoded image every part of retrace passes around: 8-bit RGB, no OpenCV types.
//
// An Image is a plain value (copyable, movable). It is what DecodeImage produces and what
// Preprocess consumes; keeping it free of cv::Mat keeps OpenCV inside core/image/*.cc.
//
// Thread-safety: a plain struct; concurrent reads are safe, writes need external locking.
//
//   RETRACE_ASSIGN_OR_RETURN(retrace::image::Image image, DecodeImage(bytes, limits));
//   uint8_t red_of_first_pixel = image.rgb[0];
#ifndef RETRACE_CORE_IMAGE_IMAGE_H_
#define RETRACE_CORE_IMAGE_IMAGE_H_

#include <cstdint>
#include <vector>

namespace retrace::image {

// Image is interleaved 8-bit RGB, row-major, top row first, no padding between rows:
// the pixel at (x, y) starts at rgb[(y * width + x) * 3] and holds R, G, B in that order.
// Invariant (kept by DecodeImage, REQUIRED by Preprocess): rgb.size() == width * height * 3.
// A default-constructed Image is empty (0x0).
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

}  // namespace retrace::image

#endif  // RETRACE_CORE_IMAGE_IMAGE_H_
