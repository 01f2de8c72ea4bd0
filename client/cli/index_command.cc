// `retrace index`: indexes image files and folders into a collection over one Index stream.
#include <algorithm>
#include <chrono>
#include <filesystem>
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
    R"(usage: retrace index --collection NAME [--batch N] [--captions FILE]
                     [--attr KEY=VALUE]... PATH...
       retrace index --collection NAME [--batch N] [--attr KEY=VALUE]... --items FILE

Indexes image files (.jpg .jpeg .png .webp .bmp, any case) and folders, recursively,
not following symlinks to folders. An item's id is its path relative to the folder
given, or its file name for a file given. Files are read as they are sent, N per
request (default 32, at most 1024). The server captions each image, unless --captions
FILE gives its caption: JSON Lines with "id" and "caption" (other fields are ignored,
and so are lines with an "error" only, so mine-pairs' output works); an id there that
no file has is an error.
--items FILE: the items as JSON Lines instead, one per line:
  {"id": "...", "path": "img.jpg", "caption": "...", "attributes": {"license": "cc-by"}}
  (caption and attributes optional; a relative path is relative to FILE's folder), so a
  corpus's licence, source or URL travel with its images. `retrace export` writes lines
  this reads back (with a "path" added).
--attr KEY=VALUE (repeatable): an attribute for every item; an item's own value for
  the same key wins.
Prints a summary and the failed items; with --json, prints instead one IndexResult per
line (JSON Lines) as results arrive. Exit status 1 if any item failed.
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

// ItemsFile: what --items lists.
struct ItemsFile {
  std::vector<ImageFile> files;
  std::map<std::string, std::string> captions;
  std::map<std::string, std::map<std::string, std::string>> attributes;
};

// ReadItems reads --items; errors name the file, the line and the field.
absl::StatusOr<ItemsFile> ReadItems(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  ItemsFile items;
  std::set<std::string> ids;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat(path, ":", number, ": ");
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (!j.is_object()) return absl::InvalidArgumentError(where + "expected a JSON object");
      for (const auto& [key, value] : j.items()) {
        // Also the fields `retrace export` writes, which index does not send.
        static const std::set<std::string> kKnown = {
            "id",         "path",       "caption",    "attributes",    "created_ms",
            "updated_ms", "clip_image", "caption_text", "image_features"};
        if (kKnown.count(key) == 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, "unknown field \"", key, "\" (expected id, path, caption, attributes)"));
        }
      }
      if (!j.contains("id") || !j["id"].is_string() || j["id"].get<std::string>().empty()) {
        return absl::InvalidArgumentError(where + "id: a non-empty string is required");
      }
      if (!j.contains("path") || !j["path"].is_string()) {
        return absl::InvalidArgumentError(where + "path: a string is required");
      }
      const std::string id = j["id"].get<std::string>();
      if (!ids.insert(id).second) {
        return absl::InvalidArgumentError(absl::StrCat(where, "id: '", id, "' appears twice"));
      }
      std::filesystem::path file = j["path"].get<std::string>();
      if (file.is_relative()) file = folder / file;
      items.files.push_back({file.string(), id});
      if (j.contains("caption")) {
        if (!j["caption"].is_string()) {
          return absl::InvalidArgumentError(where + "caption: expected a string");
        }
        items.captions[id] = j["caption"].get<std::string>();
      }
      if (j.contains("attributes")) {
        if (!j["attributes"].is_object()) {
          return absl::InvalidArgumentError(where + "attributes: expected an object");
        }
        for (const auto& [key, value] : j["attributes"].items()) {
          if (!value.is_string()) {
            return absl::InvalidArgumentError(
                absl::StrCat(where, "attributes.", key, ": expected a string"));
          }
          items.attributes[id][key] = value.get<std::string>();
        }
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(where, "not JSON: ", e.what()));
    }
  }
  return items;
}

// ParseAttrs: --attr KEY=VALUE values as a map; INVALID_ARGUMENT naming the bad one.
absl::StatusOr<std::map<std::string, std::string>> ParseAttrs(
    const std::vector<std::string>& values) {
  std::map<std::string, std::string> attrs;
  for (const std::string& value : values) {
    const size_t eq = value.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--attr: expected KEY=VALUE, got '", value, "'"));
    }
    if (!attrs.emplace(value.substr(0, eq), value.substr(eq + 1)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--attr: the key '", value.substr(0, eq), "' is given twice"));
    }
  }
  return attrs;
}

}  // namespace

int RunIndexCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed =
      ParseArgs(args, {{"collection", true},
                       {"batch", true},
                       {"captions", true},
                       {"items", true},
                       {"attr", true},
                       {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kIndexUsage);
  if (parsed->Has("help")) {
    context.out() << kIndexUsage;
    return kExitOk;
  }
  if (!parsed->Has("collection")) {
    return context.UsageError(kCommand, "missing --collection", kIndexUsage);
  }
  const bool from_items = parsed->Has("items");
  if (from_items && !parsed->positional().empty()) {
    return context.UsageError(kCommand, "give PATHs or --items, not both", kIndexUsage);
  }
  if (from_items && parsed->Has("captions")) {
    return context.UsageError(kCommand, "--items carries its captions; --captions goes with PATHs",
                              kIndexUsage);
  }
  if (!from_items && parsed->positional().empty())
    return context.UsageError(kCommand, "missing PATH (or --items FILE)", kIndexUsage);
  auto attrs = ParseAttrs(parsed->Values("attr"));
  if (!attrs.ok()) return context.UsageError(kCommand, attrs.status().message(), kIndexUsage);
  int64_t batch = kDefaultBatch;
  if (parsed->Has("batch")) {
    auto n = ParseInt("batch", parsed->Value("batch"), 1, 1024);
    if (!n.ok()) return context.UsageError(kCommand, n.status().message(), kIndexUsage);
    batch = *n;
  }
  const std::string collection = parsed->Value("collection");

  // Paths first (cheap), so the total is known and mistakes stop the run before it starts.
  ImageFileList list;
  std::map<std::string, std::map<std::string, std::string>> item_attributes;
  std::map<std::string, std::string> captions;
  if (from_items) {
    auto read = ReadItems(parsed->Value("items"));
    if (!read.ok()) {
      return context.Error(kCommand, absl::StrCat("--items: ", read.status().message()));
    }
    list.files = std::move(read->files);
    captions = std::move(read->captions);
    item_attributes = std::move(read->attributes);
  } else {
    list = FindImageFiles(parsed->positional());
  }
  for (const std::string& error : list.errors) context.Error(kCommand, error);
  if (!list.errors.empty()) return kExitFailed;
  if (std::string duplicate = FindDuplicateId(list.files); !duplicate.empty()) {
    return context.Error(kCommand, absl::StrCat("two files would get the id ", duplicate));
  }
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
        for (const auto& [key, value] : *attrs) (*item.mutable_attributes())[key] = value;
        if (auto it = item_attributes.find(file.id); it != item_attributes.end()) {
          for (const auto& [key, value] : it->second) (*item.mutable_attributes())[key] = value;
        }
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
