#include "client/cli/image_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/image/image_files.h"

namespace retrace::cli {
namespace {

namespace fs = std::filesystem;

// WalkFolder: appends the image files under `root` to `list`, with ids relative to `root`.
void WalkFolder(const fs::path& root, ImageFileList* list) {
  image::FolderImages found = image::WalkImageFolder(root.native());
  for (image::FoundImage& f : found.files) list->files.push_back({std::move(f.path), std::move(f.id)});
  list->skipped += found.skipped;
  list->errors.insert(list->errors.end(), found.errors.begin(), found.errors.end());
}

}  // namespace


ImageFileList FindImageFiles(const std::vector<std::string>& paths) {
  ImageFileList list;
  for (const std::string& path : paths) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);  // follows a symlink argument
    if (ec) {
      list.errors.push_back(absl::StrCat(path, ": ", ec.message()));
    } else if (fs::is_directory(status)) {
      WalkFolder(fs::path(path), &list);
    } else if (fs::is_regular_file(status) && HasImageExtension(path)) {
      list.files.push_back({path, fs::path(path).filename().generic_string()});
    } else {
      ++list.skipped;
    }
  }
  return list;
}

absl::StatusOr<std::string> ReadFileBytes(const std::string& path, int64_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "cannot open");
  struct stat st;
  absl::Status status;
  std::string bytes;
  if (fstat(fd, &st) != 0) {
    status = absl::ErrnoToStatus(errno, "cannot stat");
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::InvalidArgumentError("not a regular file");
  } else if (st.st_size > max_bytes) {
    status = absl::InvalidArgumentError(
        absl::StrCat("the file is ", st.st_size, " bytes, over the limit of ", max_bytes));
  } else {
    bytes.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t n = read(fd, bytes.data() + got, bytes.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = absl::ErrnoToStatus(errno, "cannot read");
        break;
      }
      if (n == 0) break;  // the file shrank while we read it
      got += static_cast<size_t>(n);
    }
    bytes.resize(got);
  }
  close(fd);
  if (!status.ok()) return status;
  return bytes;
}

}  // namespace retrace::cli
