#include "client/mining/id_source.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace retrace::mining {
namespace {

// LineIds reads one id per line from a stream it may own (a file) or borrow (stdin).
class LineIds : public IdSource {
 public:
  LineIds(std::unique_ptr<std::ifstream> file, std::istream* in, int64_t total,
          std::string description)
      : file_(std::move(file)), in_(in), total_(total), description_(std::move(description)) {}

  absl::StatusOr<std::optional<std::string>> Next() override {
    std::string line;
    while (std::getline(*in_, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) return std::optional<std::string>(std::move(line));
    }
    if (in_->bad()) return absl::DataLossError(absl::StrCat(description_, ": read error"));
    return std::optional<std::string>();
  }
  int64_t total() const override { return total_; }
  std::string description() const override { return description_; }

 private:
  std::unique_ptr<std::ifstream> file_;
  std::istream* in_;
  const int64_t total_;
  const std::string description_;
};

class VectorIds : public IdSource {
 public:
  VectorIds(std::vector<std::string> ids, std::string description)
      : ids_(std::move(ids)), description_(std::move(description)) {}
  absl::StatusOr<std::optional<std::string>> Next() override {
    if (next_ == ids_.size()) return std::optional<std::string>();
    return std::optional<std::string>(ids_[next_++]);
  }
  int64_t total() const override { return static_cast<int64_t>(ids_.size()); }
  std::string description() const override { return description_; }

 private:
  const std::vector<std::string> ids_;
  size_t next_ = 0;
  const std::string description_;
};

// CountIds counts the lines Next() would return, so progress can show a total; one cheap pass.
int64_t CountIds(const std::string& path) {
  std::ifstream in(path);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) ++n;
  }
  return in.bad() ? -1 : n;
}

}  // namespace

absl::StatusOr<std::unique_ptr<IdSource>> OpenIdFile(const std::string& path) {
  if (path == "-") return std::make_unique<LineIds>(nullptr, &std::cin, -1, "stdin");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": a folder, not a file of ids"));
  }
  auto file = std::make_unique<std::ifstream>(path);
  if (!*file) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::istream* in = file.get();
  return std::make_unique<LineIds>(std::move(file), in, CountIds(path), path);
}

std::unique_ptr<IdSource> IdList(std::vector<std::string> ids, std::string description) {
  return std::make_unique<VectorIds>(std::move(ids), std::move(description));
}

}  // namespace retrace::mining
