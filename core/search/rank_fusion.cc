#include "core/search/rank_fusion.h"

#include <algorithm>
#include <unordered_map>

namespace retrace::search {

std::vector<FusedHit> ReciprocalRankFusion(const std::vector<std::vector<std::string>>& rankings,
                                           int k) {
  std::vector<FusedHit> fused;
  std::unordered_map<std::string, size_t> where;
  size_t depth = 0;
  for (const auto& ranking : rankings) depth = std::max(depth, ranking.size());
  for (size_t rank = 0; rank < depth; ++rank) {
    for (size_t r = 0; r < rankings.size(); ++r) {
      if (rank >= rankings[r].size()) continue;
      const std::string& id = rankings[r][rank];
      auto [it, inserted] = where.emplace(id, fused.size());
      if (inserted) {
        FusedHit& hit = fused.emplace_back();
        hit.id = id;
        hit.ranks.assign(rankings.size(), -1);
      }
      FusedHit& hit = fused[it->second];
      if (hit.ranks[r] >= 0) continue;  // a repeat within one ranking
      hit.ranks[r] = static_cast<int>(rank);
      hit.score += 1.0f / static_cast<float>(k + static_cast<int>(rank) + 1);
    }
  }
  std::stable_sort(fused.begin(), fused.end(),
                   [](const FusedHit& a, const FusedHit& b) { return a.score > b.score; });
  return fused;
}

}  // namespace retrace::search
