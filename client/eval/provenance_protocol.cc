#include "client/eval/provenance_protocol.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/eval/rankings_file.h"
#include "client/eval/service_calls.h"
#include "core/eval/metrics.h"
#include "core/image/image_files.h"
#include "nlohmann/json.hpp"

namespace retrace::eval {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kGetBatch = 64;  // the server's default max_items_per_call
constexpr size_t kMaxQueries = 1'000'000;


struct GroundTruth {
  std::string query_id, reference_id;
};

// ReadGroundTruth reads "query_id,reference_id[,...]" rows after a header line.
absl::StatusOr<std::vector<GroundTruth>> ReadGroundTruth(const std::string& file) {
  std::ifstream in(file);
  if (!in) return absl::NotFoundError(absl::StrCat(file, ": cannot be read"));
  std::vector<GroundTruth> rows;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (number == 1 || text.empty()) continue;  // the header
    std::vector<std::string> fields = absl::StrSplit(text, absl::MaxSplits(',', 2));
    if (fields.size() < 2 || fields[0].empty() || fields[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ":", number, ": expected query_id,reference_id[,...]"));
    }
    if (rows.size() >= kMaxQueries) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": more than ", kMaxQueries, " queries"));
    }
    rows.push_back({fields[0], fields[1]});
  }
  if (rows.empty()) return absl::InvalidArgumentError(absl::StrCat(file, ": no queries"));
  return rows;
}

std::vector<std::string> MetricNames(const std::vector<int>& ks) {
  std::vector<std::string> names;
  for (int k : ks) names.push_back(absl::StrCat("R@", k));
  return names;
}

std::map<std::string, double> Score(const std::vector<SavedQuery>& queries,
                                    const std::vector<int>& ks) {
  std::map<std::string, double> out;
  for (int k : ks) {
    std::vector<std::optional<double>> hits;
    for (const SavedQuery& q : queries) {
      Ranking ranking;
      for (const SavedHit& hit : q.hits) ranking.push_back({hit.score, hit.id == q.label});
      hits.push_back(HitAtK(ranking, k));
    }
    out[absl::StrCat("R@", k)] = Mean(hits).value_or(0);
  }
  return out;
}

// Stored: a query's embeddings and caption, read back from the scratch collection.
struct Stored {
  std::vector<float> features, clip;
  std::string caption;
};

}  // namespace

absl::StatusOr<ProvenanceReport> RunProvenanceProtocol(client::RetraceClient& client,
                                                       const std::string& refs_dir,
                                                       const std::string& queries_dir,
                                                       const ProvenanceEvalOptions& options) {
  if (options.out_dir.empty()) return absl::InvalidArgumentError("out: an output folder is required");
  if (options.recall_ks.empty()) return absl::InvalidArgumentError("k: give at least one k");
  for (int k : options.recall_ks) {
    if (k < 1 || k > 1000) return absl::InvalidArgumentError(absl::StrCat("k: ", k, " is not in 1..1000"));
  }
  const int depth = *std::max_element(options.recall_ks.begin(), options.recall_ks.end());
  auto say = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };

  // References: every image file under refs_dir, id = its relative path.
  std::error_code ec;
  if (!fs::is_directory(refs_dir, ec)) {
    return absl::NotFoundError(absl::StrCat("refs: ", refs_dir, " is not a directory"));
  }
  // The same walk as `retrace index` and `retrace eval build-similar`: the same ids.
  std::vector<ImageFile> refs;
  for (image::FoundImage& f : image::WalkImageFolder(refs_dir).files) {
    refs.push_back({std::move(f.id), std::move(f.path), ""});
  }
  std::set<std::string> ref_ids;
  for (const ImageFile& r : refs) ref_ids.insert(r.id);

  // Queries: ground truth rows, each with its image under queries/.
  absl::StatusOr<std::vector<GroundTruth>> truth =
      ReadGroundTruth((fs::path(queries_dir) / "ground_truth.csv").string());
  if (!truth.ok()) return truth.status();
  std::map<std::string, std::string> query_files;  // stem -> path
  for (const auto& entry : fs::directory_iterator(fs::path(queries_dir) / "queries", ec)) {
    if (entry.is_regular_file() && image::HasImageExtension(entry.path().native())) {
      query_files[entry.path().stem().string()] = entry.path().string();
    }
  }
  std::vector<ImageFile> queries;
  for (const GroundTruth& row : *truth) {
    auto it = query_files.find(row.query_id);
    if (it == query_files.end()) {
      return absl::NotFoundError(absl::StrCat("query '", row.query_id, "' has no image under ",
                                              queries_dir, "/queries"));
    }
    if (ref_ids.count(row.reference_id) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("ground truth: query '", row.query_id,
                                                     "' names reference '", row.reference_id,
                                                     "', which is not under ", refs_dir));
    }
    queries.push_back({row.query_id, it->second, ""});
  }

  const std::string gallery = options.collection_prefix + "-refs";
  const std::string scratch = options.collection_prefix + "-queries";
  say(absl::StrCat("indexing ", refs.size(), " references"));
  if (absl::Status s = FillFreshCollection(client, gallery, refs); !s.ok()) return s;
  say(absl::StrCat("embedding ", queries.size(), " queries"));
  if (absl::Status s = FillFreshCollection(client, scratch, queries); !s.ok()) return s;

  std::vector<Stored> stored(queries.size());
  for (size_t begin = 0; begin < queries.size(); begin += kGetBatch) {
    v1::GetRequest get;
    get.set_collection(scratch);
    get.set_include_embeddings(true);
    const size_t end = std::min(queries.size(), begin + kGetBatch);
    for (size_t i = begin; i < end; ++i) get.add_ids(queries[i].id);
    v1::GetResponse got;
    if (absl::Status s = FromGrpc(client.Get(get, &got), "get query embeddings"); !s.ok()) return s;
    for (size_t i = begin; i < end; ++i) {
      const v1::StoredItem& item = got.results(i - begin).item();
      stored[i].features.assign(item.image_features().values().begin(),
                                item.image_features().values().end());
      stored[i].clip.assign(item.clip_image().values().begin(), item.clip_image().values().end());
      stored[i].caption = item.caption();
    }
  }
  const bool has_encoder = !stored.empty() && !stored[0].features.empty();

  ProvenanceReport report;
  report.metric_names = MetricNames(options.recall_ks);
  report.queries = static_cast<int>(queries.size());
  report.variants = {"clip"};
  if (has_encoder) report.variants.insert(report.variants.end(), {"image_encoder", "concatenated"});
  report.variants.push_back("reranked");
  const fs::path rankings_dir = fs::path(options.out_dir) / "rankings";
  fs::create_directories(rankings_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(rankings_dir.string(), ": ", ec.message()));

  for (const std::string& variant : report.variants) {
    std::vector<SavedQuery> saved;
    for (size_t i = 0; i < queries.size(); ++i) {
      const Stored& q = stored[i];
      v1::SearchRequest request;
      request.set_collection(gallery);
      request.set_mode(v1::PROVENANCE);
      request.set_top_k(depth);
      request.mutable_provenance()->set_candidates(std::max(options.candidates, depth));
      v1::Embedding* e = request.mutable_embedding();
      const bool use_encoder = variant != "clip";
      const bool use_clip = variant != "image_encoder";
      for (float x : q.features) e->add_values(use_encoder ? x : 0.f);
      for (float x : q.clip) e->add_values(use_clip ? x : 0.f);
      if (variant == "reranked") {
        request.set_query_caption(q.caption);
      } else {
        request.mutable_provenance()->set_no_rerank(true);
      }
      v1::SearchResponse response;
      if (absl::Status s = FromGrpc(client.Search(request, &response),
                                    absl::StrCat("search ", queries[i].id, " (", variant, ")"));
          !s.ok()) {
        return s;
      }
      SavedQuery& sq = saved.emplace_back();
      sq.id = queries[i].id;
      sq.label = (*truth)[i].reference_id;
      sq.relevant_in_gallery = 1;
      for (const v1::SearchHit& hit : response.hits()) {
        sq.hits.push_back({hit.id(), hit.score(), hit.caption()});
      }
    }
    if (absl::Status s = SaveRankings((rankings_dir / (variant + ".jsonl")).string(), saved);
        !s.ok()) {
      return s;
    }
    report.results[variant] = Score(saved, options.recall_ks);
    say(absl::StrFormat("%s: R@1 %.4f", variant, report.results[variant].begin()->second));
  }
  return report;
}

absl::StatusOr<ProvenanceReport> RecomputeProvenanceReport(const std::string& out_dir,
                                                           const std::vector<int>& recall_ks) {
  ProvenanceReport report;
  report.metric_names = MetricNames(recall_ks);
  for (const char* variant : {"clip", "image_encoder", "concatenated", "reranked"}) {
    const fs::path file = fs::path(out_dir) / "rankings" / (std::string(variant) + ".jsonl");
    if (!fs::exists(file)) continue;
    auto saved = LoadRankings(file.string());
    if (!saved.ok()) return saved.status();
    report.variants.push_back(variant);
    report.queries = static_cast<int>(saved->size());
    report.results[variant] = Score(*saved, recall_ks);
  }
  if (report.variants.empty()) {
    return absl::NotFoundError(absl::StrCat("no rankings in ", out_dir, "/rankings"));
  }
  return report;
}

std::string ProvenanceMarkdownTable(const ProvenanceReport& report) {
  std::string table = "| features |";
  std::string rule = "| --- |";
  for (const std::string& name : report.metric_names) {
    absl::StrAppend(&table, " ", name, " |");
    absl::StrAppend(&rule, " ---: |");
  }
  table += "\n" + rule + "\n";
  for (const std::string& variant : report.variants) {
    absl::StrAppend(&table, "| ", variant, " |");
    for (const std::string& name : report.metric_names) {
      absl::StrAppend(&table, absl::StrFormat(" %.1f |", 100 * report.results.at(variant).at(name)));
    }
    table += "\n";
  }
  return table;
}

absl::Status WriteProvenanceReport(const ProvenanceReport& report, const std::string& out_dir) {
  const json results = {{"protocol", "provenance"},
                        {"queries", report.queries},
                        {"metrics", report.metric_names},
                        {"variants", report.variants},
                        {"results", report.results}};
  return WriteRunFiles(out_dir, {{"results.json", results.dump(1) + "\n"},
                                {"results.md", ProvenanceMarkdownTable(report)}});
}

}  // namespace retrace::eval
