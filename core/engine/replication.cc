#include "core/engine/replication.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace retrace::engine {

Replicator::Replicator(CollectionRegistry* registry, store::ItemStore* store, Options options,
                       std::shared_ptr<spdlog::logger> log)
    : registry_(registry),
      store_(store),
      options_(std::move(options)),
      log_(std::move(log)),
      started_(absl::Now()) {}

Replicator::~Replicator() { Stop(); }

void Replicator::Start() {
  follow_thread_ = std::thread([this] { FollowLoop(); });
  if (!options_.snapshot_dir.empty() && options_.snapshot_interval_seconds > 0) {
    snapshot_thread_ = std::thread([this] { SnapshotLoop(); });
  }
}

void Replicator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (follow_thread_.joinable()) follow_thread_.join();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
}

bool Replicator::caught_up() const { return caught_up_.load(std::memory_order_relaxed); }

void Replicator::FollowLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    const absl::Duration wait = FollowOnce();
    // Wait for a change (a notification wakes it at once), in slices that notice Stop.
    const absl::Time until = absl::Now() + wait;
    const int64_t seen = last_position_.load(std::memory_order_relaxed);
    while (absl::Now() < until) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
      }
      auto changed = store_->WaitForChange(
          seen, std::min(until - absl::Now(), absl::Milliseconds(200)));
      if (changed.ok() && *changed > seen) break;
    }
  }
}

absl::Duration Replicator::FollowOnce() {
  const ReplicationOptions& r = options_.replication;
  absl::StatusOr<store::StoreState> state = registry_->Reconcile();
  if (!state.ok()) {
    if (reachable_.exchange(false)) {
      log_->error("the store ({}) cannot be read: {}; searches go on from the indexes and say "
                  "they may be stale; retrying",
                  store_->Describe(), state.status().ToString());
    }
    return r.retry_min * 5;
  }
  if (!reachable_.exchange(true)) log_->info("the store ({}) is back", store_->Describe());
  last_position_.store(state->last_position, std::memory_order_relaxed);

  std::map<std::pair<std::string, int64_t>, int64_t> last_change;
  for (const store::CollectionRecord& c : state->collections) {
    last_change[{c.name, c.created_position}] = c.last_change_position;
  }
  const absl::Time now = absl::Now();
  absl::Duration wait = r.poll_interval;
  bool caught_up = true;
  for (const std::shared_ptr<LiveCollection>& c : registry_->All()) {
    if (!c->holds_indexes()) continue;
    const auto key = std::make_pair(c->name(), c->record().created_position);
    auto changed = last_change.find(key);
    if (changed == last_change.end()) continue;  // dropped since the reconcile
    if (c->degraded().ok() && changed->second <= c->applied()) {
      // Nothing of this collection between what it applied and the store's last position.
      c->Advance(state->last_position);
    } else {
      Retry& retry = retries_[key];
      if (!c->degraded().ok() && now < retry.next) {
        wait = std::min(wait, retry.next - now);
        caught_up = false;
        continue;
      }
      const int64_t from = c->applied();
      const int64_t changes_before = c->changes_applied.load();
      const absl::Time start = absl::Now();
      absl::Status status = CatchUp(*c, *store_, options_.follow);
      if (status.ok() && announced_.insert(key).second) {
        // The first catch-up after a collection is loaded: what its start had to replay.
        log_->info("collection '{}': caught up from position {} to {}: {} changes applied in "
                   "{:.2f} s",
                   c->name(), from, c->applied(), c->changes_applied.load() - changes_before,
                   absl::ToDoubleSeconds(absl::Now() - start));
      }
      if (status.ok()) {
        retries_.erase(key);
      } else if (status.code() != absl::StatusCode::kAborted &&
                 status.code() != absl::StatusCode::kNotFound) {
        retry.backoff = std::clamp(retry.backoff * 2, r.retry_min, r.retry_max);
        retry.next = absl::Now() + retry.backoff;
        wait = std::min(wait, retry.backoff);
      }
    }
    if (state->last_position - c->applied() > r.ready_max_lag) caught_up = false;
  }
  caught_up_.store(caught_up, std::memory_order_relaxed);
  // Report at each heartbeat, and at once when the set of collections changed (so `cluster
  // status` and the compaction bound know a new collection's position from the start).
  std::set<std::pair<std::string, int64_t>> collections;
  for (const auto& [key, position] : last_change) collections.insert(key);
  if (now >= next_report_ || collections != reported_collections_) {
    reported_collections_ = std::move(collections);
    next_report_ = now + r.heartbeat_interval;
    if (absl::Status s = ReportNow(); !s.ok()) {
      log_->warn("cannot record this replica's positions in the store: {}", s.ToString());
    }
  }
  return std::max(wait, absl::Milliseconds(1));
}

absl::Status Replicator::ReportNow() {
  store::ReplicaRecord record;
  record.replica = options_.replication.replica_id;
  record.address = options_.replication.address;
  record.started = started_;
  for (const std::shared_ptr<LiveCollection>& c : registry_->All()) {
    if (!c->holds_indexes()) continue;
    record.positions.push_back(
        {c->name(), c->record().created_position, c->applied(), c->resume()});
  }
  return store_->ReportReplica(record);
}

void Replicator::SnapshotLoop() {
  const absl::Duration interval = absl::Seconds(options_.snapshot_interval_seconds);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), interval)) return;
    }
    if (absl::Status s = SnapshotAll(); !s.ok()) log_->error("periodic snapshot: {}", s.ToString());
  }
}

absl::Status Replicator::SnapshotAll() {
  if (options_.snapshot_dir.empty()) return absl::OkStatus();
  absl::MutexLock turn(&snapshot_mu_);
  absl::Status first;
  std::vector<std::shared_ptr<LiveCollection>> saved;
  for (const std::shared_ptr<LiveCollection>& c : registry_->All()) {
    if (!c->holds_indexes()) continue;
    // Everything up to `applied` is in the indexes; later changes may be too (harmless: a
    // restart applies them again).
    if (!c->ChangedSinceSnapshot()) continue;
    const int64_t changes = c->changes_applied.load();
    const int64_t applied = c->applied();
    const absl::Time start = absl::Now();
    std::shared_ptr<CollectionIndexes> indexes = c->Indexes();
    absl::Status s = SaveSnapshots(*indexes, c->record(), applied, options_.snapshot_dir);
    if (!s.ok()) {
      log_->error("collection '{}': snapshot failed: {}", c->name(), s.ToString());
      if (first.ok()) first = s;
      continue;
    }
    c->SnapshotSaved(applied, changes);
    saved.push_back(c);
    log_->info("collection '{}': snapshot at position {} ({} items) in {:.2f} s", c->name(),
               applied, indexes->items->size(), absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (saved.empty()) return first;
  // Others must know where this replica would resume before deletions are forgotten.
  if (absl::Status s = ReportNow(); !s.ok()) return first.ok() ? s : first;
  absl::StatusOr<std::vector<store::ReplicaRecord>> replicas = store_->ListReplicas();
  if (!replicas.ok()) return first.ok() ? replicas.status() : first;
  const absl::Time live_since = absl::Now() - options_.replication.replica_expiry;
  for (const std::shared_ptr<LiveCollection>& c : saved) {
    int64_t bound = c->resume();
    for (const store::ReplicaRecord& replica : *replicas) {
      if (replica.heartbeat < live_since) continue;
      for (const store::ReplicaCollectionPosition& p : replica.positions) {
        if (p.collection != c->name() || p.created_position != c->record().created_position) {
          continue;
        }
        bound = std::min(bound, p.resume >= 0 ? p.resume : p.applied);
      }
    }
    absl::Status s = store_->CompactDeletions(c->name(), bound);
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
      log_->warn("collection '{}': compacting deletions up to {}: {}", c->name(), bound,
                 s.ToString());
    }
  }
  return first;
}

}  // namespace retrace::engine
