// collection_state.h — what the Engine holds per collection, and the small helpers that
// engine.cc (writes, management) and engine_search.cc (reads) share.
//
// Thread-safety: Collection's indexes are thread-safe; write_mu orders writes (see below).
#ifndef RETRACE_CORE_ENGINE_INTERNAL_COLLECTION_STATE_H_
#define RETRACE_CORE_ENGINE_INTERNAL_COLLECTION_STATE_H_

#include <cmath>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/engine/collection_index.h"
#include "core/engine/engine.h"
#include "core/store/item_store.h"

namespace retrace::engine {

struct Engine::Collection {
  store::CollectionRecord record;
  CollectionIndexes indexes;  // empty when refused
  absl::Status refused;  // not OK: built with other models; every use answers this
  // Serialises writes so that the store and the indexes see them in the same order.
  absl::Mutex write_mu;
  int64_t snapshot_sequence ABSL_GUARDED_BY(write_mu) = -1;  // of the last snapshot, if any
};

namespace internal {

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

}  // namespace internal
}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_INTERNAL_COLLECTION_STATE_H_
