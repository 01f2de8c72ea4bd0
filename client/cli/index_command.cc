// `retrace index`: indexes image files and folders into a collection over one Index stream.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/image_files.h"
#include "client/cli/output.h"
#include "nlohmann/json.hpp"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "index";
constexpr int kDefaultBatch = 32;

constexpr char kIndexUsage[] =
    R"(usage: retrace index --collection NAME [--batch N] [--captions FILE] PATH...

Indexes image files (.jpg .jpeg .png .webp .bmp, any case) and folders, recursively,
not following symlinks to folders. An item's id is its path relative to the folder
given, or its file name for a file given. Files are read as they are sent, N per
request (default 32, at most 1024). The server captions each image, unless --captions
FILE gives its caption: JSON Lines with "id" and "caption" (other fields are ignored,
and so are lines with an "error" only, so mine-pairs' output works); an id there that
no file has is an error. Prints a
summary and the failed items; with --json, prints instead one IndexResult per line
(JSON Lines) as results arrive. Exit status 1 if any item failed.
)";

// IndexProgress: counts results from both threads of an index run, draws the progress line,
// and keeps the failures for the summary. Thread-safe.
class IndexProgress {
 public:
  IndexProgress(CliContext& context, int64_t total)
      : context_(context),
        total_(total),
        draw_(context.stderr_is_terminal() && !context.json()),
        start_(std::chrono::steady_clock::now()) {
    // The first answer may take a while (captioning): show the total at once.
    if (draw_) context_.err() << "\r" << FormatProgress(0, total_, 0) << "\x1b[K" << std::flush;
  }

  // Record: counts one item's result; in JSON mode prints it as one line.
  void Record(const v1::IndexResult& result) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (result.status().code() == 0) {
      ++succeeded_;
      if (result.unchanged()) ++unchanged_;
    } else {
      failures_.push_back({result.id(), absl::StrCat(CodeName(result.status().code()), ": ",
                                                     result.status().message())});
    }
    if (context_.json()) {
      v1::IndexResult printed = result;
      printed.mutable_status();  // so every line has status.code, 0 when OK
      context_.out() << ToJson(printed, /*multiline=*/false) << "\n";
    }
    const auto now = std::chrono::steady_clock::now();
    const int64_t done = succeeded_ + static_cast<int64_t>(failures_.size());
    if (draw_ && (now - last_draw_ >= std::chrono::milliseconds(100) || done == total_)) {
      const double seconds = std::chrono::duration<double>(now - start_).count();
      context_.err() << "\r" << FormatProgress(done, total_, seconds > 0 ? done / seconds : 0)
                     << "\x1b[K" << std::flush;
      last_draw_ = now;
    }
  }

  // PrintSummary: clears the progress line and, unless in JSON mode, prints the summary and
  // the failures. Returns whether every item succeeded. Call after the run.
  bool PrintSummary(absl::string_view collection, int64_t skipped, int64_t position)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (draw_) context_.err() << "\r\x1b[K" << std::flush;
    const int64_t failed = static_cast<int64_t>(failures_.size());
    const int64_t missing = total_ - succeeded_ - failed;
    if (!context_.json()) {
      std::ostream& out = context_.out();
      out << "indexed " << succeeded_ << " of " << total_ << " items into '" << collection << "'";
      if (failed > 0 && missing > 0) {
        out << " (" << failed << " failed, " << missing << " not indexed)";
      } else if (failed > 0 || missing > 0) {
        out << " (" << (failed > 0 ? failed : missing)
            << (failed > 0 ? " failed)" : " not indexed)");
      }
      out << "\n";
      if (unchanged_ > 0) {
        out << unchanged_ << " of them were already stored with the same content (unchanged)\n";
      }
      if (position > 0) {
        out << "stored at position " << position << " (search --after " << position
            << " sees them on any replica)\n";
      }
      if (skipped == 1) out << "skipped 1 entry that is not an image file\n";
      if (skipped > 1) out << "skipped " << skipped << " entries that are not image files\n";
      if (!failures_.empty()) {
        Table table{{"id", "error"}, {}, {}, /*flexible_column=*/-1};  // errors in full
        for (auto& [id, error] : failures_) table.rows.push_back({id, error});
        out << RenderTable(table);
      }
    }
    return succeeded_ == total_;
  }

 private:
  CliContext& context_;
  const int64_t total_;
  const bool draw_;
  const std::chrono::steady_clock::time_point start_;
  absl::Mutex mu_;
  int64_t succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t unchanged_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::pair<std::string, std::string>> failures_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_draw_ ABSL_GUARDED_BY(mu_);
};

// FindDuplicateId: "ID (PATH and PATH)" for an id two files would share, or "".
std::string FindDuplicateId(const std::vector<ImageFile>& files) {
  std::vector<const ImageFile*> sorted;
  sorted.reserve(files.size());
  for (const ImageFile& file : files) sorted.push_back(&file);
  std::sort(sorted.begin(), sorted.end(),
            [](const ImageFile* a, const ImageFile* b) { return a->id < b->id; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i]->id == sorted[i - 1]->id) {
      return absl::StrCat("'", sorted[i]->id, "' (", sorted[i - 1]->path, " and ", sorted[i]->path,
                          ")");
    }
  }
  return "";
}

// ReadCaptions: id -> caption from a JSON Lines file; errors name the file and line.
absl::StatusOr<std::map<std::string, std::string>> ReadCaptions(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::map<std::string, std::string> captions;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (j.contains("error") && !j.contains("caption")) continue;  // mine-pairs' error line
      const std::string id = j.at("id").get<std::string>();
      if (!captions.emplace(id, j.at("caption").get<std::string>()).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", number, ": a second caption for '", id, "'"));
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", number, ": expected {\"id\": ..., \"caption\": ...}: ", e.what()));
    }
  }
  return captions;
}

}  // namespace

int RunIndexCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed =
      ParseArgs(args, {{"collection", true}, {"batch", true}, {"captions", true}, {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kIndexUsage);
  if (parsed->Has("help")) {
    context.out() << kIndexUsage;
    return kExitOk;
  }
  if (!parsed->Has("collection")) {
    return context.UsageError(kCommand, "missing --collection", kIndexUsage);
  }
  if (parsed->positional().empty())
    return context.UsageError(kCommand, "missing PATH", kIndexUsage);
  int64_t batch = kDefaultBatch;
  if (parsed->Has("batch")) {
    auto n = ParseInt("batch", parsed->Value("batch"), 1, 1024);
    if (!n.ok()) return context.UsageError(kCommand, n.status().message(), kIndexUsage);
    batch = *n;
  }
  const std::string collection = parsed->Value("collection");

  // Paths first (cheap), so the total is known and mistakes stop the run before it starts.
  const ImageFileList list = FindImageFiles(parsed->positional());
  for (const std::string& error : list.errors) context.Error(kCommand, error);
  if (!list.errors.empty()) return kExitFailed;
  if (std::string duplicate = FindDuplicateId(list.files); !duplicate.empty()) {
    return context.Error(kCommand, absl::StrCat("two files would get the id ", duplicate));
  }
  std::map<std::string, std::string> captions;
  if (parsed->Has("captions")) {
    auto read = ReadCaptions(parsed->Value("captions"));
    if (!read.ok())
      return context.Error(kCommand, absl::StrCat("--captions: ", read.status().message()));
    captions = std::move(*read);
    std::set<std::string> ids;
    for (const ImageFile& file : list.files) ids.insert(file.id);
    for (const auto& [id, caption] : captions) {
      if (ids.count(id) == 0) {
        return context.Error(kCommand,
                             absl::StrCat("--captions: '", id, "' in ", parsed->Value("captions"),
                                          " is the id of no image file given"));
      }
    }
  }

  IndexProgress progress(context, static_cast<int64_t>(list.files.size()));
  size_t next = 0;
  auto next_item = [&]() -> std::optional<v1::Item> {
    for (; next < list.files.size(); ++next) {
      const ImageFile& file = list.files[next];
      absl::StatusOr<std::string> bytes = ReadFileBytes(file.path, context.max_image_bytes());
      if (bytes.ok()) {
        v1::Item item;
        item.set_id(file.id);
        item.set_image(std::move(*bytes));
        if (auto it = captions.find(file.id); it != captions.end()) item.set_caption(it->second);
        ++next;
        return item;
      }
      v1::IndexResult result;
      result.set_id(file.id);
      result.mutable_status()->set_code(static_cast<int>(bytes.status().code()));
      result.mutable_status()->set_message(absl::StrCat(file.path, ": ", bytes.status().message()));
      progress.Record(result);
    }
    return std::nullopt;
  };
  int64_t position = 0;
  const grpc::Status status = context.client().IndexItems(
      collection, next_item, static_cast<int>(batch),
      [&](const v1::IndexResult& result) { progress.Record(result); }, &position);
  const bool all_indexed = progress.PrintSummary(collection, list.skipped, position);
  if (!status.ok()) return context.RpcError(kCommand, status);
  return all_indexed ? kExitOk : kExitFailed;
}

}  // namespace retrace::cli
