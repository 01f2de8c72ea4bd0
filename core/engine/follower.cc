#include "core/engine/follower.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace retrace::engine {

absl::Status CatchUp(LiveCollection& collection, const store::ItemStore& store,
                     const FollowOptions& options) {
  absl::MutexLock apply_lock(&collection.apply_mu);
  const store::CollectionRecord& record = collection.record();
  while (true) {
    store::ChangeCursor& cursor = collection.cursor();
    absl::StatusOr<store::ChangePage> page =
        store.ReadChanges(record.name, record.created_position, cursor, options.page_size);
    if (page.status().code() == absl::StatusCode::kOutOfRange) {
      // Deletions this replica still needed were compacted (it was away longer than the
      // replicas' expiry): start again from the items.
      RETRACE_ASSIGN_OR_RETURN(
          RecoveredIndexes rebuilt,
          BuildFromItems(store, record,
                         absl::StrCat("deletions after position ", cursor.position,
                                      " were compacted"),
                         collection.Indexes()->group));
      if (options.log != nullptr) options.log->warn("collection '{}': {}", record.name, rebuilt.how);
      collection.SetIndexes(std::make_shared<CollectionIndexes>(std::move(rebuilt.indexes)));
      cursor = {rebuilt.applied, std::nullopt};
      collection.Advance(rebuilt.applied);
      continue;
    }
    RETRACE_RETURN_IF_ERROR(page.status());
    if (!page->changes.empty()) {
      absl::Status applied =
          options.fault_hook ? options.fault_hook(record.name, page->changes) : absl::OkStatus();
      std::shared_ptr<CollectionIndexes> indexes = collection.Indexes();
      if (applied.ok()) applied = ApplyChanges(*indexes, record, page->changes);
      if (!applied.ok()) {
        absl::Status reason(applied.code(),
                            absl::StrCat("cannot apply the changes after position ",
                                         cursor.position, " (kept pending, retried): ",
                                         applied.message()));
        if (collection.degraded().ok() && options.log != nullptr) {
          options.log->error("collection '{}': {}", record.name, reason.ToString());
        }
        collection.SetDegraded(reason);
        return reason;
      }
      collection.changes_applied.fetch_add(static_cast<int64_t>(page->changes.size()),
                                           std::memory_order_relaxed);
      cursor = page->next;
    }
    if (!collection.degraded().ok()) {
      if (options.log != nullptr) {
        options.log->info("collection '{}': applying again after position {}", record.name,
                          cursor.position);
      }
      collection.SetDegraded(absl::OkStatus());
    }
    if (!page->more) {
      // Every item now holds its state as of last_position or later (item_store.h): the cursor
      // may move past positions that held no change of this collection.
      cursor = {std::max(cursor.position, page->last_position), std::nullopt};
      collection.Advance(page->last_position);
      return absl::OkStatus();
    }
  }
}

}  // namespace retrace::engine
