// rerank.h — the cross-modal bi-directional re-ranking of the CS-SLIP provenance paper.
//
// Given N candidates of an initial image-space retrieval with base similarities S_i:
//   P_i  = 0-based rank of candidate i's caption T_i when the query is scored against T_1..T_N,
//   P'_i = 0-based rank of candidate i's image I_i when the query caption Q_t is scored
//          against I_1..I_N,
//   S'_i = S_i + w1 * exp(-beta * P_i) + w2 * exp(-beta * P'_i)      (paper eqs. 1-3)
// and the candidates are ordered by S'. Pure arithmetic on scores the caller computed: the
// engine gathers embeddings, this file decides the order, so the formula is tested alone.
//
// Thread-safety: pure functions.
//
//   RerankParams params;  params.beta = 1;  params.w1 = params.w2 = 0.1f;
//   std::vector<Reranked> order = Rerank(base, caption_scores, image_scores, params);
#ifndef RETRACE_CORE_SEARCH_RERANK_H_
#define RETRACE_CORE_SEARCH_RERANK_H_

#include <vector>

namespace retrace::search {

struct RerankParams {
  float beta = 1.0f;  // refining coefficient, >= 0
  float w1 = 0.1f;    // weight of the query -> captions term
  float w2 = 0.1f;    // weight of the query caption -> images term
};

struct Reranked {
  int candidate = 0;         // index into the inputs
  float base_score = 0;      // S
  int caption_rank = -1;     // P, or -1 when that direction was not scored
  int image_rank = -1;       // P', or -1 when that direction was not scored
  float score = 0;           // S'
};

// CompetitionRanks returns each score's 0-based rank in descending order; equal scores share
// the best rank ("1224" ranking: 0.9, 0.8, 0.8, 0.1 -> 0, 1, 1, 3), so a rank never depends on
// the order candidates arrived in. NaN ranks last.
std::vector<int> CompetitionRanks(const std::vector<float>& scores);

// Rerank scores and orders the candidates, best first; ties in S' keep the base order (higher
// S first, then input order). `caption_scores` (query vs T_i) and `image_scores` (Q_t vs I_i)
// may each be empty: that direction is not scored and adds nothing (its rank is -1).
// REQUIRES: each non-empty score vector has base.size() entries.
std::vector<Reranked> Rerank(const std::vector<float>& base,
                             const std::vector<float>& caption_scores,
                             const std::vector<float>& image_scores, const RerankParams& params);

// BaseOrder is Rerank switched off: candidates in descending S, ranks -1, S' = S.
std::vector<Reranked> BaseOrder(const std::vector<float>& base);

}  // namespace retrace::search

#endif  // RETRACE_CORE_SEARCH_RERANK_H_
