// provenance_protocol.h — the CS-SLIP paper's evaluation, run through the service's own API.
//
// A query set (a folder with queries/ and ground_truth.csv, as `retrace eval build-similar`
// writes it: each query is a transformed copy of one reference) is searched against a gallery
// of the references. R@k is the fraction of queries whose reference is in the top k
// (tie-aware, core/eval/metrics.h), reported for the paper's feature ablation:
//   clip           CLIP image features alone          (image-space query [0, e_clip])
//   image_encoder  CS-SLIP features alone             ([e_enc, 0]; needs an image encoder)
//   concatenated   both, as the image space holds them ([e_enc, e_clip])
//   reranked       concatenated + the cross-modal re-ranking, Q_t = the query's caption
// The queries' own embeddings and captions come from the service too: the queries are indexed
// into a scratch collection and read back with Get(include_embeddings), so every variant is
// one PROVENANCE search with an embedding query. Rankings are saved per variant
// (rankings_file.h; a query's "label" is its reference id) and RecomputeProvenanceReport
// reproduces the numbers from them.
//
// Thread-safety: functions; one run per client at a time.
#ifndef RETRACE_CLIENT_EVAL_PROVENANCE_PROTOCOL_H_
#define RETRACE_CLIENT_EVAL_PROVENANCE_PROTOCOL_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/retrace_client.h"

namespace retrace::eval {

struct ProvenanceEvalOptions {
  std::vector<int> recall_ks = {1, 5, 10, 50, 100};
  int candidates = 100;  // N for re-ranking; raised to the largest k
  std::string collection_prefix = "eval-provenance";  // <prefix>-refs, <prefix>-queries
  std::string out_dir;   // required
  std::function<void(const std::string&)> progress;
};

struct ProvenanceReport {
  std::vector<std::string> metric_names;  // "R@1", ...
  int queries = 0;
  // variant name -> metric -> value, in the order of `variants`.
  std::vector<std::string> variants;
  std::map<std::string, std::map<std::string, double>> results;
};

// RunProvenanceProtocol: INVALID_ARGUMENT naming the option or the ground-truth line; NOT_FOUND
// for a missing folder, file or query image; the server's errors naming the call.
absl::StatusOr<ProvenanceReport> RunProvenanceProtocol(client::RetraceClient& client,
                                                       const std::string& refs_dir,
                                                       const std::string& queries_dir,
                                                       const ProvenanceEvalOptions& options);

absl::StatusOr<ProvenanceReport> RecomputeProvenanceReport(const std::string& out_dir,
                                                           const std::vector<int>& recall_ks);

// ProvenanceMarkdownTable: a row per variant, a column per R@k, in percent.
std::string ProvenanceMarkdownTable(const ProvenanceReport& report);

// WriteProvenanceReport writes <out_dir>/results.json and results.md.
absl::Status WriteProvenanceReport(const ProvenanceReport& report, const std::string& out_dir);

}  // namespace retrace::eval

#endif  // RETRACE_CLIENT_EVAL_PROVENANCE_PROTOCOL_H_
