#include "client/eval/cm_protocol.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/eval/rankings_file.h"
#include "client/eval/service_calls.h"
#include "core/eval/metrics.h"
#include "nlohmann/json.hpp"

namespace retrace::eval {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr char kMap[] = "mAP@All";

std::string PairName(const std::string& a, const std::string& b) { return a + "-" + b; }

std::vector<std::string> MetricNames(const std::vector<int>& ks) {
  std::vector<std::string> names;
  for (int k : ks) names.push_back(absl::StrCat("P@", k));
  names.push_back(kMap);
  return names;
}

// Score fills a pair's metrics from its queries.
void Score(const std::vector<SavedQuery>& queries, const std::vector<int>& ks, PairResult& pair) {
  std::vector<std::vector<std::optional<double>>> precision(ks.size());
  std::vector<std::optional<double>> ap;
  for (const SavedQuery& q : queries) {
    Ranking ranking;
    for (const SavedHit& hit : q.hits) ranking.push_back({hit.score, LabelOf(hit.id) == q.label});
    for (size_t i = 0; i < ks.size(); ++i) precision[i].push_back(PrecisionAtK(ranking, ks[i]));
    ap.push_back(AveragePrecision(ranking, q.relevant_in_gallery));
  }
  pair.queries = static_cast<int>(queries.size());
  for (size_t i = 0; i < ks.size(); ++i) {
    pair.metrics[absl::StrCat("P@", ks[i])] = Mean(precision[i]).value_or(0);
  }
  pair.metrics[kMap] = Mean(ap).value_or(0);
}

void Average(CmReport& report) {
  for (const std::string& name : report.metric_names) {
    double sum = 0;
    for (const PairResult& p : report.pairs) sum += p.metrics.at(name);
    report.average[name] = report.pairs.empty() ? 0 : sum / report.pairs.size();
  }
}

absl::Status CheckOptions(const DomainDataset& data, CmOptions& options) {
  if (options.out_dir.empty()) return absl::InvalidArgumentError("out: an output folder is required");
  if (options.depth < 1 || options.depth > 100000) {
    return absl::InvalidArgumentError(absl::StrCat("depth: ", options.depth, " is not in 1..100000"));
  }
  if (options.precision_ks.empty()) return absl::InvalidArgumentError("k: give at least one k");
  for (int k : options.precision_ks) {
    if (k < 1) return absl::InvalidArgumentError(absl::StrCat("k: ", k, " is not >= 1"));
  }
  const std::set<std::string> domains(data.domains.begin(), data.domains.end());
  if (options.pairs.empty()) {
    for (const std::string& a : data.domains) {
      for (const std::string& b : data.domains) {
        if (a != b) options.pairs.emplace_back(a, b);
      }
    }
  }
  for (const auto& [a, b] : options.pairs) {
    for (const std::string& d : {a, b}) {
      if (domains.count(d) == 0) {
        return absl::InvalidArgumentError(absl::StrCat("pairs: no domain '", d, "' under ",
                                                       data.root));
      }
    }
    if (a == b) {
      return absl::InvalidArgumentError(absl::StrCat("pairs: ", PairName(a, b),
                                                     " queries a domain against itself"));
    }
  }
  return absl::OkStatus();
}

absl::Status IndexGallery(client::RetraceClient& client, const std::string& collection,
                          const std::vector<LabelledImage>& images, bool labels_as_captions) {
  std::vector<ImageFile> files;
  for (const LabelledImage& image : images) {
    files.push_back({image.id, image.path,
                     labels_as_captions ? absl::StrReplaceAll(image.label, {{"_", " "}}) : ""});
  }
  return FillFreshCollection(client, collection, files);
}

}  // namespace

absl::StatusOr<CmReport> RunCmProtocol(client::RetraceClient& client, const DomainDataset& data,
                                       const CmOptions& given) {
  CmOptions options = given;
  if (absl::Status s = CheckOptions(data, options); !s.ok()) return s;
  const fs::path rankings_dir = fs::path(options.out_dir) / "rankings";
  std::error_code ec;
  fs::create_directories(rankings_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(rankings_dir.string(), ": ", ec.message()));
  auto say = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };

  // Each gallery domain is indexed once, whatever the number of pairs that query it.
  std::map<std::string, std::vector<LabelledImage>> galleries;
  for (const auto& pair : options.pairs) galleries[pair.second] = data.InDomain(pair.second);
  for (const auto& [domain, images] : galleries) {
    say(absl::StrCat("indexing gallery ", domain, " (", images.size(), " images)"));
    if (absl::Status s = IndexGallery(client, options.collection_prefix + "-" + domain, images,
                                      options.labels_as_captions);
        !s.ok()) {
      return s;
    }
  }

  CmReport report;
  report.metric_names = MetricNames(options.precision_ks);
  for (const auto& [a, b] : options.pairs) {
    const std::vector<LabelledImage>& gallery = galleries[b];
    std::map<std::string, int> per_label;
    for (const LabelledImage& image : gallery) ++per_label[image.label];
    PairResult pair;
    pair.query_domain = a;
    pair.gallery_domain = b;
    const int depth = std::min<int>(options.depth, static_cast<int>(gallery.size()));
    pair.truncated = depth < static_cast<int>(gallery.size());
    std::vector<SavedQuery> queries;
    const std::vector<LabelledImage> query_images = data.InDomain(a);
    for (const LabelledImage& image : query_images) {
      absl::StatusOr<std::string> bytes = ReadImageFile(image.path);
      if (!bytes.ok()) return bytes.status();
      v1::SearchRequest request;
      request.set_collection(options.collection_prefix + "-" + b);
      request.set_image(std::move(*bytes));
      request.set_mode(v1::CAPTION_MATCH);
      request.set_top_k(depth);
      v1::SearchResponse response;
      if (absl::Status s = FromGrpc(client.Search(request, &response),
                                    absl::StrCat("search ", image.id, " in ", b));
          !s.ok()) {
        return s;
      }
      SavedQuery& q = queries.emplace_back();
      q.id = image.id;
      q.label = image.label;
      q.relevant_in_gallery = per_label[image.label];
      for (const v1::SearchHit& hit : response.hits()) {
        q.hits.push_back({hit.id(), hit.score(), hit.caption()});
      }
    }
    if (absl::Status s = SaveRankings(
            (rankings_dir / (PairName(a, b) + ".jsonl")).string(), queries);
        !s.ok()) {
      return s;
    }
    Score(queries, options.precision_ks, pair);
    say(absl::StrFormat("%s: %d queries, mAP@All %.4f", PairName(a, b), pair.queries,
                        pair.metrics[kMap]));
    report.pairs.push_back(std::move(pair));
  }
  Average(report);
  return report;
}

absl::StatusOr<CmReport> RecomputeCmReport(const std::string& out_dir,
                                           const std::vector<int>& precision_ks) {
  const fs::path rankings_dir = fs::path(out_dir) / "rankings";
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(rankings_dir, ec)) {
    if (entry.path().extension() == ".jsonl") files.push_back(entry.path());
  }
  if (ec || files.empty()) {
    return absl::NotFoundError(absl::StrCat("no rankings in ", rankings_dir.string()));
  }
  std::sort(files.begin(), files.end());
  CmReport report;
  report.metric_names = MetricNames(precision_ks);
  for (const fs::path& file : files) {
    auto queries = LoadRankings(file.string());
    if (!queries.ok()) return queries.status();
    PairResult pair;
    std::vector<std::string> domains = absl::StrSplit(file.stem().string(), absl::MaxSplits('-', 1));
    pair.query_domain = domains[0];
    pair.gallery_domain = domains.size() > 1 ? domains[1] : "";
    Score(*queries, precision_ks, pair);
    report.pairs.push_back(std::move(pair));
  }
  Average(report);
  return report;
}

std::string CmMarkdownTable(const CmReport& report) {
  std::string header = "| metric |", rule = "| --- |";
  for (const PairResult& p : report.pairs) {
    absl::StrAppend(&header, " ", p.query_domain, "→", p.gallery_domain,
                    p.truncated ? " (truncated)" : "", " |");
    absl::StrAppend(&rule, " ---: |");
  }
  absl::StrAppend(&header, " Avg |\n");
  absl::StrAppend(&rule, " ---: |\n");
  std::string table = header + rule;
  for (const std::string& name : report.metric_names) {
    absl::StrAppend(&table, "| ", name, " |");
    for (const PairResult& p : report.pairs) {
      absl::StrAppend(&table, absl::StrFormat(" %.1f |", 100 * p.metrics.at(name)));
    }
    absl::StrAppend(&table, absl::StrFormat(" %.1f |\n", 100 * report.average.at(name)));
  }
  return table;
}

absl::Status WriteCmReport(const CmReport& report, const std::string& out_dir) {
  json pairs = json::array();
  for (const PairResult& p : report.pairs) {
    pairs.push_back({{"query_domain", p.query_domain},
                     {"gallery_domain", p.gallery_domain},
                     {"queries", p.queries},
                     {"truncated", p.truncated},
                     {"metrics", p.metrics}});
  }
  const json results = {{"protocol", "caption-matching"},
                        {"metrics", report.metric_names},
                        {"pairs", pairs},
                        {"average", report.average}};
  return WriteRunFiles(out_dir, {{"results.json", results.dump(1) + "\n"},
                                {"results.md", CmMarkdownTable(report)}});
}

}  // namespace retrace::eval
