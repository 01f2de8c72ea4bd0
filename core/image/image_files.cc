#include "core/image/image_files.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace retrace::image {

namespace fs = std::filesystem;

bool HasImageExtension(absl::string_view path) {
  const size_t dot = path.rfind('.');
  const size_t slash = path.rfind('/');
  if (dot == absl::string_view::npos || (slash != absl::string_view::npos && dot < slash)) {
    return false;
  }
  const std::string ext = absl::AsciiStrToLower(path.substr(dot + 1));
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "webp" || ext == "bmp";
}

FolderImages WalkImageFolder(const std::string& root_dir, const std::string& skip_dir) {
  const fs::path root(root_dir);
  FolderImages out;
  std::vector<fs::path> folders = {fs::path()};  // relative to root
  while (!folders.empty()) {
    const fs::path relative = folders.back();
    folders.pop_back();
    std::error_code ec;
    fs::directory_iterator it(root / relative, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const fs::directory_entry& entry = *it;
      const fs::path child = relative / entry.path().filename();
      std::error_code type_ec;
      const bool is_link = entry.is_symlink(type_ec);
      if (!is_link && entry.is_directory(type_ec)) {
        std::error_code canon_ec;
        if (skip_dir.empty() || fs::weakly_canonical(entry.path(), canon_ec) != skip_dir) {
          folders.push_back(child);
        }
      } else if (entry.is_regular_file(type_ec) && HasImageExtension(child.native())) {
        out.files.push_back({entry.path().native(), child.generic_string()});
      } else {
        ++out.skipped;
      }
    }
    if (ec) out.errors.push_back(absl::StrCat((root / relative).native(), ": ", ec.message()));
  }
  std::sort(out.files.begin(), out.files.end(),
            [](const FoundImage& a, const FoundImage& b) { return a.id < b.id; });
  return out;
}

}  // namespace retrace::image
