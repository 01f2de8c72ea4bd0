#include "core/eval/domain_dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/image/image_files.h"

namespace retrace::eval {
namespace {

namespace fs = std::filesystem;


bool Hidden(const fs::path& path) { return path.filename().string().rfind('.', 0) == 0; }

// SortedSubdirs lists the visible directories in `dir`, sorted.
std::vector<fs::path> SortedSubdirs(const fs::path& dir, std::error_code& ec) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && !Hidden(entry.path())) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void Finish(DomainDataset& data) {
  std::sort(data.images.begin(), data.images.end(),
            [](const LabelledImage& a, const LabelledImage& b) { return a.id < b.id; });
  std::set<std::string> domains, classes;
  for (const LabelledImage& image : data.images) {
    domains.insert(image.domain);
    classes.insert(image.label);
  }
  data.domains.assign(domains.begin(), domains.end());
  data.classes.assign(classes.begin(), classes.end());
}

}  // namespace

std::vector<LabelledImage> DomainDataset::InDomain(const std::string& domain) const {
  std::vector<LabelledImage> out;
  for (const LabelledImage& image : images) {
    if (image.domain == domain) out.push_back(image);
  }
  return out;
}

absl::StatusOr<DomainDataset> ReadDomainDataset(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat("dataset root ", root, " is not a directory"));
  }
  DomainDataset data;
  data.root = root;
  for (const fs::path& domain : SortedSubdirs(root, ec)) {
    for (const fs::path& label : SortedSubdirs(domain, ec)) {
      for (const auto& entry : fs::directory_iterator(label, ec)) {
        if (!entry.is_regular_file(ec) || Hidden(entry.path()) || !image::HasImageExtension(entry.path().native())) {
          continue;
        }
        if (data.images.size() >= kMaxDatasetImages) {
          return absl::InvalidArgumentError(absl::StrCat(
              root, " holds more than ", kMaxDatasetImages, " images; split it"));
        }
        LabelledImage image;
        image.domain = domain.filename().string();
        image.label = label.filename().string();
        image.id = absl::StrCat(image.domain, "/", image.label, "/",
                                entry.path().filename().string());
        image.path = entry.path().string();
        data.images.push_back(std::move(image));
      }
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("reading ", root, ": ", ec.message()));
  if (data.images.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        root, " holds no images laid out as <domain>/<class>/<image> (.jpg .png .webp .bmp)"));
  }
  Finish(data);
  return data;
}

absl::StatusOr<DomainDataset> ApplySplitFile(const DomainDataset& dataset,
                                             const std::string& split_file) {
  std::ifstream in(split_file);
  if (!in) return absl::NotFoundError(absl::StrCat("split file ", split_file, " cannot be read"));
  std::unordered_set<std::string> listed;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(text, absl::ByAnyChar(" \t"),
                                                           absl::SkipEmpty());
    std::vector<absl::string_view> parts = absl::StrSplit(fields[0], '/');
    if (parts.size() != 3 || parts[0].empty() || parts[1].empty() || parts[2].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          split_file, ":", number, ": '", fields[0], "' is not <domain>/<class>/<file>"));
    }
    listed.insert(std::string(fields[0]));
  }
  DomainDataset out;
  out.root = dataset.root;
  for (const LabelledImage& image : dataset.images) {
    if (listed.erase(image.id) > 0) out.images.push_back(image);
  }
  if (!listed.empty()) {
    std::vector<std::string> missing(listed.begin(), listed.end());
    std::sort(missing.begin(), missing.end());
    return absl::NotFoundError(absl::StrCat(split_file, " lists ", missing.size(),
                                            " images not under ", dataset.root, ", e.g. '",
                                            missing[0], "'"));
  }
  Finish(out);
  return out;
}

}  // namespace retrace::eval
