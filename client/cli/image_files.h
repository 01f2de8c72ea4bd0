// image_files: finding the image files to index and reading them, for the `retrace` CLI.
//
// FindImageFiles walks files and folders the user names and gives each image its item id (its
// path relative to the folder named); ReadFileBytes reads one file with a size bound. Walking
// follows no symlink to a folder inside a tree (no loops) but does follow symlinks to files.
// Plain functions; safe to use from any thread.
//
// Example:
//   ImageFileList list = FindImageFiles({"data/pacs"});  // ids like "sketch/horse/x.png"
//   absl::StatusOr<std::string> bytes = ReadFileBytes(list.files[0].path, 32 << 20);
#ifndef RETRACE_CLIENT_CLI_IMAGE_FILES_H_
#define RETRACE_CLIENT_CLI_IMAGE_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/image/image_files.h"

namespace retrace::cli {

// ImageFile: one file to index: where it is, and the item id it gets.
struct ImageFile {
  std::string path;
  std::string id;
};

// ImageFileList: what FindImageFiles found.
struct ImageFileList {
  std::vector<ImageFile> files;  // per argument, in argument order; within one, sorted by id
  int64_t skipped = 0;           // entries not taken: other files, symlinks to folders, ...
  std::vector<std::string>
      errors;  // "PATH: reason" for arguments or folders that could not be read
};

// HasImageExtension: whether `path` ends in .jpg, .jpeg, .png, .webp or .bmp, in any case.
using image::HasImageExtension;

// FindImageFiles: the image files under `paths`. A file argument is taken when it has an image
// extension (id: its file name); a folder argument (a symlink to one included) is walked
// recursively (id: the path relative to it, '/'-separated). Missing or unreadable paths are
// listed in `errors`; the walk goes on past them.
ImageFileList FindImageFiles(const std::vector<std::string>& paths);

// ReadFileBytes: the contents of the file at `path`. Errors: NOT_FOUND, PERMISSION_DENIED and
// others as errno says; INVALID_ARGUMENT when it is not a regular file or is over `max_bytes`.
// Messages name the file's problem, not the path.
absl::StatusOr<std::string> ReadFileBytes(const std::string& path, int64_t max_bytes);

}  // namespace retrace::cli

#endif  // RETRACE_CLIENT_CLI_IMAGE_FILES_H_
