#include "core/text/internal/bpe_merge.h"

#include <queue>

namespace retrace::text::internal {
namespace {

// Candidate is a pair that could be merged: the symbol at `left`, whose id was `left_id`,
// and the symbol after it, whose id was `right_id`, when the candidate was pushed.
struct Candidate {
  int32_t rank;
  int32_t left;
  int32_t left_id;
  int32_t right_id;
  int32_t merged;
};

// Lower rank first; among equal ranks (the same pair), the leftmost first, which is the
// order the reference's left-to-right pass merges the occurrences in.
struct LaterFirst {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  }
};

}  // namespace

void ApplyMerges(const MergeTable& table, std::vector<int32_t>* word) {
  std::vector<int32_t>& ids = *word;  // a merged-away symbol's id becomes -1
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  // A doubly linked list over the live symbols, in word order.
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, LaterFirst> heap;
  auto push = [&](int32_t left) {
    const int32_t right = next[left];
    if (const MergeTable::Merge* merge = table.Find(ids[left], ids[right])) {
      heap.push(Candidate{merge->rank, left, ids[left], ids[right], merge->merged});
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);

  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const int32_t right = next[top.left];
    // Skip a candidate whose symbols have since been merged into something else.
    if (ids[top.left] != top.left_id || right < 0 || ids[right] != top.right_id) continue;
    ids[top.left] = top.merged;
    ids[right] = -1;
    next[top.left] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.left;
    if (prev[top.left] >= 0) push(prev[top.left]);
    if (next[top.left] >= 0) push(top.left);
  }

  int32_t out = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (ids[i] >= 0) ids[out++] = ids[i];
  }
  ids.resize(out);
}

size_t WordChunkEnd(std::string_view utf8, size_t start) {
  if (utf8.size() - start <= kMaxWordBytes) return utf8.size();
  size_t end = start + kMaxWordBytes;
  // Back off over continuation bytes (10xxxxxx) so the cut falls between characters.
  while (end > start + 1 && (static_cast<unsigned char>(utf8[end]) & 0xC0) == 0x80) --end;
  return end;
}

}  // namespace retrace::text::internal
