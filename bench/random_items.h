// random_items.h — random unit vectors and stored items for the benchmarks that fill a store
// directly (startup_bench, rerank_bench, search_overhead_bench) and the index benchmarks.
//
// Thread-safety: functions; each call uses only the generator it is given.
//
//   std::mt19937 rng(7);
//   store::StoredItem item = RandomItem(rng, 17, /*clip_dim=*/512, /*encoder_dim=*/48);
#ifndef RETRACE_BENCH_RANDOM_ITEMS_H_
#define RETRACE_BENCH_RANDOM_ITEMS_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/store/item_store.h"

namespace retrace::bench {

// RandomUnit: a vector of `dim` normal draws scaled to unit length (uniform on the sphere).
inline std::vector<float> RandomUnit(std::mt19937& rng, size_t dim) {
  std::normal_distribution<float> normal;
  std::vector<float> v(dim);
  double norm = 0;
  for (float& x : v) {
    x = normal(rng);
    norm += double{x} * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

// RandomUnits: n such vectors, row-major, from a generator seeded with `seed`.
inline std::vector<float> RandomUnits(size_t n, size_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v;
  v.reserve(n * dim);
  for (size_t i = 0; i < n; ++i) {
    const std::vector<float> row = RandomUnit(rng, dim);
    v.insert(v.end(), row.begin(), row.end());
  }
  return v;
}

// RandomItem: item `i` ("item-<i>", caption "caption <i>") with random unit CLIP embeddings of
// `clip_dim` and, when encoder_dim > 0, image-encoder features of that size.
inline store::StoredItem RandomItem(std::mt19937& rng, int64_t i, size_t clip_dim,
                                    size_t encoder_dim) {
  store::StoredItem item;
  item.id = absl::StrCat("item-", i);
  item.caption = absl::StrCat("caption ", i);
  item.caption_text = RandomUnit(rng, clip_dim);
  item.clip_image = RandomUnit(rng, clip_dim);
  if (encoder_dim > 0) item.image_features = RandomUnit(rng, encoder_dim);
  return item;
}

}  // namespace retrace::bench

#endif  // RETRACE_BENCH_RANDOM_ITEMS_H_
