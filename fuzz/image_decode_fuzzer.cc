// image_decode_fuzzer.cc — libFuzzer target: arbitrary bytes as a client's image, through
// ProbeImage, DecodeImage (format sniffing, our header parsers, the pixel limits, the truncation
// checks, OpenCV) and, for what decodes, Preprocess in all three resize modes at CLIP's input.
//
// Beyond "no crash, leak or undefined behaviour" it checks the contracts of decode.h and
// preprocess.h:
//   - a failure is INVALID_ARGUMENT or RESOURCE_EXHAUSTED (never INTERNAL, never OK without
//     pixels), and its message is valid UTF-8: the message travels to the client in a proto3
//     `string` field (ItemStatus.message), which cannot carry anything else;
//   - a decoded image keeps the Image invariant, honours the limits, and has the header's size
//     (sides swapped for EXIF orientations 5..8);
//   - every preprocessed value is (v / 255 - mean) / std for some byte v.
// The limits are the server's defaults except max_pixels (1M instead of 50M), so one input
// decodes in milliseconds while shapes such as 16384 x 1 stay reachable.
//
// Thread-safety: libFuzzer calls LLVMFuzzerTestOneInput from one thread.
//
//   build-fuzz/fuzz/image_decode_fuzzer -max_total_time=600 CORPUS_DIR fuzz/corpus/image_decode
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/utf8.h"
#include "core/image/decode.h"
#include "core/image/preprocess.h"
#include "fuzz/fuzz_support.h"

namespace retrace::image {
namespace {

void CheckFailure(const absl::Status& status, absl::string_view what) {
  RETRACE_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument ||
                         status.code() == absl::StatusCode::kResourceExhausted,
                     absl::StrCat(what, " failed with an unexpected code: ", status.ToString()));
  RETRACE_FUZZ_CHECK(
      IsValidUtf8(status.message()),
      absl::StrCat(what, "'s message is not valid UTF-8: ", absl::CHexEscape(status.message())));
}

void CheckPreprocessed(const Image& image, ResizeMode mode) {
  PreprocessSpec spec;  // CLIP's input: 224, bicubic, its mean and std
  spec.resize_mode = mode;
  spec.mean = {0.48145466f, 0.4578275f, 0.40821073f};
  spec.std = {0.26862954f, 0.26130258f, 0.27577711f};
  const std::vector<float> out = Preprocess(image, spec);
  const size_t plane = size_t{1} * spec.size * spec.size;
  RETRACE_FUZZ_CHECK(out.size() == 3 * plane, "Preprocess returned the wrong number of values");
  for (size_t i = 0; i < out.size(); ++i) {
    const int c = static_cast<int>(i / plane);
    const float lowest = (0.0f - spec.mean[c]) / spec.std[c];
    const float highest = (1.0f - spec.mean[c]) / spec.std[c];
    RETRACE_FUZZ_CHECK(
        std::isfinite(out[i]) && out[i] >= lowest && out[i] <= highest,
        absl::StrCat("Preprocess value ", out[i], " at ", i, " (mode ", static_cast<int>(mode),
                     ") is outside [", lowest, ", ", highest, "]"));
  }
}

}  // namespace
}  // namespace retrace::image

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace retrace::image;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  const absl::StatusOr<ImageHeader> header = ProbeImage(bytes);
  if (!header.ok()) CheckFailure(header.status(), "ProbeImage");

  DecodeLimits limits;
  limits.max_pixels = int64_t{1} << 20;
  const absl::StatusOr<Image> image = DecodeImage(bytes, limits);
  if (!image.ok()) {
    CheckFailure(image.status(), "DecodeImage");
    return 0;
  }
  RETRACE_FUZZ_CHECK(header.ok(), "DecodeImage succeeded where ProbeImage failed");
  const bool turned = header->exif_orientation >= 5 && header->exif_orientation <= 8;
  const int width = turned ? header->height : header->width;
  const int height = turned ? header->width : header->height;
  RETRACE_FUZZ_CHECK(
      image->width == width && image->height == height,
      absl::StrCat("decoded ", image->width, "x", image->height, ", header says ", header->width,
                   "x", header->height, " orientation ", header->exif_orientation));
  RETRACE_FUZZ_CHECK(
      image->width >= 1 && image->height >= 1 && image->width <= limits.max_side &&
          image->height <= limits.max_side &&
          int64_t{image->width} * image->height <= limits.max_pixels,
      absl::StrCat("decoded ", image->width, "x", image->height, " breaks the limits"));
  RETRACE_FUZZ_CHECK(image->rgb.size() == size_t{3} * image->width * image->height,
                     "Image invariant: rgb.size() == width * height * 3");

  for (ResizeMode mode :
       {ResizeMode::kShortestSideCenterCrop, ResizeMode::kLetterbox, ResizeMode::kStretch}) {
    CheckPreprocessed(*image, mode);
  }
  return 0;
}
