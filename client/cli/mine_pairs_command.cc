// `retrace mine-pairs`: CS-SLIP's conceptual-similar pairs of a collection (client/mining/), the
// training input of tools/train.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/image_files.h"
#include "client/cli/output.h"
#include "client/mining/id_source.h"
#include "client/mining/pair_miner.h"
#include "client/mining/pairs_files.h"
#include "nlohmann/json.hpp"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "mine-pairs";

// The defaults live in MinerOptions; the usage text is built from them.
const mining::MinerOptions kDefaults;

std::string Usage() {
  return absl::StrCat(
      R"(usage: retrace mine-pairs --collection NAME (--ids FILE | --images DIR) --out FILE
                          [--embeddings-out FILE] [--exclude-identical-captions]
                          [--resume] [--top-k K] [--max-top-k K] [--concurrency N]

For every item, the item whose caption is nearest to its own: the nearest stored
caption embedding (the CLIP text embedding of its caption) other than its own, with
the cosine similarity. These are CS-SLIP's conceptual-similar pairs (tools/train).
Runs through the API: Get with embeddings, then a caption-space Search per item.

Ids: --ids FILE, one per line ("-": stdin), or --images DIR, the image files under
DIR with the ids `retrace index DIR` gave them. --out FILE gets one JSON line per
id, in order: {"id","caption","nearest","nearest_caption","similarity"}, "nearest"
null when no other item is left, or {"id","error"} for an id not stored.
--embeddings-out FILE also writes each item's caption embedding (binary, with ids;
the trainer reads it: tools/train/README.md). --exclude-identical-captions leaves
out items whose caption is the same text. --resume continues an interrupted run
(same ids, same files): the result equals an uninterrupted run's. Existing files are
never overwritten. --top-k: first search depth (default )",
      kDefaults.top_k, R"(), deepened x4 while undecided
up to --max-top-k (default )",
      kDefaults.max_top_k, R"(, the server's limits.max_top_k); --concurrency: searches
in flight (default )",
      kDefaults.concurrency, R"(). Prints a summary (--json: as one object). Exit status 1 if
any id was not stored.
)");
}

// Progress draws "mined 120/224 ▕███░░▏ 53%  18 items/s" on a terminal.
class Progress {
 public:
  Progress(CliContext& context, int64_t total)
      : context_(context),
        total_(total),
        draw_(context.stderr_is_terminal()),
        start_(std::chrono::steady_clock::now()) {}
  ~Progress() {
    if (draw_) context_.err() << "\r\x1b[K" << std::flush;
  }
  void Update(int64_t done, int64_t resumed) {
    if (!draw_) return;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = seconds > 0 ? (done - resumed) / seconds : 0;
    context_.err() << "\r" << FormatProgress(done, total_, rate, 20, "mined") << "\x1b[K"
                   << std::flush;
  }

 private:
  CliContext& context_;
  const int64_t total_;
  const bool draw_;
  const std::chrono::steady_clock::time_point start_;
};

// StatusExit prints "retrace: mine-pairs: CODE: message[suffix]", as RpcError does.
int StatusExit(CliContext& context, const absl::Status& status, absl::string_view suffix = "") {
  context.Error(kCommand, absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                                       status.message(), suffix));
  return status.code() == absl::StatusCode::kUnavailable ? kExitUnavailable : kExitFailed;
}

}  // namespace

int RunMinePairsCommand(CliContext& context, const std::vector<std::string>& args) {
  const std::string usage = Usage();
  auto parsed = ParseArgs(args, {{"collection", true},
                                 {"ids", true},
                                 {"images", true},
                                 {"out", true},
                                 {"embeddings-out", true},
                                 {"exclude-identical-captions", false},
                                 {"resume", false},
                                 {"top-k", true},
                                 {"max-top-k", true},
                                 {"concurrency", true},
                                 {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), usage);
  if (parsed->Has("help")) {
    context.out() << usage;
    return kExitOk;
  }
  if (!parsed->positional().empty()) {
    return context.UsageError(
        kCommand, absl::StrCat("unexpected argument '", parsed->positional()[0], "'"), usage);
  }
  for (const char* required : {"collection", "out"}) {
    if (!parsed->Has(required) || parsed->Value(required).empty()) {
      return context.UsageError(kCommand, absl::StrCat("missing --", required), usage);
    }
  }
  if (parsed->Has("ids") == parsed->Has("images")) {
    return context.UsageError(kCommand, "give exactly one of --ids and --images", usage);
  }
  mining::MinerOptions options;
  options.collection = parsed->Value("collection");
  options.exclude_identical_captions = parsed->Has("exclude-identical-captions");
  struct IntOption {
    const char* name;
    int* into;
    int64_t min, max;
  };
  for (const IntOption& o : {IntOption{"top-k", &options.top_k, 2, 100000},
                             IntOption{"max-top-k", &options.max_top_k, 2, 100000},
                             IntOption{"concurrency", &options.concurrency, 1, 256}}) {
    if (!parsed->Has(o.name)) continue;
    auto n = ParseInt(o.name, parsed->Value(o.name), o.min, o.max);
    if (!n.ok()) return context.UsageError(kCommand, n.status().message(), usage);
    *o.into = static_cast<int>(*n);
  }
  if (options.max_top_k < options.top_k) {
    return context.UsageError(
        kCommand,
        absl::StrCat("--max-top-k ", options.max_top_k, " is below --top-k ", options.top_k),
        usage);
  }

  // The id source. (A collection listing, once the API has one, becomes a third source.)
  std::unique_ptr<mining::IdSource> ids;
  if (parsed->Has("ids")) {
    auto file = mining::OpenIdFile(parsed->Value("ids"));
    if (!file.ok())
      return context.Error(kCommand, absl::StrCat("--ids: ", file.status().message()));
    ids = std::move(*file);
  } else {
    const std::string dir = parsed->Value("images");
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      return context.Error(kCommand, absl::StrCat("--images: ", dir, " is not a folder"));
    }
    ImageFileList list = FindImageFiles({dir});  // `retrace index DIR`'s walk: its ids
    for (const std::string& error : list.errors) context.Error(kCommand, error);
    if (!list.errors.empty()) return kExitFailed;
    std::vector<std::string> names;
    names.reserve(list.files.size());
    for (ImageFile& file : list.files) names.push_back(std::move(file.id));
    ids = mining::IdList(std::move(names), absl::StrCat("the images under ", dir));
  }

  const std::string out = parsed->Value("out");
  const std::string embeddings_out = parsed->Value("embeddings-out");
  if (!embeddings_out.empty() && embeddings_out == out) {
    return context.UsageError(kCommand, "--embeddings-out must differ from --out", usage);
  }
  // A missing collection (or server) fails here, before any file is made.
  v1::DescribeCollectionRequest describe;
  describe.set_name(options.collection);
  v1::Collection collection;
  if (grpc::Status s = context.client().DescribeCollection(describe, &collection); !s.ok()) {
    return context.RpcError(kCommand, s);
  }
  auto writer = parsed->Has("resume") ? mining::PairsWriter::Resume(out, embeddings_out, *ids)
                                      : mining::PairsWriter::Create(out, embeddings_out);
  if (!writer.ok()) return StatusExit(context, writer.status());
  const int64_t resumed = (*writer)->done();

  absl::StatusOr<mining::MinerSummary> summary;
  {
    Progress progress(context, ids->total());
    progress.Update(resumed, resumed);
    options.progress = [&](int64_t done) { progress.Update(done, resumed); };
    summary = mining::MinePairs(context.client(), *ids, **writer, options);
  }
  if (!summary.ok()) {
    return StatusExit(
        context, summary.status(),
        absl::StrCat(" (", (*writer)->done(), " items are in ", out, "; --resume continues)"));
  }
  if (context.json()) {
    nlohmann::ordered_json j = {{"collection", options.collection},
                                {"out", out},
                                {"resumed", resumed},
                                {"items", summary->items},
                                {"paired", summary->paired},
                                {"unpaired", summary->unpaired},
                                {"failed", summary->failed}};
    if (!embeddings_out.empty()) j["embeddings_out"] = embeddings_out;
    context.out() << j.dump() << "\n";
  } else {
    std::ostream& o = context.out();
    o << "mined " << summary->items << " items of '" << options.collection << "' into " << out;
    if (resumed > 0) o << " after the " << resumed << " already there";
    o << ": " << summary->paired << " with a nearest item";
    if (summary->unpaired > 0) o << ", " << summary->unpaired << " with none left";
    if (summary->failed > 0) o << ", " << summary->failed << " not stored (error lines)";
    o << "\n";
    if (!embeddings_out.empty()) o << "caption embeddings in " << embeddings_out << "\n";
  }
  return summary->failed > 0 ? kExitFailed : kExitOk;
}

}  // namespace retrace::cli
