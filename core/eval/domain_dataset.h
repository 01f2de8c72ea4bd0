// domain_dataset.h — multi-domain image sets laid out as <domain>/<class>/<image>.
//
// Office-Home, DomainNet and PACS all ship this way; the Caption-Matching protocol queries one
// domain against a gallery made of another, and relevance is "same class". DomainNet also
// ships split files ("<domain>/<class>/<file> <label>" per line) that pick the train or test
// images; ReadSplitFile applies one.
//
// Thread-safety: functions only.
//
//   RETRACE_ASSIGN_OR_RETURN(DomainDataset data, ReadDomainDataset("../shared/data/pacs-mini"));
//   for (const LabelledImage& image : data.InDomain("sketch")) ...
#ifndef RETRACE_CORE_EVAL_DOMAIN_DATASET_H_
#define RETRACE_CORE_EVAL_DOMAIN_DATASET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace retrace::eval {

struct LabelledImage {
  std::string id;      // "<domain>/<class>/<file>", '/'-separated, relative to the root
  std::string domain;
  std::string label;   // the class
  std::string path;    // the file on disk
};

struct DomainDataset {
  std::string root;
  std::vector<LabelledImage> images;  // sorted by id
  std::vector<std::string> domains;   // sorted
  std::vector<std::string> classes;   // sorted, over all domains

  std::vector<LabelledImage> InDomain(const std::string& domain) const;
};

// kMaxDatasetImages bounds a dataset (DomainNet has about 0.6M images).
inline constexpr size_t kMaxDatasetImages = 2'000'000;

// ReadDomainDataset lists every image file (.jpg .jpeg .png .webp .bmp, any case) exactly three
// levels below `root`; other files are skipped, and so are hidden entries. NOT_FOUND if `root`
// is not a directory; INVALID_ARGUMENT if it holds no image at that depth (naming the layout
// expected) or more than kMaxDatasetImages.
absl::StatusOr<DomainDataset> ReadDomainDataset(const std::string& root);

// ReadSplitFile keeps the images whose id a DomainNet split file lists (first field of each
// non-empty line; "\r\n" endings allowed). INVALID_ARGUMENT naming the file and line for a line
// whose path is not <domain>/<class>/<file>; NOT_FOUND for a listed image that is missing
// (naming it), so a wrong root is caught rather than evaluated on nothing.
absl::StatusOr<DomainDataset> ApplySplitFile(const DomainDataset& dataset,
                                             const std::string& split_file);

}  // namespace retrace::eval

#endif  // RETRACE_CORE_EVAL_DOMAIN_DATASET_H_
