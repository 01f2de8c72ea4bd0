// replication.h — the background work that keeps a replica's indexes following the store:
// one thread that wakes on each store change (or every poll interval) to reconcile the
// collections, catch up every collection that changed, retry degraded ones with backoff, and
// report this replica's positions and heartbeat; and one that writes snapshots and compacts
// deletions.
//
// Compaction: a collection's recorded deletions are forgotten only at or below the lowest
// position any live replica (heartbeat within replica_expiry) would resume from — its snapshot's
// position, or, without one, its applied position — and never above this replica's own
// snapshot. A replica that has been away longer than the expiry may find deletions gone; it
// rebuilds from the items (follower.h), slower but never wrong.
//
// Store reachability: when the store cannot be read, searches go on from the indexes and say
// they may be stale (Engine's SearchResult.stale); the loop keeps trying.
//
// Thread-safety: safe for concurrent use; Stop (or the destructor) joins the threads.
//
//   Replicator replicator(&registry, store, options, log);  replicator.Start();
//   replicator.Poke();  // a write through this replica: catch up now
#ifndef RETRACE_CORE_ENGINE_REPLICATION_H_
#define RETRACE_CORE_ENGINE_REPLICATION_H_

#include <atomic>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/engine/collection_registry.h"
#include "core/engine/engine_types.h"
#include "core/engine/follower.h"
#include "core/store/item_store.h"
#include "spdlog/logger.h"

namespace retrace::engine {

class Replicator {
 public:
  struct Options {
    ReplicationOptions replication;
    FollowOptions follow;
    std::string snapshot_dir;           // empty: no snapshots
    int snapshot_interval_seconds = 0;  // <= 0: only on request (SnapshotAll)
  };

  // Not owned; must outlive the replicator.
  Replicator(CollectionRegistry* registry, store::ItemStore* store, Options options,
             std::shared_ptr<spdlog::logger> log);
  ~Replicator();  // Stop()
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;

  // Start runs the follow loop (and the snapshot timer when periodic).
  void Start();
  void Stop();

  // Poke wakes the follow loop at once (nothing else to do: CatchUp is safe to call anywhere).
  void Poke();

  // SnapshotAll snapshots every collection that changed since its last snapshot, then compacts
  // deletions as the banner says. Returns the first error (the others are still tried). A no-op
  // without a snapshot directory.
  absl::Status SnapshotAll();

  // ReportNow records this replica's positions in the store now (the loop also does it every
  // heartbeat interval).
  absl::Status ReportNow();

  // store_reachable: the last read of the store succeeded. last_position: the store's last
  // position as of that read.
  bool store_reachable() const { return reachable_.load(std::memory_order_relaxed); }
  int64_t last_position() const { return last_position_.load(std::memory_order_relaxed); }
  // caught_up: every collection this replica serves is within ready_max_lag of the store's last
  // position, as of the last reconcile (what readiness waits for at start).
  bool caught_up() const;

  const Options& options() const { return options_; }

 private:
  void FollowLoop();
  void SnapshotLoop();
  // FollowOnce reconciles and catches up every collection; returns how long to wait before the
  // next round at the latest (sooner when a degraded collection's retry is due).
  absl::Duration FollowOnce();

  CollectionRegistry* const registry_;
  store::ItemStore* const store_;
  const Options options_;
  const std::shared_ptr<spdlog::logger> log_;
  const absl::Time started_;

  std::atomic<bool> reachable_{true};
  std::atomic<int64_t> last_position_{0};
  std::atomic<bool> caught_up_{false};

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool poked_ ABSL_GUARDED_BY(mu_) = false;
  // Per collection (by name and creation): when a degraded one may be retried, and the backoff.
  struct Retry {
    absl::Time next = absl::InfinitePast();
    absl::Duration backoff = absl::ZeroDuration();
  };
  std::map<std::pair<std::string, int64_t>, Retry> retries_;  // FollowLoop's thread only
  absl::Time next_report_ = absl::InfinitePast();              // FollowLoop's thread only
  std::set<std::pair<std::string, int64_t>> announced_;        // FollowLoop's thread only
  std::set<std::pair<std::string, int64_t>> reported_collections_;  // FollowLoop's only

  absl::Mutex snapshot_mu_;  // SnapshotAll calls take turns
  std::thread follow_thread_;
  std::thread snapshot_thread_;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_REPLICATION_H_
