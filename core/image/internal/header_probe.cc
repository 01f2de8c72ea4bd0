#include "core/image/internal/header_probe.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status_macros.h"

namespace retrace::image::internal {
namespace {

// All multi-byte reads assume the caller has checked `offset + width <= bytes.size()`.
uint8_t U8(std::string_view b, size_t offset) { return static_cast<uint8_t>(b[offset]); }
uint32_t Be16(std::string_view b, size_t o) { return (U8(b, o) << 8) | U8(b, o + 1); }
uint32_t Be32(std::string_view b, size_t o) {
  return (uint32_t{U8(b, o)} << 24) | (U8(b, o + 1) << 16) | (U8(b, o + 2) << 8) | U8(b, o + 3);
}
uint32_t Le16(std::string_view b, size_t o) { return U8(b, o) | (U8(b, o + 1) << 8); }
uint32_t Le24(std::string_view b, size_t o) { return Le16(b, o) | (U8(b, o + 2) << 16); }
uint32_t Le32(std::string_view b, size_t o) { return Le24(b, o) | (uint32_t{U8(b, o + 3)} << 24); }

absl::Status Truncated(std::string_view format, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("truncated ", std::string(format), ": ", std::string(what)));
}

absl::Status Malformed(std::string_view format, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid ", std::string(format), " header: ", std::string(what)));
}

// ChunkName returns a PNG or RIFF chunk type read from the input, C-escaped for a message: the
// message reaches the client in a proto3 string field (ItemStatus.message), where raw bytes
// that are not UTF-8 would make the whole response unparseable.
std::string ChunkName(std::string_view type) {
  return absl::CHexEscape(absl::string_view(type.data(), type.size()));
}

// ---------------------------------------------------------------------------------------------
// Format recognition.

enum class MagicMatch { kNo, kYes, kTooShort };

// MatchMagic says whether `bytes` starts with `magic`, or is a (2+ byte) prefix of it.
MagicMatch MatchMagic(std::string_view bytes, std::string_view magic) {
  if (bytes.size() >= magic.size()) {
    return bytes.substr(0, magic.size()) == magic ? MagicMatch::kYes : MagicMatch::kNo;
  }
  return bytes.size() >= 2 && magic.substr(0, bytes.size()) == bytes ? MagicMatch::kTooShort
                                                                     : MagicMatch::kNo;
}

// MatchWebp: "RIFF" <size:4> "WEBP".
MagicMatch MatchWebp(std::string_view bytes) {
  const std::string_view riff = bytes.substr(0, 4);
  if (MatchMagic(riff, "RIFF") == MagicMatch::kNo) return MagicMatch::kNo;
  if (bytes.size() < 12) {
    const bool tail_ok = bytes.size() <= 8 ||
                         std::string_view("WEBP").substr(0, bytes.size() - 8) == bytes.substr(8);
    return tail_ok ? MagicMatch::kTooShort : MagicMatch::kNo;
  }
  return bytes.substr(8, 4) == "WEBP" ? MagicMatch::kYes : MagicMatch::kNo;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string Lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// LooksLike names a common non-supported format, so the client learns what it actually sent.
// Returns "" when nothing is recognised.
std::string LooksLike(std::string_view b) {
  if (StartsWith(b, "GIF87a") || StartsWith(b, "GIF89a")) return "GIF";
  if (StartsWith(b, std::string_view("II*\0", 4)) || StartsWith(b, std::string_view("MM\0*", 4)) ||
      StartsWith(b, std::string_view("II+\0", 4))) {
    return "TIFF";
  }
  if (StartsWith(b, "%PDF")) return "PDF";
  if (StartsWith(b, "RIFF")) return "a RIFF file that is not WebP (e.g. AVI or WAV)";
  if (b.size() >= 12 && b.substr(4, 4) == "ftyp") {
    const std::string_view brand = b.substr(8, 4);
    if (brand == "avif" || brand == "avis") return "AVIF";
    if (brand == "heic" || brand == "heix" || brand == "mif1" || brand == "msf1")
      return "HEIF/HEIC";
    return "an ISO media file (MP4/QuickTime)";
  }
  if (StartsWith(b, std::string_view("\0\0\0\x0cjP  ", 8)) || StartsWith(b, "\xff\x4f\xff\x51")) {
    return "JPEG 2000";
  }
  if (StartsWith(b, "\xff\x0a") || StartsWith(b, std::string_view("\0\0\0\x0cJXL ", 8))) {
    return "JPEG XL";
  }
  if (StartsWith(b, std::string_view("\0\0\1\0", 4))) return "ICO";
  if (StartsWith(b, "8BPS")) return "Photoshop (PSD)";
  if (StartsWith(b, "PK\x03\x04")) return "a ZIP archive";
  if (StartsWith(b, "\x1f\x8b")) return "gzip data";
  if (b.find_first_not_of('\0') == std::string_view::npos) return "all zero bytes";

  std::string_view text = b.substr(0, 1024);
  if (StartsWith(text, "\xef\xbb\xbf")) text.remove_prefix(3);  // UTF-8 byte order mark
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos) text.remove_prefix(first);
  const std::string lower = Lowercase(text);
  if (StartsWith(lower, "<svg") ||
      (StartsWith(lower, "<?xml") && lower.find("<svg") != std::string::npos)) {
    return "SVG (vector graphics are not supported; send a raster image)";
  }
  if (StartsWith(lower, "<!doctype html") || StartsWith(lower, "<html")) return "HTML";
  if (StartsWith(lower, "<?xml")) return "XML";
  if (StartsWith(lower, "data:")) return "a data: URI (send the raw image bytes, not text)";
  // base64 of JPEG ("/9j/") and PNG ("iVBORw0KGgo"): a client forgot to decode it.
  if (StartsWith(text, "/9j/") || StartsWith(text, "iVBORw0KGgo")) {
    return "base64 text (send the raw image bytes, not base64)";
  }
  bool printable = !text.empty();
  for (char c : text.substr(0, 64)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\t' && c != '\r' && c != '\n') printable = false;
  }
  if (printable) return "text";
  return "";
}

std::string FirstBytesHex(std::string_view b) {
  std::string out;
  for (size_t i = 0; i < b.size() && i < 8; ++i) {
    absl::StrAppend(&out, i == 0 ? "" : " ", absl::Hex(U8(b, i), absl::kZeroPad2));
  }
  return out;
}

absl::Status Unsupported(std::string_view bytes) {
  const std::string looks_like = LooksLike(bytes);
  return absl::InvalidArgumentError(absl::StrCat(
      "not a supported image format (JPEG, PNG, WebP, BMP): ",
      looks_like.empty() ? "unrecognised data" : absl::StrCat("looks like ", looks_like),
      "; first bytes ", FirstBytesHex(bytes)));
}

// ---------------------------------------------------------------------------------------------
// JPEG.

// ParseExifOrientation reads IFD0 tag 0x0112 from the TIFF structure inside an APP1 "Exif"
// segment. Malformed EXIF is common in the wild and harmless to the pixels, so it yields 1.
int ParseExifOrientation(std::string_view tiff) {
  if (tiff.size() < 8) return 1;
  bool little_endian;
  if (StartsWith(tiff, std::string_view("II*\0", 4))) {
    little_endian = true;
  } else if (StartsWith(tiff, std::string_view("MM\0*", 4))) {
    little_endian = false;
  } else {
    return 1;
  }
  auto u16 = [&](size_t o) { return little_endian ? Le16(tiff, o) : Be16(tiff, o); };
  auto u32 = [&](size_t o) { return little_endian ? Le32(tiff, o) : Be32(tiff, o); };
  const size_t ifd = u32(4);
  if (ifd + 2 > tiff.size()) return 1;
  const size_t count = u16(ifd);
  for (size_t i = 0; i < count; ++i) {
    const size_t entry = ifd + 2 + 12 * i;
    if (entry + 12 > tiff.size()) return 1;
    if (u16(entry) != 0x0112) continue;
    const uint32_t type = u16(entry + 2);
    uint32_t value = 0;
    if (type == 3) {  // SHORT, the type the standard prescribes
      value = u16(entry + 8);
    } else if (type == 4) {  // LONG, written by some tools
      value = u32(entry + 8);
    }
    return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

// SOF0..SOF15 minus DHT (C4), JPG (C8) and DAC (CC), which share the range.
bool IsStartOfFrame(uint8_t marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

struct JpegLayout {
  int width = 0;
  int height = 0;
  int exif_orientation = 1;
  size_t scan_data_start = 0;  // first byte after the first SOS header; set when find_scan
};

// WalkJpeg follows the marker segments from SOI up to the frame header (SOFn), or up to the
// first scan (SOS) when `find_scan` is set.
absl::StatusOr<JpegLayout> WalkJpeg(std::string_view b, bool find_scan) {
  JpegLayout layout;
  bool have_frame = false;
  bool have_exif = false;
  size_t pos = 2;  // after SOI
  while (true) {
    // Stray bytes before a marker are skipped as libjpeg skips them (with a warning).
    while (pos < b.size() && U8(b, pos) != 0xFF) ++pos;
    while (pos < b.size() && U8(b, pos) == 0xFF) ++pos;  // fill bytes
    if (pos >= b.size()) {
      return Truncated("JPEG", have_frame ? "the data ends before the first scan"
                                          : "the data ends before the frame header (SOF)");
    }
    const uint8_t marker = U8(b, pos++);
    if (marker == 0x00) continue;  // a stuffed FF 00 is data, not a marker
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // standalone: TEM, RSTn
    if (marker == 0xD8) return Malformed("JPEG", "a second start-of-image marker");
    if (marker == 0xD9) return Malformed("JPEG", "end-of-image marker before the frame header");
    if (pos + 2 > b.size()) return Truncated("JPEG", "the data ends inside a segment header");
    const size_t length = Be16(b, pos);  // counts its own two bytes
    if (length < 2) {
      return Malformed("JPEG", absl::StrCat("segment length ", length, " at offset ", pos));
    }
    const size_t end = pos + length;
    if (marker == 0xDA) {  // SOS
      if (!have_frame) return Malformed("JPEG", "scan data before the frame header (SOF)");
      layout.scan_data_start = end < b.size() ? end : b.size();
      return layout;
    }
    if (end > b.size()) {
      return Truncated("JPEG", absl::StrFormat("the segment FF %02X at offset %d ends past the "
                                               "data",
                                               marker, pos - 2));
    }
    const std::string_view payload = b.substr(pos + 2, length - 2);
    if (IsStartOfFrame(marker) && !have_frame) {
      // precision(1) height(2) width(2) components(1) ...
      if (payload.size() < 6) return Malformed("JPEG", "frame header (SOF) too short");
      layout.height = static_cast<int>(Be16(payload, 1));
      layout.width = static_cast<int>(Be16(payload, 3));
      if (layout.width == 0) return Malformed("JPEG", "width 0 in the frame header");
      if (layout.height == 0) {
        return Malformed("JPEG", "height 0 (defined later by a DNL marker) is not supported");
      }
      have_frame = true;
      if (!find_scan) return layout;
    } else if (marker == 0xE1 && !have_exif &&
               StartsWith(payload, std::string_view("Exif\0\0", 6))) {
      have_exif = true;
      layout.exif_orientation = ParseExifOrientation(payload.substr(6));
    }
    pos = end;
  }
}

// ---------------------------------------------------------------------------------------------
// PNG, WebP, BMP.

constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);

absl::StatusOr<ImageHeader> ProbePng(std::string_view b) {
  // signature(8) | length(4) "IHDR"(4) width(4) height(4) ...
  if (b.size() < 8 + 8 + 13) return Truncated("PNG", "the data ends inside the IHDR chunk");
  if (Be32(b, 8) != 13 || b.substr(12, 4) != "IHDR") {
    return Malformed("PNG", "the first chunk is not a 13-byte IHDR");
  }
  const uint32_t width = Be32(b, 16);
  const uint32_t height = Be32(b, 20);
  // The PNG specification limits both to 1..2^31-1.
  if (width == 0 || height == 0 || width > 0x7FFFFFFF || height > 0x7FFFFFFF) {
    return Malformed("PNG", absl::StrCat("IHDR declares ", width, "x", height));
  }
  return ImageHeader{ImageFormat::kPng, static_cast<int>(width), static_cast<int>(height), 1};
}

absl::StatusOr<ImageHeader> ProbeWebp(std::string_view b) {
  // "RIFF" size(4) "WEBP" | fourcc(4) chunk_size(4) payload...
  if (b.size() < 20) return Truncated("WebP", "the data ends before the first chunk");
  const std::string_view fourcc = b.substr(12, 4);
  uint32_t width = 0;
  uint32_t height = 0;
  if (fourcc == "VP8 ") {
    // frame tag(3) start code 9D 01 2A, width(14 bits LE), height(14 bits LE)
    if (b.size() < 30) return Truncated("WebP", "the data ends inside the VP8 header");
    if ((U8(b, 20) & 1) != 0) return Malformed("WebP", "the VP8 frame is not a key frame");
    if (b.substr(23, 3) != "\x9d\x01\x2a") return Malformed("WebP", "bad VP8 start code");
    width = Le16(b, 26) & 0x3FFF;
    height = Le16(b, 28) & 0x3FFF;
  } else if (fourcc == "VP8L") {
    // signature 2F, then 14 bits width-1 and 14 bits height-1, little-endian bit order
    if (b.size() < 25) return Truncated("WebP", "the data ends inside the VP8L header");
    if (U8(b, 20) != 0x2F) return Malformed("WebP", "bad VP8L signature");
    const uint32_t bits = Le32(b, 21);
    width = (bits & 0x3FFF) + 1;
    height = ((bits >> 14) & 0x3FFF) + 1;
  } else if (fourcc == "VP8X") {
    // flags(1) reserved(3) canvas width-1 (24 bits LE) canvas height-1 (24 bits LE)
    if (b.size() < 30) return Truncated("WebP", "the data ends inside the VP8X header");
    width = Le24(b, 24) + 1;
    height = Le24(b, 27) + 1;
  } else {
    return Malformed("WebP", absl::StrCat("first chunk is '", ChunkName(fourcc),
                                          "', expected VP8, VP8L or VP8X"));
  }
  if (width == 0 || height == 0) {
    return Malformed("WebP", absl::StrCat("declares ", width, "x", height));
  }
  return ImageHeader{ImageFormat::kWebp, static_cast<int>(width), static_cast<int>(height), 1};
}

struct BmpLayout {
  int width = 0;
  int height = 0;  // absolute value; rows may be stored top-down
  uint32_t bits_per_pixel = 0;
  uint32_t compression = 0;
  uint32_t pixel_offset = 0;
};

absl::StatusOr<BmpLayout> ParseBmp(std::string_view b) {
  // "BM" file_size(4) reserved(4) pixel_offset(4) | dib_size(4) ...
  if (b.size() < 18) return Truncated("BMP", "the data ends inside the file header");
  const uint32_t dib_size = Le32(b, 14);
  BmpLayout layout;
  layout.pixel_offset = Le32(b, 10);
  int64_t width;
  int64_t height;
  if (dib_size == 12) {  // BITMAPCOREHEADER: width(2) height(2) planes(2) bpp(2), unsigned
    if (b.size() < 26) return Truncated("BMP", "the data ends inside the info header");
    width = Le16(b, 18);
    height = Le16(b, 20);
    layout.bits_per_pixel = Le16(b, 24);
  } else if (dib_size >= 40 && dib_size <= 256) {
    // BITMAPINFOHEADER and later: width(4) height(4, signed; negative = top-down) planes(2)
    // bpp(2) compression(4)
    if (b.size() < 34) return Truncated("BMP", "the data ends inside the info header");
    width = static_cast<int32_t>(Le32(b, 18));
    height = static_cast<int32_t>(Le32(b, 22));
    layout.bits_per_pixel = Le16(b, 28);
    layout.compression = Le32(b, 30);
  } else {
    return Malformed("BMP", absl::StrCat("unsupported info header size ", dib_size));
  }
  height = std::llabs(height);
  if (width <= 0 || height == 0 || height > 0x7FFFFFFF) {
    return Malformed("BMP", absl::StrCat("declares ", width, "x", height));
  }
  layout.width = static_cast<int>(width);
  layout.height = static_cast<int>(height);
  return layout;
}

}  // namespace

absl::StatusOr<ImageHeader> ProbeHeader(std::string_view bytes) {
  if (bytes.empty()) return absl::InvalidArgumentError("image is empty (0 bytes)");
  struct Candidate {
    ImageFormat format;
    MagicMatch match;
  };
  const Candidate candidates[] = {
      {ImageFormat::kJpeg, MatchMagic(bytes, "\xff\xd8\xff")},
      {ImageFormat::kPng, MatchMagic(bytes, kPngSignature)},
      {ImageFormat::kWebp, MatchWebp(bytes)},
      {ImageFormat::kBmp, MatchMagic(bytes, "BM")},
  };
  for (const Candidate& c : candidates) {
    if (c.match == MagicMatch::kTooShort) {
      return Truncated(FormatName(c.format), absl::StrCat("only ", bytes.size(), " bytes"));
    }
    if (c.match == MagicMatch::kNo) continue;
    switch (c.format) {
      case ImageFormat::kJpeg: {
        RETRACE_ASSIGN_OR_RETURN(JpegLayout jpeg, WalkJpeg(bytes, /*find_scan=*/false));
        return ImageHeader{ImageFormat::kJpeg, jpeg.width, jpeg.height, jpeg.exif_orientation};
      }
      case ImageFormat::kPng:
        return ProbePng(bytes);
      case ImageFormat::kWebp:
        return ProbeWebp(bytes);
      case ImageFormat::kBmp: {
        RETRACE_ASSIGN_OR_RETURN(BmpLayout bmp, ParseBmp(bytes));
        return ImageHeader{ImageFormat::kBmp, bmp.width, bmp.height, 1};
      }
    }
  }
  return Unsupported(bytes);
}

absl::Status CheckComplete(ImageFormat format, std::string_view b) {
  switch (format) {
    case ImageFormat::kJpeg: {
      RETRACE_ASSIGN_OR_RETURN(JpegLayout jpeg, WalkJpeg(b, /*find_scan=*/true));
      const size_t eoi = b.rfind("\xff\xd9");
      if (eoi == std::string_view::npos || eoi < jpeg.scan_data_start) {
        return Truncated("JPEG", "no end-of-image marker (FF D9) after the scan data");
      }
      return absl::OkStatus();
    }
    case ImageFormat::kPng: {
      size_t pos = kPngSignature.size();
      while (true) {
        // length(4) type(4) data(length) crc(4)
        if (pos + 8 > b.size()) return Truncated("PNG", "the data ends before the IEND chunk");
        const uint32_t length = Be32(b, pos);
        if (length > 0x7FFFFFFF) {
          return absl::InvalidArgumentError(
              absl::StrCat("invalid PNG: chunk length ", length, " at offset ", pos));
        }
        if (pos + 12 + length > b.size()) {
          return Truncated("PNG", absl::StrCat("the chunk '", ChunkName(b.substr(pos + 4, 4)),
                                               "' at offset ", pos, " ends past the data"));
        }
        if (b.substr(pos + 4, 4) == "IEND") return absl::OkStatus();
        pos += 12 + size_t{length};
      }
    }
    case ImageFormat::kWebp: {
      const uint64_t declared = uint64_t{Le32(b, 4)} + 8;
      if (declared > b.size()) {
        return Truncated("WebP", absl::StrCat("the RIFF header declares ", declared,
                                              " bytes, only ", b.size(), " present"));
      }
      return absl::OkStatus();
    }
    case ImageFormat::kBmp: {
      RETRACE_ASSIGN_OR_RETURN(BmpLayout bmp, ParseBmp(b));
      constexpr uint32_t kRgb = 0, kBitfields = 3, kAlphaBitfields = 6;
      if (bmp.compression != kRgb && bmp.compression != kBitfields &&
          bmp.compression != kAlphaBitfields) {
        return absl::OkStatus();  // RLE or embedded JPEG/PNG: sizes unknown until decoded
      }
      // Rows are padded to a multiple of 4 bytes.
      const uint64_t row_bytes = (uint64_t{bmp.bits_per_pixel} * bmp.width + 31) / 32 * 4;
      const uint64_t needed = bmp.pixel_offset + row_bytes * bmp.height;
      if (needed > b.size()) {
        return Truncated("BMP", absl::StrCat("the pixel array needs ", needed, " bytes, only ",
                                             b.size(), " present"));
      }
      return absl::OkStatus();
    }
  }
  return absl::InternalError("CheckComplete: unknown ImageFormat");
}

}  // namespace retrace::image::internal
