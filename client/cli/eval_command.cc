// `retrace eval`: the evaluation harness. `eval build-similar` builds the hand-crafted-similar
// query set locally, without a server; `eval cm` and `eval provenance` (eval_protocol_commands.cc)
// run the papers' protocols against one. Each subcommand is one entry of kEvalSubcommands.
#include <chrono>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/output.h"
#include "core/eval/similar_set.h"
#include "google/protobuf/struct.pb.h"

namespace retrace::cli {
namespace {

constexpr char kEvalUsage[] =
    R"(usage: retrace eval SUBCOMMAND [ARGS...]

Subcommands:
  cm --data DIR [--domains A,B,...] [--classes ...] [--pairs A-B,...] [--labels-as-captions]
     [--k 1,5,15] [--depth N] [--out DIR]
      the Caption-Matching protocol: P@k and mAP@All per domain pair (server)
  provenance --data DIR --refs DIR [--k 1,5,10,50,100] [--candidates N] [--out DIR]
      the CS-SLIP protocol: R@k for CLIP, image-encoder, concatenated, re-ranked (server)
  build-similar --refs DIR --out DIR [--seed N] [--per-ref N]
      write transformed queries of the images under DIR and their ground truth (local)

`retrace eval SUBCOMMAND --help` for a subcommand's options.
)";

constexpr char kBuildSimilarCommand[] = "eval build-similar";
constexpr char kBuildSimilarUsage[] =
    R"(usage: retrace eval build-similar --refs DIR --out DIR [--seed N] [--per-ref N]

Builds the hand-crafted-similar query set (ISC 2021 style) from the reference images under
--refs (.jpg .jpeg .png .webp .bmp, recursively): each gets N transformed copies (crop,
scale, rotation, flip, colour jitter, blur, noise, JPEG quality, text and emoji overlays,
padding, or a chain of 2-3), written to DIR/queries/, with DIR/ground_truth.csv
(query_id,reference_id,transforms) and DIR/manifest.json. A reference_id is the image's
path relative to --refs, the id `retrace index` gives it. Runs locally; no server needed.
The same seed and references give byte-identical files. Images that cannot be decoded are
reported on stderr and skipped; exit status 1 if no query could be built. With --json,
prints {"out", "references", "queries", "skipped": [{"path", "reason"}]}.

Options:
  --refs DIR      the reference images
  --out DIR       where to write: a new or empty folder, or a previous build (replaced)
  --seed N        picks the transforms, 0..2^63-1 (default 0)
  --per-ref N     queries per reference, 1..20 (default 5)
)";

int RunBuildSimilar(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(
      args, {{"refs", true}, {"out", true}, {"seed", true}, {"per-ref", true}, {"help", false}});
  if (!parsed.ok()) {
    return context.UsageError(kBuildSimilarCommand, parsed.status().message(), kBuildSimilarUsage);
  }
  if (parsed->Has("help")) {
    context.out() << kBuildSimilarUsage;
    return kExitOk;
  }
  if (!parsed->positional().empty()) {
    return context.UsageError(kBuildSimilarCommand,
                              absl::StrCat("unexpected argument '", parsed->positional()[0], "'"),
                              kBuildSimilarUsage);
  }
  for (const char* required : {"refs", "out"}) {
    if (parsed->Value(required).empty()) {
      return context.UsageError(kBuildSimilarCommand, absl::StrCat("missing --", required),
                                kBuildSimilarUsage);
    }
  }
  eval::SimilarSetOptions options;
  if (parsed->Has("seed")) {
    absl::StatusOr<int64_t> seed =
        ParseInt("seed", parsed->Value("seed"), 0, std::numeric_limits<int64_t>::max());
    if (!seed.ok()) {
      return context.UsageError(kBuildSimilarCommand, seed.status().message(), kBuildSimilarUsage);
    }
    options.seed = static_cast<uint64_t>(*seed);
  }
  if (parsed->Has("per-ref")) {
    absl::StatusOr<int64_t> per_ref =
        ParseInt("per-ref", parsed->Value("per-ref"), 1, eval::kMaxPerRef);
    if (!per_ref.ok()) {
      return context.UsageError(kBuildSimilarCommand, per_ref.status().message(),
                                kBuildSimilarUsage);
    }
    options.per_ref = static_cast<int>(*per_ref);
  }
  // The progress line is drawn at most every 100 ms, and cleared before the summary.
  const bool draw = context.stderr_is_terminal() && !context.json();
  auto last_draw = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  if (draw) {
    options.progress = [&context, &last_draw](size_t done, size_t total) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_draw < std::chrono::milliseconds(100) && done != total) return;
      last_draw = now;
      context.err() << "\rbuild-similar: " << done << "/" << total << " references\x1b[K"
                    << std::flush;
    };
  }

  const std::string out_dir = parsed->Value("out");
  absl::StatusOr<eval::SimilarSetReport> report =
      eval::BuildSimilarSet(parsed->Value("refs"), out_dir, options);
  if (draw) context.err() << "\r\x1b[K" << std::flush;
  if (!report.ok()) return context.Error(kBuildSimilarCommand, report.status().message());
  for (const eval::SkippedFile& skipped : report->skipped) {
    context.err() << "retrace: " << kBuildSimilarCommand << ": skipped " << skipped.path << ": "
                  << skipped.reason << "\n";
  }
  if (context.json()) {
    google::protobuf::Struct summary;
    auto& fields = *summary.mutable_fields();
    fields["out"].set_string_value(out_dir);
    fields["references"].set_number_value(static_cast<double>(report->references));
    fields["queries"].set_number_value(static_cast<double>(report->queries));
    google::protobuf::ListValue* skipped = fields["skipped"].mutable_list_value();
    for (const eval::SkippedFile& file : report->skipped) {
      auto& entry = *skipped->add_values()->mutable_struct_value()->mutable_fields();
      entry["path"].set_string_value(file.path);
      entry["reason"].set_string_value(file.reason);
    }
    context.out() << ToJson(summary, /*multiline=*/true) << "\n";
  } else {
    context.out() << "built " << report->queries << " queries from " << report->references
                  << " references in " << out_dir << " (" << report->skipped.size()
                  << " skipped)\n";
  }
  if (report->queries == 0) {
    return context.Error(kBuildSimilarCommand, "no reference could be decoded; nothing built");
  }
  return kExitOk;
}

struct EvalSubcommand {
  absl::string_view name;
  int (*run)(CliContext&, const std::vector<std::string>&);
};

constexpr EvalSubcommand kEvalSubcommands[] = {
    {"build-similar", RunBuildSimilar},
    {"cm", RunEvalCmCommand},
    {"provenance", RunEvalProvenanceCommand},
};

}  // namespace

int RunEvalCommand(CliContext& context, const std::vector<std::string>& args) {
  if (args.empty()) return context.UsageError("eval", "missing SUBCOMMAND", kEvalUsage);
  if (args[0] == "--help" || args[0] == "-h") {
    context.out() << kEvalUsage;
    return kExitOk;
  }
  for (const EvalSubcommand& subcommand : kEvalSubcommands) {
    if (subcommand.name == args[0]) {
      return subcommand.run(context, std::vector<std::string>(args.begin() + 1, args.end()));
    }
  }
  return context.UsageError("eval", absl::StrCat("unknown subcommand '", args[0], "'"), kEvalUsage);
}

}  // namespace retrace::cli
