// prefixed.h — small helpers the ingest and search paths share: a status with a location in
// front of its message, and a finiteness check of model outputs. (Inner products of embeddings:
// core/search/inner_product.h.)
//
// Thread-safety: pure functions.
//
//   results[i].status = Prefixed(status, "items[3] 'a.jpg'");
#ifndef RETRACE_CORE_ENGINE_INTERNAL_PREFIXED_H_
#define RETRACE_CORE_ENGINE_INTERNAL_PREFIXED_H_

#include <cmath>
#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace retrace::engine::internal {

// Prefixed returns `status` with "<where>: " before its message, same code.
inline absl::Status Prefixed(const absl::Status& status, absl::string_view where) {
  return absl::Status(status.code(), absl::StrCat(where, ": ", status.message()));
}

inline bool AllFinite(const float* v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) return false;
  }
  return true;
}

}  // namespace retrace::engine::internal

#endif  // RETRACE_CORE_ENGINE_INTERNAL_PREFIXED_H_
