#include "core/eval/metrics.h"

#include <algorithm>

namespace retrace::eval {
namespace {

// TieGroup: a run of entries with equal scores.
struct TieGroup {
  int begin = 0;     // position of its first entry (0-based)
  int size = 0;
  int relevant = 0;
};

std::vector<TieGroup> Groups(const Ranking& ranking) {
  std::vector<TieGroup> groups;
  for (int i = 0; i < static_cast<int>(ranking.size()); ++i) {
    if (groups.empty() || ranking[i].score != ranking[i - 1].score) {
      groups.push_back({i, 0, 0});
    }
    ++groups.back().size;
    groups.back().relevant += ranking[i].relevant ? 1 : 0;
  }
  return groups;
}

// ExpectedRelevantInTopK: expected relevant entries among the first k, ties shuffled.
double ExpectedRelevantInTopK(const Ranking& ranking, int k) {
  double found = 0;
  for (const TieGroup& g : Groups(ranking)) {
    if (g.begin >= k) break;
    const int inside = std::min(g.size, k - g.begin);  // slots of this group within the top k
    found += static_cast<double>(g.relevant) * inside / g.size;
  }
  return found;
}

}  // namespace

double PrecisionAtK(const Ranking& ranking, int k) {
  return ExpectedRelevantInTopK(ranking, k) / k;
}

std::optional<double> AveragePrecision(const Ranking& ranking, int relevant_in_gallery) {
  if (relevant_in_gallery <= 0) return std::nullopt;
  double sum = 0;
  int relevant_before = 0;
  for (const TieGroup& g : Groups(ranking)) {
    if (g.relevant > 0) {
      // Position j of the group (1-based) is relevant with probability r/n; given that, the
      // group's earlier j-1 positions hold (j-1)(r-1)/(n-1) relevant entries on average.
      const double r = g.relevant, n = g.size;
      for (int j = 1; j <= g.size; ++j) {
        const double earlier = g.size > 1 ? (j - 1) * (r - 1) / (n - 1) : 0;
        sum += (r / n) * (relevant_before + earlier + 1) / (g.begin + j);
      }
    }
    relevant_before += g.relevant;
  }
  return sum / relevant_in_gallery;
}

double HitAtK(const Ranking& ranking, int k) {
  // The first group holding a relevant entry decides: before it nothing is relevant.
  for (const TieGroup& g : Groups(ranking)) {
    if (g.begin >= k) return 0;
    if (g.relevant == 0) continue;
    const int inside = std::min(g.size, k - g.begin);
    // P(at least one of the group's relevant entries lands in its first `inside` slots).
    double none = 1;
    for (int i = 0; i < g.relevant; ++i) {
      none *= static_cast<double>(g.size - inside - i) / (g.size - i);
      if (none <= 0) return 1;
    }
    return 1 - none;
  }
  return 0;
}

std::optional<double> Mean(const std::vector<std::optional<double>>& values) {
  double sum = 0;
  int count = 0;
  for (const auto& v : values) {
    if (!v.has_value()) continue;
    sum += *v;
    ++count;
  }
  if (count == 0) return std::nullopt;
  return sum / count;
}

}  // namespace retrace::eval
