// embeddings.h — a batch of embedding vectors, row-major, and L2 normalisation.
//
// Every embedding the service stores or searches with is L2-normalised, so inner product is
// cosine similarity (ARCHITECTURE.md, "Model contract").
//
// Thread-safety: plain values and pure functions.
//
//   EmbeddingMatrix m(2, 512);  m.Row(0)[0] = 1.f;
//   NormalizeRows(m);
#ifndef RETRACE_CORE_MODELS_EMBEDDINGS_H_
#define RETRACE_CORE_MODELS_EMBEDDINGS_H_

#include <cmath>
#include <cstddef>
#include <vector>

namespace retrace::models {

// EmbeddingMatrix: `rows` vectors of `dim` floats, one after another.
struct EmbeddingMatrix {
  EmbeddingMatrix() = default;
  EmbeddingMatrix(size_t rows, int dim) : rows(rows), dim(dim), values(rows * dim, 0.f) {}

  float* Row(size_t i) { return values.data() + i * dim; }
  const float* Row(size_t i) const { return values.data() + i * dim; }
  std::vector<float> RowVector(size_t i) const { return {Row(i), Row(i) + dim}; }

  size_t rows = 0;
  int dim = 0;
  std::vector<float> values;
};

// L2Normalize scales `v` (n floats) to unit length and returns its original norm; a zero vector
// is left as it is (norm 0), so callers can reject it.
inline float L2Normalize(float* v, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(v[i]) * v[i];
  const double norm = std::sqrt(sum);
  if (norm > 0) {
    const float inv = static_cast<float>(1.0 / norm);
    for (size_t i = 0; i < n; ++i) v[i] *= inv;
  }
  return static_cast<float>(norm);
}

// NormalizeRows L2-normalises every row of `m`.
inline void NormalizeRows(EmbeddingMatrix& m) {
  for (size_t i = 0; i < m.rows; ++i) L2Normalize(m.Row(i), m.dim);
}

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_EMBEDDINGS_H_
