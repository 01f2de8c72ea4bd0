// inner_product.h — the inner product re-ranking scores candidates with (S, P and P' of
// rerank.h), a few hundred floats per candidate, N candidates per search.
//
// Accumulated in double, as the engine's scores always were, but in 8 independent lanes added
// together at the end, so the adds do not wait on each other (one chain is bound by the add's
// latency) and the compiler may vectorise them. The lanes change the order of the double
// additions only: the result differs from a one-chain double sum by about 1e-16 relative, so
// its rounding to float is the same but when that sum lies within that of a float's rounding
// boundary, and then by 1 float ulp (about 6e-8 for a cosine) — tests/unit/search.
//
// Thread-safety: pure functions.
//
//   float s = search::InnerProduct(query.data(), candidate.data(), query.size());
#ifndef RETRACE_CORE_SEARCH_INNER_PRODUCT_H_
#define RETRACE_CORE_SEARCH_INNER_PRODUCT_H_

#include <cstddef>
#include <vector>

namespace retrace::search {

// InnerProduct: sum of a[i] * b[i] for i < n, in double, rounded to float once.
inline float InnerProduct(const float* a, const float* b, size_t n) {
  constexpr size_t kLanes = 8;
  double lane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t l = 0; l < kLanes; ++l) {
      lane[l] += static_cast<double>(a[i + l]) * static_cast<double>(b[i + l]);
    }
  }
  for (size_t l = 0; i < n; ++i, ++l) lane[l] += static_cast<double>(a[i]) * b[i];
  const double sum = ((lane[0] + lane[4]) + (lane[1] + lane[5])) +
                     ((lane[2] + lane[6]) + (lane[3] + lane[7]));
  return static_cast<float>(sum);
}

// InnerProduct over the shorter of the two.
inline float InnerProduct(const std::vector<float>& a, const std::vector<float>& b) {
  return InnerProduct(a.data(), b.data(), a.size() < b.size() ? a.size() : b.size());
}

}  // namespace retrace::search

#endif  // RETRACE_CORE_SEARCH_INNER_PRODUCT_H_
