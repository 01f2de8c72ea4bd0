// index_test_util.h — vectors, ids and a brute-force reference for the core/index tests.
//
// Thread-safety: plain functions; no state.
//
//   std::vector<float> data = RandomUnitVectors(1000, 32, /*seed=*/7);
//   std::vector<IndexHit> top = BruteForce(Ids(1000), data, query, 32, 10);
#ifndef RETRACE_TESTS_UNIT_INDEX_INDEX_TEST_UTIL_H_
#define RETRACE_TESTS_UNIT_INDEX_INDEX_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/index/sharded_index.h"

namespace retrace::index::testing {

// RandomUnitVectors returns n random L2-normalised rows of `dim` floats, the same for a seed.
inline std::vector<float> RandomUnitVectors(size_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(n * static_cast<size_t>(dim));
  for (size_t i = 0; i < n; ++i) {
    float* row = out.data() + i * dim;
    double norm = 0;
    for (int j = 0; j < dim; ++j) {
      row[j] = normal(rng);
      norm += static_cast<double>(row[j]) * row[j];
    }
    for (int j = 0; j < dim; ++j) row[j] = static_cast<float>(row[j] / std::sqrt(norm));
  }
  return out;
}

// Ids returns prefix0, prefix1, ...
inline std::vector<std::string> Ids(size_t n, const std::string& prefix = "item-") {
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(absl::StrCat(prefix, i));
  return ids;
}

inline float Dot(const float* a, const float* b, int dim) {
  float sum = 0;
  for (int j = 0; j < dim; ++j) sum += a[j] * b[j];
  return sum;
}

// BruteForce ranks every row against `query` by inner product, best first, ties by id.
inline std::vector<IndexHit> BruteForce(const std::vector<std::string>& ids,
                                        const std::vector<float>& data, const float* query, int dim,
                                        int k) {
  std::vector<IndexHit> all;
  for (size_t i = 0; i < ids.size(); ++i) all.push_back({ids[i], Dot(&data[i * dim], query, dim)});
  std::sort(all.begin(), all.end(), [](const IndexHit& a, const IndexHit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  all.resize(std::min(all.size(), static_cast<size_t>(k)));
  return all;
}

}  // namespace retrace::index::testing

#endif  // RETRACE_TESTS_UNIT_INDEX_INDEX_TEST_UTIL_H_
