#include "core/search/rerank.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace retrace::search {
namespace {

// Descending with NaN last, as a strict weak order.
bool Greater(float a, float b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a > b;
}

void SortBest(std::vector<Reranked>& order) {
  std::stable_sort(order.begin(), order.end(), [](const Reranked& a, const Reranked& b) {
    if (Greater(a.score, b.score)) return true;
    if (Greater(b.score, a.score)) return false;
    return Greater(a.base_score, b.base_score);
  });
}

}  // namespace

std::vector<int> CompetitionRanks(const std::vector<float>& scores) {
  std::vector<int> by_score(scores.size());
  std::iota(by_score.begin(), by_score.end(), 0);
  std::stable_sort(by_score.begin(), by_score.end(),
                   [&](int a, int b) { return Greater(scores[a], scores[b]); });
  std::vector<int> ranks(scores.size());
  for (size_t pos = 0; pos < by_score.size(); ++pos) {
    const int i = by_score[pos];
    const bool tied = pos > 0 && !Greater(scores[by_score[pos - 1]], scores[i]);
    ranks[i] = tied ? ranks[by_score[pos - 1]] : static_cast<int>(pos);
  }
  return ranks;
}

std::vector<Reranked> Rerank(const std::vector<float>& base,
                             const std::vector<float>& caption_scores,
                             const std::vector<float>& image_scores, const RerankParams& params) {
  const std::vector<int> caption_ranks = CompetitionRanks(caption_scores);
  const std::vector<int> image_ranks = CompetitionRanks(image_scores);
  std::vector<Reranked> order(base.size());
  for (size_t i = 0; i < base.size(); ++i) {
    Reranked& r = order[i];
    r.candidate = static_cast<int>(i);
    r.base_score = base[i];
    r.score = base[i];
    if (!caption_ranks.empty()) {
      r.caption_rank = caption_ranks[i];
      r.score += params.w1 * std::exp(-params.beta * static_cast<float>(r.caption_rank));
    }
    if (!image_ranks.empty()) {
      r.image_rank = image_ranks[i];
      r.score += params.w2 * std::exp(-params.beta * static_cast<float>(r.image_rank));
    }
  }
  SortBest(order);
  return order;
}

std::vector<Reranked> BaseOrder(const std::vector<float>& base) {
  return Rerank(base, {}, {}, RerankParams{});
}

}  // namespace retrace::search
