#include "core/engine/collection_registry.h"

#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace retrace::engine {
namespace {

absl::Status Incompatible(const store::CollectionRecord& r, const ModelIdentities& m) {
  if (r.clip_model != m.clip || r.caption_dim != m.clip_dim) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection '", r.name, "' was built with CLIP model '", r.clip_model, "' (dimension ",
        r.caption_dim, ") but this server runs '", m.clip, "' (dimension ", m.clip_dim,
        "); start the server with that collection's models, or index into a new collection"));
  }
  if (r.image_encoder_model != m.image_encoder) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection '", r.name, "' was built with image encoder '",
        r.image_encoder_model.empty() ? "(none)" : r.image_encoder_model,
        "' but this server runs '", m.image_encoder.empty() ? "(none)" : m.image_encoder,
        "'; start the server with that collection's models, or index into a new collection"));
  }
  return absl::OkStatus();
}

}  // namespace

CollectionRegistry::CollectionRegistry(ModelIdentities models, const store::ItemStore* store,
                                       std::string snapshot_root,
                                       std::shared_ptr<spdlog::logger> log, ShardGroup group,
                                       bool holds_indexes, bool mmap_snapshots)
    : models_(std::move(models)),
      store_(store),
      snapshot_root_(std::move(snapshot_root)),
      log_(std::move(log)),
      group_(group),
      holds_indexes_(holds_indexes),
      mmap_snapshots_(mmap_snapshots) {}

absl::StatusOr<std::shared_ptr<LiveCollection>> CollectionRegistry::Make(
    const store::CollectionRecord& record) {
  if (absl::Status refused = Incompatible(record, models_); !refused.ok()) {
    log_->error("{}", refused.ToString());
    return std::make_shared<LiveCollection>(record, std::move(refused));
  }
  if (record.captioner_model != models_.captioner) {
    // Captions are text: a different captioner does not make embeddings incomparable, but the
    // collection then mixes caption styles. Worth a warning, not a refusal.
    log_->warn("collection '{}' was captioned by '{}'; new items will be captioned by '{}'",
               record.name, record.captioner_model, models_.captioner);
  }
  if (!holds_indexes_) return std::make_shared<LiveCollection>(record);
  RETRACE_ASSIGN_OR_RETURN(RecoveredIndexes recovered,
                           RecoverIndexes(*store_, record, snapshot_root_, group_, mmap_snapshots_));
  log_->info("collection '{}': {}", record.name, recovered.how);
  return std::make_shared<LiveCollection>(record, std::move(recovered));
}

void CollectionRegistry::Forget(const std::shared_ptr<LiveCollection>& collection) {
  collection->MarkDropped();
  if (!snapshot_root_.empty()) {
    // A leftover would be recognised as stale anyway (its tag is the old creation's position).
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(snapshot_root_) / collection->name(), ec);
  }
  log_->info("collection '{}' (created at position {}) dropped", collection->name(),
             collection->record().created_position);
}

absl::StatusOr<store::StoreState> CollectionRegistry::Reconcile() {
  absl::MutexLock reconcile(&reconcile_mu_);
  RETRACE_ASSIGN_OR_RETURN(store::StoreState state, store_->ReadState());
  std::map<std::string, const store::CollectionRecord*> wanted;
  for (const store::CollectionRecord& record : state.collections) wanted[record.name] = &record;

  // Drops first: a name dropped and created again is a new collection.
  std::vector<std::shared_ptr<LiveCollection>> dropped;
  std::vector<const store::CollectionRecord*> missing;
  {
    absl::MutexLock lock(&map_mu_);
    for (auto it = collections_.begin(); it != collections_.end();) {
      auto want = wanted.find(it->first);
      if (want == wanted.end() ||
          want->second->created_position != it->second->record().created_position) {
        dropped.push_back(it->second);
        it = collections_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [name, record] : wanted) {
      if (collections_.count(name) == 0) missing.push_back(record);
    }
  }
  for (const auto& collection : dropped) Forget(collection);

  bool complete = true;
  for (const store::CollectionRecord* record : missing) {
    // Recovering indexes can take a while: no lock is held meanwhile.
    absl::StatusOr<std::shared_ptr<LiveCollection>> made = Make(*record);
    if (!made.ok()) {
      log_->error("collection '{}': cannot load its indexes (tried again later): {}",
                  record->name, made.status().ToString());
      complete = false;
      continue;
    }
    absl::MutexLock lock(&map_mu_);
    collections_[record->name] = std::move(*made);
  }
  if (complete) {
    absl::MutexLock lock(&map_mu_);
    position_ = std::max(position_, state.last_position);
  }
  return state;
}

absl::StatusOr<std::shared_ptr<LiveCollection>> CollectionRegistry::Find(
    const std::string& name) const {
  absl::MutexLock lock(&map_mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) {
    return absl::NotFoundError(absl::StrCat("collection '", name, "' not found"));
  }
  return it->second;
}

std::vector<std::shared_ptr<LiveCollection>> CollectionRegistry::All() const {
  absl::MutexLock lock(&map_mu_);
  std::vector<std::shared_ptr<LiveCollection>> all;
  all.reserve(collections_.size());
  for (const auto& [name, collection] : collections_) all.push_back(collection);
  return all;
}

size_t CollectionRegistry::size() const {
  absl::MutexLock lock(&map_mu_);
  return collections_.size();
}

int64_t CollectionRegistry::position() const {
  absl::MutexLock lock(&map_mu_);
  return position_;
}

bool CollectionRegistry::WaitPosition(int64_t position, absl::Time deadline) const {
  absl::MutexLock lock(&map_mu_);
  auto reached = [this, position]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(map_mu_) {
    return position_ >= position;
  };
  map_mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
  return position_ >= position;
}

void CollectionRegistry::Remove(const std::string& name, int64_t created_position) {
  std::shared_ptr<LiveCollection> removed;
  {
    absl::MutexLock lock(&map_mu_);
    auto it = collections_.find(name);
    if (it == collections_.end() || it->second->record().created_position != created_position) {
      return;
    }
    removed = std::move(it->second);
    collections_.erase(it);
  }
  Forget(removed);
}

}  // namespace retrace::engine
