// header_probe.h — our own parsers for the headers of JPEG, PNG, WebP and BMP (internal).
//
// DecodeImage must know an image's size before OpenCV allocates anything, and must notice a
// truncated file that OpenCV would half-decode with only a warning. Both need nothing but the
// container structure, parsed here with bounds checks on every read: the input is untrusted.
//
// Thread-safety: pure functions; safe to call concurrently.
//
//   RETRACE_ASSIGN_OR_RETURN(ImageHeader header, internal::ProbeHeader(bytes));
//   RETRACE_RETURN_IF_ERROR(internal::CheckComplete(header.format, bytes));
#ifndef RETRACE_CORE_IMAGE_INTERNAL_HEADER_PROBE_H_
#define RETRACE_CORE_IMAGE_INTERNAL_HEADER_PROBE_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/image/decode.h"

namespace retrace::image::internal {

// ProbeHeader recognises the format by magic bytes and parses the dimensions (and, for JPEG,
// the EXIF orientation) from the header:
//   JPEG: walks the marker segments (fill bytes, standalone markers and stray bytes between
//         segments skipped as libjpeg does) up to the first SOFn; APP1 "Exif" gives the
//         orientation (IFD0 tag 0x0112, either byte order; malformed EXIF is ignored).
//   PNG:  the IHDR chunk, which must come first.
//   WebP: the first chunk after "RIFF....WEBP": VP8 (lossy), VP8L (lossless) or VP8X.
//   BMP:  BITMAPCOREHEADER (12 bytes) or BITMAPINFOHEADER and later (40..256 bytes); a
//         negative height (top-down rows) gives its absolute value.
// Returns INVALID_ARGUMENT for empty input ("image is empty (0 bytes)"), an unsupported
// format ("not a supported image format (JPEG, PNG, WebP, BMP): looks like GIF (first bytes
// ...)"), a header cut short (message contains "truncated") or a malformed header.
absl::StatusOr<ImageHeader> ProbeHeader(std::string_view bytes);

// CheckComplete returns OK when `bytes` (already probed as `format`) reaches its end marker:
//   JPEG: an EOI marker (FF D9) after the start of the first scan (entropy-coded data cannot
//         contain FF D9, so this is exact; trailing bytes after EOI are tolerated);
//   PNG:  every chunk complete up to and including IEND;
//   WebP: at least as many bytes as the RIFF header declares;
//   BMP:  for uncompressed rows (BI_RGB, BI_BITFIELDS) the whole pixel array present; RLE
//         data is left to the decoder.
// Returns INVALID_ARGUMENT "truncated <format>: ..." otherwise.
absl::Status CheckComplete(ImageFormat format, std::string_view bytes);

}  // namespace retrace::image::internal

#endif  // RETRACE_CORE_IMAGE_INTERNAL_HEADER_PROBE_H_
