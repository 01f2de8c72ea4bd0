// live_collection.h — one collection as this replica holds it: its record (fixed at creation),
// the indexes and item table derived from the store, and how far they have followed the store's
// change feed. The registry (collection_registry.h) makes and drops them; the follower
// (follower.h) advances them; the ingest and search paths read them.
//
// Positions: `applied` only grows: every change up to it is in the indexes. Readers that need a
// position (an Index call acknowledging its own write, a Search with min_position) wait on it
// with WaitApplied. `degraded` is the reason the follower cannot apply the next change (it keeps
// retrying); OK otherwise.
//
// A frontend of a sharded cluster keeps collections without indexes (holds_indexes false), as it
// keeps refused ones: only records, which its searches send to the shard servers.
//
// Thread-safety: safe for concurrent use. Indexes() hands out the current indexes (they are
// replaced whole when rebuilt); apply_mu is held by the one thread applying changes.
//
//   if (!collection->WaitApplied(position, deadline)) return absl::DeadlineExceededError(...);
//   std::shared_ptr<const CollectionIndexes> indexes = collection->Indexes();
#ifndef RETRACE_CORE_ENGINE_LIVE_COLLECTION_H_
#define RETRACE_CORE_ENGINE_LIVE_COLLECTION_H_

#include <algorithm>
#include <atomic>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/engine/collection_index.h"
#include "core/store/item_store.h"

namespace retrace::engine {

class LiveCollection {
 public:
  // A collection this replica serves, with its recovered indexes.
  LiveCollection(store::CollectionRecord record, RecoveredIndexes recovered)
      : record_(std::move(record)),
        holds_indexes_(true),
        indexes_(std::make_shared<CollectionIndexes>(std::move(recovered.indexes))),
        cursor_{recovered.applied, std::nullopt},
        applied_(recovered.applied),
        resume_(recovered.snapshot_position) {}
  // A collection built with other models: every use answers `refused`; it holds no index.
  LiveCollection(store::CollectionRecord record, absl::Status refused)
      : record_(std::move(record)), refused_(std::move(refused)) {}
  // A collection a frontend of a sharded cluster serves: it holds no index (the shard servers
  // do) and follows nothing; its writes are acknowledged once committed.
  explicit LiveCollection(store::CollectionRecord record) : record_(std::move(record)) {}
  LiveCollection(const LiveCollection&) = delete;
  LiveCollection& operator=(const LiveCollection&) = delete;

  const store::CollectionRecord& record() const { return record_; }
  const std::string& name() const { return record_.name; }
  // refused: not OK for a collection built with other models.
  const absl::Status& refused() const { return refused_; }
  // holds_indexes: this process holds (and follows) the collection's indexes and item table:
  // not a refused collection, nor a frontend's.
  bool holds_indexes() const { return holds_indexes_; }

  std::shared_ptr<CollectionIndexes> Indexes() const {
    absl::MutexLock lock(&indexes_mu_);
    return indexes_;
  }
  void SetIndexes(std::shared_ptr<CollectionIndexes> indexes) {
    absl::MutexLock lock(&indexes_mu_);
    indexes_ = std::move(indexes);
  }

  int64_t applied() const {
    absl::MutexLock lock(&state_mu_);
    return applied_;
  }
  // Advance records that every change up to `position` is applied, and wakes waiters.
  void Advance(int64_t position) {
    absl::MutexLock lock(&state_mu_);
    applied_ = std::max(applied_, position);
  }
  // WaitApplied waits until every change up to `position` is applied (true), the deadline
  // passes or the collection is dropped here (false).
  bool WaitApplied(int64_t position, absl::Time deadline) const {
    absl::MutexLock lock(&state_mu_);
    auto reached = [this, position]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_) {
      return applied_ >= position || dropped_;
    };
    state_mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
    return applied_ >= position;
  }
  // WaitForProgress waits until applied or degraded changes, or the deadline passes.
  void WaitForProgress(int64_t applied, absl::Time deadline) const {
    absl::MutexLock lock(&state_mu_);
    const bool was_degraded = !degraded_.ok();
    auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_) {
      return applied_ != applied || was_degraded != !degraded_.ok() || dropped_;
    };
    state_mu_.AwaitWithDeadline(absl::Condition(&changed), deadline);
  }

  absl::Status degraded() const {
    absl::MutexLock lock(&state_mu_);
    return degraded_;
  }
  void SetDegraded(absl::Status status) {
    absl::MutexLock lock(&state_mu_);
    degraded_ = std::move(status);
  }

  // resume: the position of the snapshot a restart would load, -1 for none.
  int64_t resume() const {
    absl::MutexLock lock(&state_mu_);
    return resume_;
  }
  // ChangedSinceSnapshot: whether a snapshot would save anything new — there is none yet, or
  // changes were applied since the last one.
  bool ChangedSinceSnapshot() const {
    absl::MutexLock lock(&state_mu_);
    return resume_ < 0 || changes_applied.load() != changes_at_snapshot_;
  }
  // SnapshotSaved records a snapshot of `position`, taken when `changes` had been applied.
  void SnapshotSaved(int64_t position, int64_t changes) {
    absl::MutexLock lock(&state_mu_);
    resume_ = std::max(resume_, position);
    changes_at_snapshot_ = changes;
  }

  // MarkDropped wakes every waiter: the collection is gone from this replica.
  void MarkDropped() {
    absl::MutexLock lock(&state_mu_);
    dropped_ = true;
  }

  // Items applied by the follower since start, for the apply-rate metric.
  std::atomic<int64_t> changes_applied{0};

  // apply_mu: held by the one thread applying the feed; guards the cursor.
  absl::Mutex apply_mu;
  store::ChangeCursor& cursor() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu) { return cursor_; }

 private:
  const store::CollectionRecord record_;
  const absl::Status refused_;
  const bool holds_indexes_ = false;

  mutable absl::Mutex indexes_mu_;
  std::shared_ptr<CollectionIndexes> indexes_ ABSL_GUARDED_BY(indexes_mu_);

  store::ChangeCursor cursor_ ABSL_GUARDED_BY(apply_mu);

  mutable absl::Mutex state_mu_;
  int64_t applied_ ABSL_GUARDED_BY(state_mu_) = 0;
  int64_t resume_ ABSL_GUARDED_BY(state_mu_) = -1;
  int64_t changes_at_snapshot_ ABSL_GUARDED_BY(state_mu_) = 0;
  absl::Status degraded_ ABSL_GUARDED_BY(state_mu_);
  bool dropped_ ABSL_GUARDED_BY(state_mu_) = false;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_LIVE_COLLECTION_H_
