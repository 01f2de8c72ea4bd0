#include "core/text/internal/read_file.h"

#include <zlib.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace retrace::text::internal {

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  errno = 0;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno != 0 ? errno : ENOMEM;
    return absl::ErrnoToStatus(error, absl::StrCat("cannot open ", path));
  }
  std::string contents;
  char buffer[1 << 16];
  absl::Status status;
  while (true) {
    errno = 0;
    const int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int zerr = Z_OK;
      const char* message = gzerror(file, &zerr);
      status = zerr == Z_ERRNO ? absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path))
                               : absl::InvalidArgumentError(
                                     absl::StrCat(path, ": corrupt gzip data (", message, ")"));
      break;
    }
    if (n == 0) break;
    if (contents.size() + static_cast<size_t>(n) > max_bytes) {
      status = absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than the limit of ", max_bytes, " bytes"));
      break;
    }
    contents.append(buffer, n);
  }
  if (status.ok()) {
    // A truncated gzip stream reads as an early end of file; gzerror reports it.
    int zerr = Z_OK;
    const char* message = gzerror(file, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
      status =
          absl::InvalidArgumentError(absl::StrCat(path, ": corrupt gzip data (", message, ")"));
    }
  }
  gzclose(file);
  if (!status.ok()) return status;
  return contents;
}

}  // namespace retrace::text::internal
