// filtered_search_bench.cc — filtered search against unfiltered search on one index, in one run:
// queries per second and recall@k (against the exact filtered answer) at each selectivity. A
// figure, not a test (tests/unit/index/filtered_search_test.cc asserts the recall).
//
//   build/bench/filtered_search_bench --items 100000 --dim 64 --factory HNSW32 --queries 200
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "core/engine/defaults.h"
#include "bench/random_items.h"
#include "core/index/sharded_index.h"

ABSL_FLAG(int, items, 100000, "items in the index");
ABSL_FLAG(int, dim, 64, "vector dimension");
ABSL_FLAG(int, shards, 1, "shards");
ABSL_FLAG(std::string, factory, "HNSW32", "FAISS factory string");
ABSL_FLAG(int, queries, 200, "queries per selectivity (searched one at a time)");
ABSL_FLAG(int, k, 10, "top k");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace retrace;
  const int n = absl::GetFlag(FLAGS_items), dim = absl::GetFlag(FLAGS_dim),
            nq = absl::GetFlag(FLAGS_queries), k = absl::GetFlag(FLAGS_k);
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(absl::StrCat("item-", i));
  const std::vector<float> data = retrace::bench::RandomUnits(n, dim, 1);
  const std::vector<float> queries = retrace::bench::RandomUnits(nq, dim, 2);
  auto index = index::ShardedIndex::Create(
      index::IndexOptions{dim, absl::GetFlag(FLAGS_shards), absl::GetFlag(FLAGS_factory)});
  if (!index.ok() || !(*index)->Add(ids, data.data(), ids.size()).ok()) return 1;
  std::printf("%d items, dim %d, %s, %d shard(s), %d queries one at a time, k %d\n", n, dim,
              absl::GetFlag(FLAGS_factory).c_str(), absl::GetFlag(FLAGS_shards), nq, k);
  std::printf("%-12s %10s %12s %10s\n", "selectivity", "QPS", "vs unfilt.", "recall@k");
  double unfiltered_qps = 0;
  for (double fraction : {1.0, 0.5, 0.1, 0.01, 0.001}) {
    std::mt19937 rng(3);
    std::bernoulli_distribution keep(fraction);
    absl::flat_hash_set<std::string> allowed;
    std::vector<size_t> rows;
    for (int i = 0; i < n; ++i) {
      if (fraction == 1.0 || keep(rng)) {
        allowed.insert(ids[i]);
        rows.push_back(i);
      }
    }
    const index::SearchFilter filter{&allowed, engine::defaults::kFilterExactMaxIds,
                                     engine::defaults::kFilterExactFraction,
                                     engine::defaults::kFilterMinEfSearch,
                                     engine::defaults::kFilterMaxEfSearch};
    const index::SearchFilter* f = fraction == 1.0 ? nullptr : &filter;
    std::vector<std::vector<index::IndexHit>> found;
    const auto start = std::chrono::steady_clock::now();
    for (int q = 0; q < nq; ++q) {
      auto hits = (*index)->Search(queries.data() + q * dim, 1, k, f);
      if (!hits.ok()) return 1;
      found.push_back((*hits)[0]);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double recall = 0;
    for (int q = 0; q < nq; ++q) {
      std::vector<std::pair<float, size_t>> all;
      for (size_t r : rows) {
        float dot = 0;
        for (int j = 0; j < dim; ++j) dot += queries[q * dim + j] * data[r * dim + j];
        all.push_back({-dot, r});
      }
      const size_t top = std::min<size_t>(k, all.size());
      std::partial_sort(all.begin(), all.begin() + top, all.end());
      absl::flat_hash_set<std::string> truth;
      for (size_t i = 0; i < top; ++i) truth.insert(ids[all[i].second]);
      size_t got = 0;
      for (const auto& hit : found[q]) got += truth.contains(hit.id) ? 1 : 0;
      recall += top == 0 ? 1.0 : static_cast<double>(got) / top;
    }
    const double qps = nq / seconds;
    if (fraction == 1.0) unfiltered_qps = qps;
    std::printf("%-12s %10.0f %11.2fx %10.3f\n",
                fraction == 1.0 ? "unfiltered" : absl::StrCat(fraction * 100, "%").c_str(), qps,
                qps / unfiltered_qps, recall / nq);
  }
  return 0;
}
