// image_files.h — which files are images, and the one walk of a folder of them.
//
// `retrace index`, `retrace eval build-similar` and `retrace eval provenance` must give the same
// file the same item id (its path relative to the folder, '/'-separated), or a ground truth
// would name ids the index never stored. So they all walk folders here: recursively, sorted by
// id, following no symlink to a folder (no loops) but following symlinks to files.
//
// Thread-safety: functions only.
//
//   FolderImages found = WalkImageFolder("data/refs");  // ids like "sketch/horse/x.png"
#ifndef RETRACE_CORE_IMAGE_IMAGE_FILES_H_
#define RETRACE_CORE_IMAGE_IMAGE_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace retrace::image {

// HasImageExtension: whether `path` ends in .jpg, .jpeg, .png, .webp or .bmp, in any case.
bool HasImageExtension(absl::string_view path);

struct FoundImage {
  std::string path;  // as found under the root
  std::string id;    // relative to the root, '/'-separated
};

struct FolderImages {
  std::vector<FoundImage> files;    // sorted by id
  int64_t skipped = 0;              // entries not taken: other files, symlinks to folders, ...
  std::vector<std::string> errors;  // "PATH: reason" for folders that could not be read
};

// WalkImageFolder lists the image files under `root`. A folder whose canonical path is
// `skip_dir` (when not empty) is not entered, e.g. an output folder inside the input.
FolderImages WalkImageFolder(const std::string& root, const std::string& skip_dir = "");

}  // namespace retrace::image

#endif  // RETRACE_CORE_IMAGE_IMAGE_FILES_H_
