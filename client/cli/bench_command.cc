// `retrace bench`: a load generator — a mix of searches, index and delete calls at a
// collection, closed loop or open loop, with per-kind QPS, latency percentiles and errors.
// The load itself is client/bench/; this file parses the flags, loads the queries and prints.
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "client/bench/bench_calls.h"
#include "client/bench/bench_report.h"
#include "client/bench/load_generator.h"
#include "client/bench/rpc_mix.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/image_files.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

using bench::RpcKind;

constexpr char kCommand[] = "bench";
constexpr char kDefaultMix[] = "search-image=6,search-text=2,search-embedding=1,index=1,delete=1";
constexpr int kDefaultConcurrency = 4;
// The query pool is held in memory: the first images of a big folder are plenty.
constexpr size_t kMaxImages = 1000;

constexpr char kBenchUsage[] =
    R"(usage: retrace bench --collection NAME [--concurrency C | --rate R [--max-outstanding N]]
                     [--duration S] [--warmup S] [--mix KIND=W,...] [--images PATH]
                     [--texts FILE] [--mode caption-match|provenance|hybrid] [--top-k K]
                     [--index-captions] [--query-captions] [--seed N]
                     [--max-error-rate F] [--keep-indexed]

Loads a collection with a mix of calls and reports, per kind of call and in total,
calls, QPS, latency (p50/p95/p99/max, ms) and errors by status code.

Load (default --concurrency 4):
  --concurrency C      closed loop: C threads, each making its next call when the
                       last one returns (measures the most the server can do)
  --rate R             open loop: a call every 1/R s, timed from when it was due, so
                       a server that falls behind shows its queue in the latencies;
                       at most --max-outstanding (default 64) in flight: a call due
                       beyond that is not made and counts as dropped
  --duration S         seconds measured (default 10), after --warmup S (default 0)
                       seconds whose calls are made but not counted
Calls:
  --mix KIND=W,...     weights of search-image, search-text, search-embedding,
                       index and delete (each >= 0, fractions allowed; kinds left
                       out weigh 0); default:
                       search-image=6,search-text=2,search-embedding=1,index=1,delete=1
  --images PATH        image file or folder (recursive; the first 1000 images, read
                       into memory once): image queries and index items; needed by
                       search-image and index
  --texts FILE         text queries, one per line (default: a built-in list)
  --mode M, --top-k K  of every search (default caption-match, 10)
  --index-captions     index items carry a caption from the texts (default: the
                       server captions each one)
  --query-captions     provenance/hybrid image queries carry a query caption (a
                       prompt) from the texts (default: the server captions them)
Embedding queries use stored items' embeddings (random unit vectors in an empty
collection). Index stores one image per call over its own Index stream, under a
new id bench-RUN-N; delete removes only ids this run indexed (skipped when there
are none), and at the end the run deletes what it indexed and did not delete,
unless --keep-indexed.

Latencies count every call, failed ones too; percentiles by nearest rank. The error
rate is (failed + dropped) / (made + dropped). The global --timeout is every call's
deadline here, Index streams included. With --json, prints one JSON object.
Exit status: 0 when the run completed, errors or not; 4 when --max-error-rate F
(a fraction, 0 to 1) was given and exceeded; 1, 2, 3 as for other commands.
)";

// ParseMode: caption-match (or search's "caption"), provenance or hybrid.
absl::StatusOr<v1::SearchMode> ParseMode(const std::string& name) {
  if (absl::AsciiStrToLower(name) == "caption-match") return v1::CAPTION_MATCH;
  auto mode = ParseSearchMode(name);
  if (!mode.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mode: expected caption-match, provenance or hybrid, got '", name, "'"));
  }
  return mode;
}

absl::string_view ModeName(v1::SearchMode mode) {
  if (mode == v1::PROVENANCE) return "provenance";
  if (mode == v1::HYBRID) return "hybrid";
  return "caption-match";
}

// ReadTexts: the non-empty lines of `path`, trimmed.
absl::StatusOr<std::vector<std::string>> ReadTexts(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<std::string> texts;
  for (std::string line; std::getline(in, line);) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (!text.empty()) texts.emplace_back(text);
  }
  if (texts.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no texts in it"));
  return texts;
}

// RandomRunId: 8 hex digits, so two runs' index ids never meet.
std::string RandomRunId() {
  std::random_device device;
  return absl::StrFormat("%08x", device());
}

std::string Ms(double ms) { return absl::StrFormat("%.1f", ms); }

void PrintReport(CliContext& context, const bench::BenchReport& report) {
  const bench::BenchSettings& settings = report.settings;
  const bench::LoadResult& result = report.result;
  const bool open_loop = settings.load.rate > 0;
  std::ostream& out = context.out();
  const double warmup = std::chrono::duration<double>(settings.load.warmup).count();
  if (open_loop) {
    out << absl::StrFormat("open loop at %g calls/s (at most %d in flight)", settings.load.rate,
                           settings.load.max_outstanding);
  } else {
    out << absl::StrFormat("closed loop, concurrency %d", settings.load.concurrency);
  }
  out << absl::StrFormat(", %g s measured after %g s warm-up; collection '%s', mode %s, top-k %d\n",
                         result.seconds, warmup, settings.collection, settings.mode,
                         settings.top_k);

  bool any_skipped = false;
  for (RpcKind kind : settings.kinds)
    any_skipped |= result.kinds[static_cast<int>(kind)].skipped > 0;
  Table table{{"kind", "calls", "qps", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"},
              {},
              {false, true, true, true, true, true, true, true, true, true},
              /*flexible_column=*/-1};
  if (open_loop) table.headers.push_back("dropped");
  if (any_skipped) table.headers.push_back("skipped");
  auto add_row = [&](absl::string_view name, const bench::KindResult& kind) {
    const bench::LatencySummary latency = kind.latencies.Summarize();
    std::vector<std::string> row = {std::string(name),
                                    absl::StrCat(kind.calls),
                                    absl::StrFormat("%.1f", bench::Qps(kind, result.seconds)),
                                    Ms(latency.p50_ms),
                                    Ms(latency.p95_ms),
                                    Ms(latency.p99_ms),
                                    Ms(latency.max_ms),
                                    absl::StrCat(kind.errors)};
    if (open_loop) row.push_back(absl::StrCat(kind.dropped));
    if (any_skipped) row.push_back(absl::StrCat(kind.skipped));
    table.rows.push_back(std::move(row));
  };
  for (RpcKind kind : settings.kinds) {
    add_row(bench::RpcKindName(kind), result.kinds[static_cast<int>(kind)]);
  }
  add_row("total", result.total);
  out << RenderTable(table);

  Table errors{{"kind", "code", "count", "first message"},
               {},
               {false, false, true},
               /*flexible_column=*/3};
  for (RpcKind kind : settings.kinds) {
    for (const auto& [code, error] : result.kinds[static_cast<int>(kind)].errors_by_code) {
      errors.rows.push_back({std::string(bench::RpcKindName(kind)),
                             CodeName(static_cast<int>(code)), absl::StrCat(error.count),
                             error.first_message});
    }
  }
  if (!errors.rows.empty()) out << "\n" << RenderTable(errors);
  out << absl::StrFormat("\nerror rate %.2f%% (%d failed, %d dropped)",
                         100 * bench::ErrorRate(result.total), result.total.errors,
                         result.total.dropped);
  if (result.warmup_calls > 0) out << "; " << result.warmup_calls << " warm-up calls not counted";
  if (open_loop) {
    out << absl::StrFormat("; calls started at most %.1f ms after they were due",
                           result.max_start_lag_ms);
  }
  out << "\n";
  if (!settings.embedding_source.empty()) {
    out << "embedding queries: "
        << (settings.embedding_source == "stored"
                ? "stored items' embeddings"
                : "random unit vectors (the collection was empty)")
        << "\n";
  }
  if (report.cleanup_deleted >= 0) {
    out << "cleanup: deleted " << report.cleanup_deleted << " items this run (bench-"
        << settings.run_id << "-*) indexed and did not delete\n";
  }
}

}  // namespace

int RunBenchCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"collection", true},
                                 {"concurrency", true},
                                 {"rate", true},
                                 {"max-outstanding", true},
                                 {"duration", true},
                                 {"warmup", true},
                                 {"mix", true},
                                 {"images", true},
                                 {"texts", true},
                                 {"mode", true},
                                 {"top-k", true},
                                 {"index-captions", false},
                                 {"query-captions", false},
                                 {"seed", true},
                                 {"max-error-rate", true},
                                 {"keep-indexed", false},
                                 {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kBenchUsage);
  if (parsed->Has("help")) {
    context.out() << kBenchUsage;
    return kExitOk;
  }
  auto usage_error = [&](absl::string_view message) {
    return context.UsageError(kCommand, message, kBenchUsage);
  };
  if (!parsed->positional().empty()) {
    return usage_error(absl::StrCat("unexpected argument '", parsed->positional()[0], "'"));
  }
  if (!parsed->Has("collection")) return usage_error("missing --collection");

  bench::LoadOptions load;
  if (parsed->Has("concurrency") && parsed->Has("rate")) {
    return usage_error("give --concurrency (closed loop) or --rate (open loop), not both");
  }
  if (parsed->Has("rate")) {
    auto rate = ParseFloat("rate", parsed->Value("rate"), 0, 1e6);
    if (!rate.ok()) return usage_error(rate.status().message());
    if (*rate <= 0) return usage_error("--rate: expected a number of calls per second above 0");
    load.rate = *rate;
    if (parsed->Has("max-outstanding")) {
      auto n = ParseInt("max-outstanding", parsed->Value("max-outstanding"), 1, 10000);
      if (!n.ok()) return usage_error(n.status().message());
      load.max_outstanding = static_cast<int>(*n);
    }
  } else {
    if (parsed->Has("max-outstanding")) return usage_error("--max-outstanding goes with --rate");
    load.concurrency = kDefaultConcurrency;
    if (parsed->Has("concurrency")) {
      auto n = ParseInt("concurrency", parsed->Value("concurrency"), 1, 1024);
      if (!n.ok()) return usage_error(n.status().message());
      load.concurrency = static_cast<int>(*n);
    }
  }
  auto seconds = [](double s) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
  };
  if (parsed->Has("duration")) {
    auto s = ParsePositiveSeconds("duration", parsed->Value("duration"));
    if (!s.ok()) return usage_error(s.status().message());
    if (*s > 1e6) return usage_error("--duration: at most 1000000 seconds");
    load.duration = seconds(*s);
  }
  if (parsed->Has("warmup")) {
    auto s = ParseFloat("warmup", parsed->Value("warmup"), 0, 1e6);
    if (!s.ok()) return usage_error(s.status().message());
    load.warmup = seconds(*s);
  }
  if (parsed->Has("seed")) {
    auto n = ParseInt("seed", parsed->Value("seed"), 0, INT64_MAX);
    if (!n.ok()) return usage_error(n.status().message());
    load.seed = static_cast<uint64_t>(*n);
  }
  auto mix = bench::RpcMix::Parse(parsed->Value("mix", kDefaultMix));
  if (!mix.ok()) return usage_error(mix.status().message());

  bench::BenchCallOptions calls_options;
  calls_options.collection = parsed->Value("collection");
  calls_options.index_captions = parsed->Has("index-captions");
  calls_options.query_captions = parsed->Has("query-captions");
  calls_options.seed = load.seed;
  calls_options.run_id = RandomRunId();
  if (parsed->Has("mode")) {
    auto mode = ParseMode(parsed->Value("mode"));
    if (!mode.ok()) return usage_error(mode.status().message());
    calls_options.mode = *mode;
  }
  if (parsed->Has("top-k")) {
    auto k = ParseInt("top-k", parsed->Value("top-k"), 1, INT32_MAX);
    if (!k.ok()) return usage_error(k.status().message());
    calls_options.top_k = static_cast<int>(*k);
  }
  double max_error_rate = -1;
  if (parsed->Has("max-error-rate")) {
    auto f = ParseFloat("max-error-rate", parsed->Value("max-error-rate"), 0, 1);
    if (!f.ok()) return usage_error(f.status().message());
    max_error_rate = *f;
  }
  const bool needs_images = mix->Uses(RpcKind::kSearchImage) || mix->Uses(RpcKind::kIndex);
  if (needs_images && !parsed->Has("images")) {
    return usage_error(absl::StrCat("--images PATH is needed by the mix ", mix->ToString(),
                                    " (search-image and index send images)"));
  }

  if (parsed->Has("images")) {
    const std::string path = parsed->Value("images");
    const ImageFileList list = FindImageFiles({path});
    for (const std::string& error : list.errors) context.Error(kCommand, error);
    if (!list.errors.empty()) return kExitFailed;
    if (list.files.empty()) return context.Error(kCommand, absl::StrCat(path, ": no image files"));
    for (size_t i = 0; i < list.files.size() && i < kMaxImages; ++i) {
      auto bytes = ReadFileBytes(list.files[i].path, context.max_image_bytes());
      if (!bytes.ok()) {
        return context.Error(kCommand,
                             absl::StrCat(list.files[i].path, ": ", bytes.status().message()));
      }
      calls_options.images.push_back(std::move(*bytes));
    }
  }
  if (parsed->Has("texts")) {
    auto texts = ReadTexts(parsed->Value("texts"));
    if (!texts.ok()) return context.Error(kCommand, texts.status().message());
    calls_options.texts = std::move(*texts);
  } else {
    calls_options.texts = bench::BuiltInTexts();
  }

  // A client of its own, so that Index streams get the per-call deadline too (the CLI's has
  // none for them, as `retrace index` may run for hours); credentials come with the options.
  client::ClientOptions client_options = context.client().options();
  client_options.index_timeout = client_options.timeout;
  std::unique_ptr<client::RetraceClient> client = client::RetraceClient::Connect(client_options);

  bench::BenchReport report;
  bench::BenchSettings& settings = report.settings;
  settings.load = load;
  settings.collection = calls_options.collection;
  settings.mode = std::string(ModeName(calls_options.mode));
  settings.top_k = calls_options.top_k;
  settings.mix = mix->ToString();
  settings.run_id = calls_options.run_id;
  for (int k = 0; k < bench::kRpcKindCount; ++k) {
    if (mix->Uses(static_cast<RpcKind>(k))) settings.kinds.push_back(static_cast<RpcKind>(k));
  }
  auto calls = bench::BenchCalls::Create(client.get(), std::move(calls_options), *mix);
  if (!calls.ok()) {
    return context.RpcError(kCommand,
                            grpc::Status(static_cast<grpc::StatusCode>(calls.status().code()),
                                         std::string(calls.status().message())));
  }
  settings.embedding_source = (*calls)->embedding_source();

  report.result = bench::RunLoad(load, *mix, **calls);

  int status = kExitOk;
  if (!parsed->Has("keep-indexed")) {
    absl::StatusOr<int64_t> deleted = (*calls)->Cleanup();
    if (deleted.ok()) {
      report.cleanup_deleted = *deleted;
    } else {
      context.Error(kCommand, absl::StrCat("cleanup: ", deleted.status().message()));
      status = kExitFailed;
    }
  }
  if (context.json()) {
    context.out() << bench::ReportToJson(report) << "\n";
  } else {
    PrintReport(context, report);
  }
  if (status == kExitOk && max_error_rate >= 0 &&
      bench::ErrorRate(report.result.total) > max_error_rate) {
    context.err() << absl::StrFormat(
        "retrace: bench: error rate %.2f%% is over --max-error-rate %g%%\n",
        100 * bench::ErrorRate(report.result.total), 100 * max_error_rate);
    status = kExitErrorRate;
  }
  return status;
}

}  // namespace retrace::cli
