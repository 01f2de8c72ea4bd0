// `retrace export`: a collection's stored items as JSON Lines, page by page over List.
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/filter_arg.h"
#include "client/cli/output.h"
#include "nlohmann/json.hpp"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "export";

constexpr char kExportUsage[] =
    R"(usage: retrace export --collection NAME [--out FILE] [--embeddings] [--page-size N]
                      [--after POSITION] [--filter EXPR]

Writes the collection's items, in id order, as JSON Lines to FILE (default: standard
output), one object per item: "id", "caption", "attributes", "created_ms" and
"updated_ms" (milliseconds since the Unix epoch), and with --embeddings the vectors
"clip_image", "caption_text" and "image_features". Items are read N per call (default
500, at most 1000); every item that exists throughout the export is written exactly
once, whatever is written meanwhile. `retrace index --items FILE` reads the lines back
once each has a "path". Shows progress on a terminal. --after POSITION: as in search.
--filter EXPR: only the items that satisfy it (the syntax of `retrace search --help`,
e.g. 'license = "cc-by" and @created >= "2026-01-01"').
)";

nlohmann::json Vector(const v1::Embedding& embedding) {
  return nlohmann::json(std::vector<float>(embedding.values().begin(), embedding.values().end()));
}

}  // namespace

int RunExportCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"collection", true},
                                 {"out", true},
                                 {"embeddings", false},
                                 {"page-size", true},
                                 {"after", true},
                                 {"filter", true},
                                 {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kExportUsage);
  if (parsed->Has("help")) {
    context.out() << kExportUsage;
    return kExitOk;
  }
  if (!parsed->Has("collection")) {
    return context.UsageError(kCommand, "missing --collection", kExportUsage);
  }
  if (!parsed->positional().empty()) {
    return context.UsageError(kCommand, "export takes no PATH", kExportUsage);
  }
  v1::ListRequest request;
  request.set_collection(parsed->Value("collection"));
  request.set_include_embeddings(parsed->Has("embeddings"));
  request.set_page_size(500);
  if (parsed->Has("page-size")) {
    auto n = ParseInt("page-size", parsed->Value("page-size"), 1, 1000);
    if (!n.ok()) return context.UsageError(kCommand, n.status().message(), kExportUsage);
    request.set_page_size(static_cast<int32_t>(*n));
  }
  if (parsed->Has("after")) {
    auto after = ParseInt("after", parsed->Value("after"), 0, INT64_MAX);
    if (!after.ok()) return context.UsageError(kCommand, after.status().message(), kExportUsage);
    request.set_min_position(*after);
  }
  if (parsed->Has("filter")) {
    absl::Status f = ParseFilterArg(parsed->Value("filter"), request.mutable_filter());
    if (!f.ok()) return context.UsageError(kCommand, f.message(), kExportUsage);
  }

  std::unique_ptr<std::ofstream> file;
  if (parsed->Has("out")) {
    file = std::make_unique<std::ofstream>(parsed->Value("out"), std::ios::binary);
    if (!*file) {
      return context.Error(kCommand, absl::StrCat("--out: cannot write ", parsed->Value("out")));
    }
  }
  std::ostream& out = file ? *file : context.out();

  // The total, for the progress line only (items written meanwhile may change it; a filter
  // leaves it unknown).
  int64_t total = -1;
  const bool draw = context.stderr_is_terminal();
  if (draw && !request.has_filter()) {
    v1::DescribeCollectionRequest describe;
    describe.set_name(request.collection());
    v1::Collection collection;
    if (context.client().DescribeCollection(describe, &collection).ok()) {
      total = collection.item_count();
    }
  }
  const auto start = std::chrono::steady_clock::now();
  int64_t written = 0;
  do {
    v1::ListResponse page;
    const grpc::Status status = context.client().List(request, &page);
    if (!status.ok()) {
      if (draw) context.err() << "\r\x1b[K";
      return context.RpcError(kCommand, status);
    }
    for (const v1::StoredItem& item : page.items()) {
      nlohmann::json line = {{"id", item.id()},
                             {"caption", item.caption()},
                             {"attributes", nlohmann::json::object()},
                             {"created_ms", item.created_ms()},
                             {"updated_ms", item.updated_ms()}};
      for (const auto& [key, value] : item.attributes()) line["attributes"][key] = value;
      if (request.include_embeddings()) {
        line["clip_image"] = Vector(item.clip_image());
        line["caption_text"] = Vector(item.caption_text());
        if (item.image_features().values_size() > 0) {
          line["image_features"] = Vector(item.image_features());
        }
      }
      // Invalid UTF-8 cannot reach the store (the server checks ids, captions and attributes).
      out << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      ++written;
    }
    if (draw) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      context.err() << "\r"
                    << FormatProgress(written, total, seconds > 0 ? written / seconds : 0, 20,
                                      "exported")
                    << "\x1b[K" << std::flush;
    }
    request.set_cursor(page.next_cursor());
  } while (!request.cursor().empty());
  if (draw) context.err() << "\r\x1b[K" << std::flush;
  out.flush();
  if (!out) return context.Error(kCommand, "writing the output failed");
  if (file) context.out() << "exported " << written << " items to " << parsed->Value("out") << "\n";
  return kExitOk;
}

}  // namespace retrace::cli
