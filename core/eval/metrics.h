// metrics.h — retrieval metrics as the two papers use them, tie-aware.
//
// A Ranking is one query's returned list, best first, each entry with its score and whether it
// is relevant (Caption-Matching: same class as the query; provenance: the query's source).
// Scores can tie (an exact index returns equal cosines in arbitrary order), so every metric is
// the expectation over all orders of tied entries (McSherry & Najork, ECIR 2008): the number
// then does not depend on the order FAISS happened to return ties in. Without ties each metric
// is the textbook one:
//   PrecisionAtK   relevant entries in the top k, divided by k (k above the list's length still
//                  divides by k: the CM paper picks DomainNet classes with > 200 samples so that
//                  P@200 can reach 1);
//   AveragePrecision  (1/R) * sum over relevant positions i of P@i, where R counts the relevant
//                  items in the whole gallery (the ranking should cover it: mAP@All); nullopt
//                  when R is 0 (a class absent from the gallery), so mean AP skips the query;
//   HitAtK         1 if a relevant entry is in the top k, else 0 (averaged: R@k of the CS-SLIP
//                  paper, one relevant item per query).
//
// Thread-safety: pure functions.
//
//   Ranking r = {{0.9f, true}, {0.8f, false}};
//   double p1 = PrecisionAtK(r, 1);  // 1.0
#ifndef RETRACE_CORE_EVAL_METRICS_H_
#define RETRACE_CORE_EVAL_METRICS_H_

#include <optional>
#include <vector>

namespace retrace::eval {

struct RankedEntry {
  float score = 0;
  bool relevant = false;
};

// Ranking: best first (non-increasing score). REQUIRES for every function below.
using Ranking = std::vector<RankedEntry>;

// PrecisionAtK: expected fraction of the top k that is relevant. REQUIRES: k >= 1.
double PrecisionAtK(const Ranking& ranking, int k);

// AveragePrecision: expected AP with `relevant_in_gallery` relevant items in all; nullopt when
// that is 0. Relevant items missing from the ranking count as never found.
// REQUIRES: relevant_in_gallery >= the ranking's relevant entries.
std::optional<double> AveragePrecision(const Ranking& ranking, int relevant_in_gallery);

// HitAtK: probability that a relevant entry is in the top k. REQUIRES: k >= 1.
double HitAtK(const Ranking& ranking, int k);

// Mean: the average of the values present; nullopt when none is.
std::optional<double> Mean(const std::vector<std::optional<double>>& values);

}  // namespace retrace::eval

#endif  // RETRACE_CORE_EVAL_METRICS_H_
