// embedding_output.h — a model's [B, D] float output checked and turned into normalised rows.
//
// Thread-safety: pure function.
#ifndef RETRACE_CORE_MODELS_INTERNAL_EMBEDDING_OUTPUT_H_
#define RETRACE_CORE_MODELS_INTERNAL_EMBEDDING_OUTPUT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/models/embeddings.h"
#include "core/models/tensor.h"

namespace retrace::models::internal {

// EmbeddingsFromOutput returns `out`'s rows L2-normalised. INTERNAL naming `source` and
// `method` unless `out` is float [rows, dim].
inline absl::StatusOr<EmbeddingMatrix> EmbeddingsFromOutput(const Tensor& out, size_t rows,
                                                            int dim, const std::string& source,
                                                            const char* method) {
  if (out.dtype != DType::kFloat32 || out.shape.size() != 2 ||
      out.shape[0] != static_cast<int64_t>(rows) || out.shape[1] != dim) {
    return absl::InternalError(absl::StrCat(source, ": ", method, "() returned ",
                                            out.ShapeString(), "; the manifest promises [", rows,
                                            ", ", dim, "] float"));
  }
  EmbeddingMatrix m;
  m.rows = rows;
  m.dim = dim;
  m.values = out.f32;
  NormalizeRows(m);
  return m;
}

}  // namespace retrace::models::internal

#endif  // RETRACE_CORE_MODELS_INTERNAL_EMBEDDING_OUTPUT_H_
