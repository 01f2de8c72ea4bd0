// rank_fusion.h — reciprocal-rank fusion (Cormack et al., SIGIR 2009) of several rankings.
//
// HYBRID search fuses the Caption-Matching ranking and the provenance ranking. Their scores
// live on different scales (a cosine vs S' with bonuses), so they are fused by rank, not score:
// fused(id) = sum over rankings that hold id of 1 / (k + rank + 1), rank 0-based. k = 60 is the
// paper's constant; a smaller k lets the top ranks dominate.
//
// Thread-safety: pure functions.
//
//   std::vector<FusedHit> fused = ReciprocalRankFusion({caption_ids, provenance_ids}, 60);
#ifndef RETRACE_CORE_SEARCH_RANK_FUSION_H_
#define RETRACE_CORE_SEARCH_RANK_FUSION_H_

#include <string>
#include <vector>

namespace retrace::search {

struct FusedHit {
  std::string id;
  float score = 0;
  std::vector<int> ranks;  // per input ranking, the id's 0-based rank there, or -1
};

// ReciprocalRankFusion returns every id of `rankings` once, best first; ties keep the order in
// which ids first appear, reading the rankings rank by rank (ranking 0's first, ranking 1's
// first, ranking 0's second, ...). An id repeated within one ranking counts at its best rank.
// REQUIRES: k >= 1.
std::vector<FusedHit> ReciprocalRankFusion(const std::vector<std::vector<std::string>>& rankings,
                                           int k);

}  // namespace retrace::search

#endif  // RETRACE_CORE_SEARCH_RANK_FUSION_H_
