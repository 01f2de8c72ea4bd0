// `retrace eval cm` and `retrace eval provenance`: the two papers' protocols against a server
// (client/eval/). Progress goes to stderr; the results table (Markdown) to stdout, or with
// --json the results.json document; everything, with the per-query rankings and an HTML report,
// to --out.
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/eval/cm_protocol.h"
#include "client/eval/html_report.h"
#include "client/eval/provenance_protocol.h"
#include "core/eval/domain_dataset.h"

namespace retrace::cli {
namespace {

constexpr char kCmUsage[] =
    R"(usage: retrace eval cm --data DIR [--split FILE] [--domains A,B,...] [--classes C,D,...]
                      [--pairs A-B,...] [--labels-as-captions] [--k 1,5,15] [--depth N]
                      [--out DIR]

The Caption-Matching protocol: DIR is laid out <domain>/<class>/<image> (Office-Home,
DomainNet, PACS). Each gallery domain becomes a collection <prefix>-<domain> (replaced),
captioned by the server (or, with --labels-as-captions, with its class names); every
image of A queries the gallery of B for each pair A-B (default: every ordered pair of
--domains, default all; --classes keeps only those classes; --split keeps the images a
DomainNet split file lists, e.g. clipart_test.txt). Reports P@k for each --k (default
1,5,15) and mAP@All per pair and their average, as results.md/results.json in --out
(default retrace-eval/cm), with
rankings/ (every query's hits, from which every number can be recomputed) and
report.html. --depth: hits per query (default 1000; the server's limits.max_top_k must
allow it; mAP@All needs the whole gallery).
)";

constexpr char kProvenanceUsage[] =
    R"(usage: retrace eval provenance --data DIR --refs DIR [--k 1,5,10,50,100]
                              [--candidates N] [--out DIR]

The CS-SLIP protocol: --data is a query set as `retrace eval build-similar` writes it
(queries/ and ground_truth.csv), --refs the reference images it was built from. The
references become the collection eval-provenance-refs (replaced); R@k for each --k is
reported for CLIP features, image-encoder features, both concatenated, and both with the
cross-modal re-ranking (N = --candidates, default 100), as results.md/results.json in --out
(default retrace-eval/provenance), with rankings/ and report.html.
)";

absl::StatusOr<std::vector<int>> ParseKs(const std::string& value) {
  std::vector<int> ks;
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    auto k = ParseInt("k", std::string(part), 1, 100000);
    if (!k.ok()) return k.status();
    ks.push_back(static_cast<int>(*k));
  }
  return ks;
}

std::function<void(const std::string&)> Progress(CliContext& context) {
  return [&context](const std::string& line) { context.err() << "retrace eval: " << line << "\n"; };
}

}  // namespace

int RunEvalCmCommand(CliContext& context, const std::vector<std::string>& args) {
  constexpr char kCommand[] = "eval cm";
  auto parsed = ParseArgs(args, {{"data", true}, {"split", true}, {"domains", true},
                                 {"classes", true},
                                 {"pairs", true},
                                 {"labels-as-captions", false}, {"k", true}, {"depth", true},
                                 {"out", true}, {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kCmUsage);
  if (parsed->Has("help")) {
    context.out() << kCmUsage;
    return kExitOk;
  }
  if (!parsed->Has("data")) return context.UsageError(kCommand, "missing --data", kCmUsage);
  eval::CmOptions options;
  options.out_dir = parsed->Value("out", "retrace-eval/cm");
  options.labels_as_captions = parsed->Has("labels-as-captions");
  options.progress = Progress(context);
  if (parsed->Has("k")) {
    auto ks = ParseKs(parsed->Value("k"));
    if (!ks.ok()) return context.UsageError(kCommand, ks.status().message(), kCmUsage);
    options.precision_ks = *ks;
  }
  if (parsed->Has("depth")) {
    auto depth = ParseInt("depth", parsed->Value("depth"), 1, 100000);
    if (!depth.ok()) return context.UsageError(kCommand, depth.status().message(), kCmUsage);
    options.depth = static_cast<int>(*depth);
  }
  auto data = eval::ReadDomainDataset(parsed->Value("data"));
  if (!data.ok()) return context.Error(kCommand, std::string(data.status().message()));
  if (parsed->Has("split")) {
    auto split = eval::ApplySplitFile(*data, parsed->Value("split"));
    if (!split.ok()) return context.Error(kCommand, std::string(split.status().message()));
    *data = std::move(*split);
  }
  if (parsed->Has("domains")) {
    const std::vector<std::string> wanted = absl::StrSplit(parsed->Value("domains"), ',');
    const std::set<std::string> keep(wanted.begin(), wanted.end());
    eval::DomainDataset subset;
    subset.root = data->root;
    for (const eval::LabelledImage& image : data->images) {
      if (keep.count(image.domain)) subset.images.push_back(image);
    }
    for (const std::string& d : data->domains) {
      if (keep.count(d)) subset.domains.push_back(d);
    }
    subset.classes = data->classes;
    if (subset.domains.size() != keep.size()) {
      return context.UsageError(kCommand, "--domains: a domain is not under --data", kCmUsage);
    }
    *data = std::move(subset);
  }
  if (parsed->Has("classes")) {
    const std::vector<std::string> wanted = absl::StrSplit(parsed->Value("classes"), ',');
    const std::set<std::string> keep(wanted.begin(), wanted.end());
    std::vector<eval::LabelledImage> kept;
    std::set<std::string> seen;
    for (const eval::LabelledImage& image : data->images) {
      if (keep.count(image.label) == 0) continue;
      kept.push_back(image);
      seen.insert(image.label);
    }
    if (seen.size() != keep.size()) {
      return context.UsageError(kCommand, "--classes: a class is not under --data", kCmUsage);
    }
    data->images = std::move(kept);
    data->classes.assign(seen.begin(), seen.end());
  }
  if (parsed->Has("pairs")) {
    for (absl::string_view pair : absl::StrSplit(parsed->Value("pairs"), ',')) {
      std::vector<std::string> ab = absl::StrSplit(pair, absl::MaxSplits('-', 1));
      if (ab.size() != 2 || ab[0].empty() || ab[1].empty()) {
        return context.UsageError(
            kCommand, absl::StrCat("--pairs: '", pair, "' is not QUERY-GALLERY"), kCmUsage);
      }
      options.pairs.emplace_back(ab[0], ab[1]);
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  auto report = eval::RunCmProtocol(context.client(), *data, options);
  if (!report.ok()) return context.Error(kCommand, report.status().ToString());
  if (absl::Status s = eval::WriteCmReport(*report, options.out_dir); !s.ok()) {
    return context.Error(kCommand, s.ToString());
  }
  if (absl::Status s = eval::WriteCmHtmlReport(*report, options.out_dir, data->root, {}); !s.ok()) {
    return context.Error(kCommand, s.ToString());
  }
  if (context.json()) {
    std::ifstream in(options.out_dir + "/results.json");
    context.out() << in.rdbuf();
  } else {
    context.out() << eval::CmMarkdownTable(*report);
    context.err() << "retrace eval: wrote " << options.out_dir
                  << "/{results.md,results.json,report.html,rankings/}\n";
  }
  return kExitOk;
}

int RunEvalProvenanceCommand(CliContext& context, const std::vector<std::string>& args) {
  constexpr char kCommand[] = "eval provenance";
  auto parsed = ParseArgs(args, {{"data", true}, {"refs", true}, {"k", true},
                                 {"candidates", true}, {"out", true}, {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kProvenanceUsage);
  if (parsed->Has("help")) {
    context.out() << kProvenanceUsage;
    return kExitOk;
  }
  if (!parsed->Has("data") || !parsed->Has("refs")) {
    return context.UsageError(kCommand, "--data and --refs are required", kProvenanceUsage);
  }
  eval::ProvenanceEvalOptions options;
  options.out_dir = parsed->Value("out", "retrace-eval/provenance");
  options.progress = Progress(context);
  if (parsed->Has("k")) {
    auto ks = ParseKs(parsed->Value("k"));
    if (!ks.ok()) return context.UsageError(kCommand, ks.status().message(), kProvenanceUsage);
    options.recall_ks = *ks;
  }
  if (parsed->Has("candidates")) {
    auto n = ParseInt("candidates", parsed->Value("candidates"), 1, 10000);
    if (!n.ok()) return context.UsageError(kCommand, n.status().message(), kProvenanceUsage);
    options.candidates = static_cast<int>(*n);
  }
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  auto report = eval::RunProvenanceProtocol(context.client(), parsed->Value("refs"),
                                            parsed->Value("data"), options);
  if (!report.ok()) return context.Error(kCommand, report.status().ToString());
  if (absl::Status s = eval::WriteProvenanceReport(*report, options.out_dir); !s.ok()) {
    return context.Error(kCommand, s.ToString());
  }
  if (absl::Status s = eval::WriteProvenanceHtmlReport(*report, options.out_dir,
                                                       parsed->Value("refs"),
                                                       parsed->Value("data"), {});
      !s.ok()) {
    return context.Error(kCommand, s.ToString());
  }
  if (context.json()) {
    std::ifstream in(options.out_dir + "/results.json");
    context.out() << in.rdbuf();
  } else {
    context.out() << eval::ProvenanceMarkdownTable(*report);
  }
  return kExitOk;
}

}  // namespace retrace::cli
