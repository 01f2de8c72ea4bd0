// collection_registry.h — the collections this replica serves, kept in line with the store's.
//
// The store's collections table is the truth: Reconcile reads it and makes a LiveCollection for
// each collection it lacks (recovering its indexes from a snapshot or the items; a collection
// built with other models is kept but refused, never mixed), and drops those the store no longer
// has (or has again under a new creation: a drop and create elsewhere). So collections created
// or dropped through any replica appear or vanish on all, and a replica's creates and drops go
// through the store like anyone else's. position() is the store position the set reflects;
// a read with min_position waits for it (WaitPosition) before it decides a collection is absent.
//
// Thread-safety: safe for concurrent use. Reconciles take turns (one thread recovers a
// collection's indexes at a time); Find and All only take a short lock, so searches never wait
// for a reconcile or for the store.
//
//   RETRACE_ASSIGN_OR_RETURN(store::StoreState state, registry.Reconcile());
//   RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> c, registry.Find("art"));
#ifndef RETRACE_CORE_ENGINE_COLLECTION_REGISTRY_H_
#define RETRACE_CORE_ENGINE_COLLECTION_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/engine/live_collection.h"
#include "core/store/item_store.h"
#include "spdlog/logger.h"

namespace retrace::engine {

// ModelIdentities: what the server's models are, which a collection's record must match.
struct ModelIdentities {
  std::string clip;
  int clip_dim = 0;
  std::string captioner;
  std::string image_encoder;  // empty: none
};

class CollectionRegistry {
 public:
  // `store` and `log` are not owned and must outlive the registry. `snapshot_root` is where
  // snapshots live (empty: none).
  // `group`: the shards this process holds; `holds_indexes` false: none (a frontend, whose
  // collections are records only); `mmap_snapshots`: RecoverIndexes'.
  CollectionRegistry(ModelIdentities models, const store::ItemStore* store,
                     std::string snapshot_root, std::shared_ptr<spdlog::logger> log,
                     ShardGroup group = {}, bool holds_indexes = true,
                     bool mmap_snapshots = false);

  // Reconcile: see the banner. Returns the state it read (the caller follows the collections'
  // changes with it). The store's error when it cannot be read; a collection whose indexes
  // cannot be recovered is logged and tried again at the next Reconcile.
  absl::StatusOr<store::StoreState> Reconcile() ABSL_LOCKS_EXCLUDED(reconcile_mu_, map_mu_);

  // Find: NOT_FOUND "collection 'x' not found" if absent.
  absl::StatusOr<std::shared_ptr<LiveCollection>> Find(const std::string& name) const;
  std::vector<std::shared_ptr<LiveCollection>> All() const;
  size_t size() const;

  // position: the store position of the last Reconcile; WaitPosition waits until it reaches
  // `position` (true) or the deadline passes (false).
  int64_t position() const;
  bool WaitPosition(int64_t position, absl::Time deadline) const;

  // Remove drops a collection here at once (after this replica dropped it in the store), so the
  // caller's next call does not find it; Reconcile would drop it anyway.
  void Remove(const std::string& name, int64_t created_position);

 private:
  // Make builds a LiveCollection for `record`: refused for other models, else with its indexes
  // recovered.
  absl::StatusOr<std::shared_ptr<LiveCollection>> Make(const store::CollectionRecord& record);
  void Forget(const std::shared_ptr<LiveCollection>& collection);

  const ModelIdentities models_;
  const store::ItemStore* const store_;
  const std::string snapshot_root_;
  const std::shared_ptr<spdlog::logger> log_;
  const ShardGroup group_;
  const bool holds_indexes_;
  const bool mmap_snapshots_;

  absl::Mutex reconcile_mu_ ABSL_ACQUIRED_BEFORE(map_mu_);
  mutable absl::Mutex map_mu_;
  std::map<std::string, std::shared_ptr<LiveCollection>> collections_ ABSL_GUARDED_BY(map_mu_);
  int64_t position_ ABSL_GUARDED_BY(map_mu_) = 0;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_COLLECTION_REGISTRY_H_
