// follower.h — how a collection's indexes follow the store: read the change feed from where they
// are, apply each page in commit order, and record the position reached. The indexes are a
// materialised view of the store's log (ARCHITECTURE.md, "The store is the log").
//
// CatchUp reads pages from the collection's cursor until a page says there is no more, applies
// each, and then records that page's last_position as applied. A page that cannot be applied
// (the index refuses it, memory, an injected fault) is not skipped: the cursor stays before it,
// the collection is marked degraded with the reason, and the error is returned; the next
// CatchUp (the replicator retries with backoff) reads and applies the same page again —
// applying is idempotent. Deletions compacted away before the cursor (OUT_OF_RANGE) make it
// rebuild the indexes from the store's items and go on from there.
//
// Thread-safety: any thread may call CatchUp; one applies at a time (LiveCollection::apply_mu),
// the others wait for it and then catch up whatever is left (usually nothing).
//
//   RETRACE_RETURN_IF_ERROR(CatchUp(*collection, *store, options));
//   collection->WaitApplied(position, deadline);
#ifndef RETRACE_CORE_ENGINE_FOLLOWER_H_
#define RETRACE_CORE_ENGINE_FOLLOWER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/engine/live_collection.h"
#include "core/store/item_store.h"
#include "spdlog/logger.h"

namespace retrace::engine {

// ApplyFaultHook: for tests — called before each page is applied; a non-OK status fails that
// apply as a real failure would (the page stays pending).
using ApplyFaultHook =
    std::function<absl::Status(const std::string& collection,
                               const std::vector<store::Change>& changes)>;

struct FollowOptions {
  int page_size = 512;                 // changes per store read
  ApplyFaultHook fault_hook;           // tests only
  spdlog::logger* log = nullptr;       // may be null
};

// CatchUp applies the collection's committed changes up to the end of the feed; see the banner.
// Errors: the store's (UNAVAILABLE when unreachable); ABORTED or NOT_FOUND when the collection
// was dropped (the registry drops it here); the apply's error (the collection is degraded).
// REQUIRES: the collection is not refused.
absl::Status CatchUp(LiveCollection& collection, const store::ItemStore& store,
                     const FollowOptions& options);

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_FOLLOWER_H_
