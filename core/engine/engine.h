// engine.h — retrace's core API: captioning, collections, indexing and search, with no transport.
//
// The Engine owns the models, the item store and this replica's view of it. The store is the
// one log of changes (ARCHITECTURE.md, "The store is the log"): a write — Index, Delete, a
// collection's creation or drop — commits to the store and nothing else, and every index is a
// follower of the store's change feed (follower.h). A write is acknowledged once it is committed
// and this replica's follower has applied it (read your writes here); its answer carries the
// commit's store position, which a read on any replica may ask for (CallOptions.min_position).
// Several processes may share one store (PostgreSQL): each is a replica that serves every RPC.
//
// The parts, each in its own file with its own contract: the collection registry
// (collection_registry.h), the ingest path (ingest.h), the search path (search.h), the follower
// (follower.h) and the replication loop with snapshot scheduling (replication.h). server/ maps
// the gRPC API onto the methods here one to one.
//
// Thread-safety: every method is safe to call concurrently. No engine-wide lock is held across
// a store write or a model call.
//
//   RETRACE_ASSIGN_OR_RETURN(auto engine, Engine::Open(options, std::move(models), std::move(store), log));
//   RETRACE_ASSIGN_OR_RETURN(SearchResult result, engine->Search("art", query));
#ifndef RETRACE_CORE_ENGINE_ENGINE_H_
#define RETRACE_CORE_ENGINE_ENGINE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/engine_types.h"
#include "core/engine/follower.h"
#include "core/engine/space_search.h"
#include "core/engine/stage_observer.h"
#include "core/models/captioner.h"
#include "core/models/clip_model.h"
#include "core/models/image_encoder.h"
#include "core/store/item_store.h"
#include "spdlog/logger.h"

namespace retrace::engine {

class Batchers;
class CollectionRegistry;
class Ingest;
class LiveCollection;
class Replicator;
class Searcher;

// ModelSet: the models an Engine runs. CLIP and the captioner are required; without an image
// encoder, new collections' image space is CLIP's image embedding alone.
struct ModelSet {
  std::unique_ptr<models::ClipModel> clip;
  std::unique_ptr<models::Captioner> captioner;
  std::unique_ptr<models::ImageEncoder> image_encoder;  // optional
};

struct EngineOptions {
  EngineLimits limits;
  // Decoding for Index-time captions. Caption() takes its own options (the server fills a
  // request's unset fields from these); their max_new_tokens = 0 falls back to this one's.
  models::CaptionOptions caption;
  int inference_batch_size = defaults::kInferenceBatchSize;  // per model call; 1..1024
  // Index snapshots: written under snapshot_dir (empty: none; every start builds the indexes
  // from the store's items) every snapshot_interval_seconds when a collection changed (<= 0:
  // only on request).
  std::string snapshot_dir;
  int snapshot_interval_seconds = defaults::kSnapshotIntervalSeconds;
  // Snapshots of trained IVF indexes load with their lists memory-mapped
  // (index::IndexOptions::mmap_snapshots).
  bool mmap_snapshots = false;
  ReplicationOptions replication;
  // Told each stage's duration (stage_observer.h); not owned, may be null, must outlive the
  // engine.
  StageObserver* stage_observer = nullptr;
  BatchingOptions batching;
  // Tests only: called before the follower applies each page of changes (follower.h).
  ApplyFaultHook apply_fault_hook;
  // Sharded cluster (ARCHITECTURE.md, "Cluster"). A shard server holds only `shard_group`'s
  // shards of each collection. A frontend sets `remote_spaces` (the shard servers): it holds no
  // index, searches through them, and acknowledges writes once committed (a read that must see
  // a write passes its position as min_position, which the shard servers honour).
  ShardGroup shard_group;
  std::shared_ptr<SpaceSearcher> remote_spaces;
};

// ReplicationMetrics: how one collection follows the store here (for /metrics).
struct CollectionReplication {
  std::string collection;
  int64_t applied_position = 0;
  int64_t lag = 0;
  int64_t changes_applied = 0;  // since start
  bool degraded = false;
};

class Engine {
 public:
  // Open loads every collection from `store` (snapshot + feed, or the items) and starts
  // following it. A collection whose models differ from the server's is kept but refused
  // (FAILED_PRECONDITION on use), never mixed. INVALID_ARGUMENT for missing models or bad
  // options; the store's error if it cannot be read.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(EngineOptions options, ModelSet models,
                                                      std::unique_ptr<store::ItemStore> store,
                                                      std::shared_ptr<spdlog::logger> log);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Caption captions each image. The call fails (INVALID_ARGUMENT) only for a bad image count or
  // options; a bad image fails its own result.
  absl::StatusOr<std::vector<CaptionResult>> Caption(const std::vector<std::string>& images,
                                                     const models::CaptionOptions& options,
                                                     const CallOptions& call = {});

  // CreateCollection: INVALID_ARGUMENT for a bad name, shard count or index spec;
  // ALREADY_EXISTS; RESOURCE_EXHAUSTED over max_collections; the store's error (UNAVAILABLE when
  // unreachable). On return the collection is served here (and soon on every replica).
  absl::StatusOr<CollectionInfo> CreateCollection(const CollectionSpec& spec);
  absl::StatusOr<CollectionInfo> DescribeCollection(const std::string& name,
                                                    const CallOptions& call = {});
  absl::StatusOr<std::vector<CollectionInfo>> ListCollections(const CallOptions& call = {});
  // DropCollection: NOT_FOUND; the store's error. Returns the drop's position.
  absl::StatusOr<int64_t> DropCollection(const std::string& name);

  // Index stores items, one result per item in order. An item whose id is stored with the same
  // content (image bytes, given caption, attributes) is acknowledged without any work; one with
  // other content replaces the stored item. An item is OK once committed and applied here; when
  // this replica cannot apply it within ReplicationOptions.ack_timeout it is UNAVAILABLE (it is
  // stored and stays pending; a retry answers once it is applied). The call fails as a whole
  // only with NOT_FOUND (collection), FAILED_PRECONDITION (collection built with other models),
  // INVALID_ARGUMENT (item count) or UNAVAILABLE (the store cannot be reached; nothing written).
  // Index work is bulk: it queues behind Search's interactive work for the models.
  // With `near_duplicate`, each new or changed item is first checked against the collection's
  // image space and the request's earlier items (see NearDuplicateCheck; INVALID_ARGUMENT naming
  // near_duplicate.threshold out of range).
  absl::StatusOr<WriteResult> Index(const std::string& collection, std::vector<IndexItem> items,
                                    const CallOptions& call = {},
                                    std::optional<NearDuplicateCheck> near_duplicate = {});

  // Delete removes items; per id OK (deleted and applied here), NOT_FOUND (also an item outside
  // the call's scope, which is left alone) or UNAVAILABLE (as Index).
  absl::StatusOr<WriteResult> Delete(const std::string& collection,
                                     const std::vector<std::string>& ids,
                                     const CallOptions& call = {});

  // DeleteMatching deletes every stored item that satisfies `filter` (or, `dry_run`, only counts
  // them), reading the store in id order and deleting max_items_per_call ids per store write,
  // each applied here before the next. Not atomic: on an error (the store's, DEADLINE_EXCEEDED
  // at the call's deadline, UNAVAILABLE when this replica does not apply a batch in time) the
  // batches before it stay deleted and the message counts them; the same call again deletes the
  // rest. INVALID_ARGUMENT naming the filter's field; NOT_FOUND (collection).
  absl::StatusOr<FilterDeleteResult> DeleteMatching(const std::string& collection,
                                                    const filter::Filter& filter, bool dry_run,
                                                    const CallOptions& call = {});

  // Search returns up to top_k hits, best first, and the Q_t re-ranking used. A kItem query
  // reads its item from the store (as Get does; UNAVAILABLE when the store is unreachable) and
  // runs no model; an id Get does not find is INVALID_ARGUMENT naming query.item_id.
  // INVALID_ARGUMENT naming the field for a bad query; NOT_FOUND; FAILED_PRECONDITION for a
  // collection built with other models; DEADLINE_EXCEEDED when min_position is not applied here
  // by the deadline. Served from this replica's memory: it goes on when the store is down
  // (SearchResult.stale says so).
  absl::StatusOr<SearchResult> Search(const std::string& collection, const SearchQuery& query,
                                      const CallOptions& call = {});

  // SearchSpaces: a shard server's answer to a frontend (LocalSpaces over this process's
  // indexes, after waiting for call.min_position). NOT_FOUND; FAILED_PRECONDITION (refused, or
  // this process holds no indexes); DEADLINE_EXCEEDED as Search; INVALID_ARGUMENT naming
  // queries[i] for a vector of the wrong dimension or a k out of range.
  absl::StatusOr<SpaceResult> SearchSpaces(const std::string& collection,
                                           const std::vector<SpaceQuery>& queries,
                                           const std::optional<filter::Filter>& filter,
                                           const CallOptions& call = {});

  // Get returns stored items, one result per id in order (OK or NOT_FOUND, also for an item
  // outside the call's scope); embeddings and
  // thumbnails only when `fields` asks. Reads the store. The call fails as a whole for
  // NOT_FOUND (collection), INVALID_ARGUMENT (id count) or the store's error.
  absl::StatusOr<std::vector<GetResult>> Get(const std::string& collection,
                                             const std::vector<std::string>& ids,
                                             GetFields fields, const CallOptions& call = {});

  // List returns a page of a collection's stored items in id order (bytewise), after `cursor`
  // (empty: from the first; else a ListPage.next_cursor, which is opaque), at most `page_size`
  // (0: defaults::kListPageSize; 1..kMaxListPageSize) of them; embeddings and thumbnails when
  // `fields` asks. Paging to the end gives every item that exists throughout exactly once,
  // whatever is written meanwhile. Reads the store. With `filter` (and the call's scope, ANDed),
  // only items that satisfy it: a call reads at most max(kListFilterScanPages x page_size,
  // kListFilterMinScan) stored items, so a page may hold fewer than page_size (even none) and
  // still have a next_cursor; only an empty next_cursor marks the end.
  // INVALID_ARGUMENT naming page_size, cursor or the filter's field; NOT_FOUND (collection).
  absl::StatusOr<ListPage> List(const std::string& collection, const std::string& cursor,
                                int page_size, GetFields fields,
                                const std::optional<filter::Filter>& filter = std::nullopt,
                                const CallOptions& call = {});

  // SnapshotAll writes a snapshot of every collection that changed since its last one, then
  // compacts the deletions no live replica needs. Returns the first error (the others are still
  // snapshotted). A no-op without snapshot_dir. The server calls it at a clean shutdown; a timer
  // calls it every snapshot_interval_seconds.
  absl::Status SnapshotAll();

  // Ready: every collection is loaded and within ReplicationOptions.ready_max_lag of the store
  // (the server reports NOT_SERVING until then).
  bool Ready() const;
  // StoreReachable: the last read of the store succeeded.
  bool StoreReachable() const;
  // Cluster: the replicas that follow this store, as they last reported. The store's error.
  absl::StatusOr<ClusterStatus> Cluster() const;
  // Replication: how each collection follows the store here.
  std::vector<CollectionReplication> Replication() const;

  const EngineOptions& options() const { return options_; }
  // BatcherDepths: how many inputs wait in each batcher's lanes now; empty when batching is off.
  std::vector<BatcherDepth> BatcherDepths() const;

 private:
  Engine(EngineOptions options, ModelSet models, std::unique_ptr<store::ItemStore> store,
         std::shared_ptr<spdlog::logger> log);
  // Describe: the collection's info; item_count counts only the items passing `scope` (null:
  // all).
  CollectionInfo Describe(const LiveCollection& collection, const filter::Filter* scope) const;
  // Find waits for the registry to reach call.min_position (so a collection created through
  // another replica is found), then finds the collection and, for reads, waits for its indexes.
  absl::StatusOr<std::shared_ptr<LiveCollection>> Find(const std::string& name,
                                                       const CallOptions& call) const;

  const EngineOptions options_;
  const ModelSet models_;
  const std::unique_ptr<store::ItemStore> store_;
  const std::shared_ptr<spdlog::logger> log_;
  // Declared in the order they are built; destroyed in reverse (the replicator stops first).
  std::unique_ptr<Batchers> batchers_;
  std::unique_ptr<LocalSpaces> local_spaces_;
  SpaceSearcher* spaces_ = nullptr;  // local_spaces_, or a frontend's remote_spaces
  std::unique_ptr<CollectionRegistry> registry_;
  std::unique_ptr<Ingest> ingest_;
  std::unique_ptr<Searcher> searcher_;
  std::unique_ptr<Replicator> replicator_;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_ENGINE_H_
