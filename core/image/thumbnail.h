// thumbnail.h — a small JPEG of a decoded image, kept per item so that hits can be shown (the
// HTTP API's thumbnail route and the web page); the server keeps no original images.
//
// Thread-safety: a free function with no shared state.
//
//   RETRACE_ASSIGN_OR_RETURN(std::string jpeg, EncodeThumbnail(image, 256, 85));
#ifndef RETRACE_CORE_IMAGE_THUMBNAIL_H_
#define RETRACE_CORE_IMAGE_THUMBNAIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/image/image.h"

namespace retrace::image {

// EncodeThumbnail scales `image` down (area averaging, aspect kept) so that its longest side is
// at most `longest_side` pixels — a smaller image keeps its size — and encodes it as a baseline
// JPEG of `quality` (1..100). INVALID_ARGUMENT for an empty image or a side < 1.
absl::StatusOr<std::string> EncodeThumbnail(const Image& image, int longest_side, int quality);

}  // namespace retrace::image

#endif  // RETRACE_CORE_IMAGE_THUMBNAIL_H_
