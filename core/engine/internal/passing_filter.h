// passing_filter.h — the index-search filter over the ids a filter matched in the item table,
// with the engine's one set of exact-search and efSearch defaults (defaults.h), for every
// filtered index search (Search's rankings, Index's near-duplicate check).
//
// Thread-safety: a pure function; the result points into `matched`, which must outlive it.
//
//   ItemTable::Matched matched = table.Match(filter);
//   index::SearchFilter f = PassingFilter(matched);
#ifndef RETRACE_CORE_ENGINE_INTERNAL_PASSING_FILTER_H_
#define RETRACE_CORE_ENGINE_INTERNAL_PASSING_FILTER_H_

#include "core/engine/defaults.h"
#include "core/engine/item_table.h"
#include "core/index/sharded_index.h"

namespace retrace::engine::internal {

inline index::SearchFilter PassingFilter(const ItemTable::Matched& matched) {
  return index::SearchFilter{&matched.ids, defaults::kFilterExactMaxIds,
                             defaults::kFilterExactFraction, defaults::kFilterMinEfSearch,
                             defaults::kFilterMaxEfSearch};
}

}  // namespace retrace::engine::internal

#endif  // RETRACE_CORE_ENGINE_INTERNAL_PASSING_FILTER_H_
