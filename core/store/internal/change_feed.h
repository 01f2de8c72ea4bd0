// change_feed.h — the parts of ItemStore::ReadChanges that do not depend on the database: the
// checks a feed read starts with and the merge of a page's puts and deletions. Both stores
// (SQLite and PostgreSQL) use them, so the feed's rules are written once.
//
// Thread-safety: pure functions.
//
//   RETRACE_RETURN_IF_ERROR(CheckFeedState(name, created, cursor.position, row_created, compacted));
//   page.changes = MergeChanges(std::move(puts), std::move(deletions), limit);
#ifndef RETRACE_CORE_STORE_INTERNAL_CHANGE_FEED_H_
#define RETRACE_CORE_STORE_INTERNAL_CHANGE_FEED_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/store/item_store.h"

namespace retrace::store::internal {

// CheckFeedState: ABORTED when the collection found (created at `stored_created`) is not the
// one the reader follows (`created_position`); OUT_OF_RANGE when deletions after `after` were
// compacted (`compacted` > after); OK otherwise.
absl::Status CheckFeedState(const std::string& collection, int64_t created_position,
                            int64_t after, int64_t stored_created, int64_t compacted);

// MergeChanges merges two lists sorted by (position, id) and keeps the first `limit`.
std::vector<Change> MergeChanges(std::vector<Change> puts, std::vector<Change> deletions,
                                 int limit);

}  // namespace retrace::store::internal

#endif  // RETRACE_CORE_STORE_INTERNAL_CHANGE_FEED_H_
