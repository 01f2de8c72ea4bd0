// cm_protocol.h — the Caption-Matching paper's evaluation, run through the service's own API.
//
// For each ordered domain pair A-B, every image of A queries a gallery made of B (one collection
// per gallery domain, captioned by the server's captioner, or with the class name as caption for
// the paper's ablation). A hit is relevant when its class is the query's. Per pair: P@k for the
// requested k (the paper: 1/5/15 on Office-Home, 50/100/200 on DomainNet) and mAP@All; then the
// average over pairs — the paper's table layout (pairs as columns, then Avg).
//
// Every query's ranking (ids and scores) is saved to <out>/rankings/<A>-<B>.jsonl with its label
// and the number of relevant gallery items, so RecomputeCmReport reproduces every number from
// the files alone. Metrics are tie-aware (core/eval/metrics.h).
//
// mAP@All ranks the whole gallery: each query asks for min(depth, gallery size) hits, and the
// server's limits.max_top_k (default 1000) must allow that; a gallery larger than depth makes
// AP a lower bound, and the pair is marked `truncated`.
//
// Thread-safety: functions; one run per client at a time.
//
//   RETRACE_ASSIGN_OR_RETURN(CmReport report, RunCmProtocol(client, dataset, options));
//   RETRACE_RETURN_IF_ERROR(WriteCmReport(report, options.out_dir));
#ifndef RETRACE_CLIENT_EVAL_CM_PROTOCOL_H_
#define RETRACE_CLIENT_EVAL_CM_PROTOCOL_H_

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "client/retrace_client.h"
#include "core/eval/domain_dataset.h"

namespace retrace::eval {

struct CmOptions {
  // pairs: (query domain, gallery domain); empty means every ordered pair of distinct domains.
  std::vector<std::pair<std::string, std::string>> pairs;
  bool labels_as_captions = false;  // the ablation: caption = class name, '_' as spaces
  std::vector<int> precision_ks = {1, 5, 15};
  int depth = 1000;                 // hits per query; 1..100000
  std::string collection_prefix = "eval-cm";  // galleries are <prefix>-<domain>, replaced
  std::string out_dir;              // rankings/ go here; required
  std::function<void(const std::string&)> progress;  // optional: a line of progress
};

struct PairResult {
  std::string query_domain, gallery_domain;
  int queries = 0;
  std::map<std::string, double> metrics;  // "P@1", ..., "mAP@All"
  bool truncated = false;                 // some gallery larger than depth
};

struct CmReport {
  std::vector<std::string> metric_names;  // in table order
  std::vector<PairResult> pairs;
  std::map<std::string, double> average;  // over pairs
};

// RunCmProtocol indexes each gallery domain once, runs every query, saves the rankings and
// returns the report. INVALID_ARGUMENT naming the option for an unknown domain, a pair of one
// domain, an empty domain, k < 1 or a bad depth; the server's error (naming the call) otherwise.
absl::StatusOr<CmReport> RunCmProtocol(client::RetraceClient& client, const DomainDataset& data,
                                       const CmOptions& options);

// RecomputeCmReport reads <out_dir>/rankings/*.jsonl and computes the same report.
// DATA_LOSS naming the file and line for a malformed one.
absl::StatusOr<CmReport> RecomputeCmReport(const std::string& out_dir,
                                           const std::vector<int>& precision_ks);

// WriteCmReport writes <out_dir>/results.json and <out_dir>/results.md.
absl::Status WriteCmReport(const CmReport& report, const std::string& out_dir);

// CmMarkdownTable: the report as the paper lays it out: a row per metric, a column per pair
// ("A→B"), then Avg; values in percent with one decimal.
std::string CmMarkdownTable(const CmReport& report);

}  // namespace retrace::eval

#endif  // RETRACE_CLIENT_EVAL_CM_PROTOCOL_H_
