// engine.h — retrace's core API: captioning, collections, indexing and search, with no transport.
//
// The Engine owns the models, the item store and every collection's vector indexes. The store is
// the source of truth; at Open the indexes are rebuilt from it. server/ maps the gRPC API onto
// these methods one to one.
//
// Index pipeline per batch: validate each item → decode → caption the items without one →
// CLIP image embeddings → CLIP text embeddings of the captions → image-encoder (CS-SLIP)
// embeddings when the collection has one → one durable store write → add to the caption and
// image indexes. A bad item fails alone; the rest of the batch is stored.
// Search: CAPTION_MATCH (the Caption-Matching paper) scores the query's CLIP embedding (image
// tower for an image, text tower for a text, or a raw vector) against the captions' CLIP text
// embeddings. PROVENANCE (the CS-SLIP paper) takes N candidates from the image space and
// re-ranks them cross-modally (core/search/rerank.h); HYBRID fuses the two rankings
// (core/search/rank_fusion.h). See engine_search.cc.
//
// Thread-safety: every method is safe to call concurrently. Writes to one collection are
// serialised so its store and index agree; searches run in parallel with them.
//
//   RETRACE_ASSIGN_OR_RETURN(auto engine, Engine::Open(options, std::move(models), std::move(store), log));
//   RETRACE_ASSIGN_OR_RETURN(std::vector<SearchHit> hits, engine->Search("art", query));
#ifndef RETRACE_CORE_ENGINE_ENGINE_H_
#define RETRACE_CORE_ENGINE_ENGINE_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/engine/engine_types.h"
#include "core/engine/internal/batchers.h"
#include "core/engine/stage_observer.h"
#include "core/index/sharded_index.h"
#include "core/models/captioner.h"
#include "core/models/clip_model.h"
#include "core/models/image_encoder.h"
#include "core/store/item_store.h"
#include "spdlog/logger.h"

namespace retrace::engine {

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
  int inference_batch_size = 16;   // images or texts per model call; 1..1024
  // Index snapshots: written under snapshot_dir (empty: none; every start rebuilds from the
  // store) every snapshot_interval_seconds when a collection changed (<= 0: only on request).
  std::string snapshot_dir;
  int snapshot_interval_seconds = 300;
  // Told each stage's duration (stage_observer.h); not owned, may be null, must outlive the
  // engine.
  StageObserver* stage_observer = nullptr;
  BatchingOptions batching;
};

class Engine {
 public:
  // Open loads every collection from `store` and rebuilds its index. A collection whose models
  // differ from the server's is kept but refused (FAILED_PRECONDITION on use), never mixed.
  // INVALID_ARGUMENT for missing models or bad options; the store's error if it cannot be read.
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
  // ALREADY_EXISTS; RESOURCE_EXHAUSTED over max_collections.
  absl::StatusOr<CollectionInfo> CreateCollection(const CollectionSpec& spec);
  absl::StatusOr<CollectionInfo> DescribeCollection(const std::string& name);
  absl::StatusOr<std::vector<CollectionInfo>> ListCollections();
  absl::Status DropCollection(const std::string& name);

  // Index stores items, one result per item in order. An item whose id is stored with the same
  // content (image bytes, given caption, attributes) is acknowledged without any work; one with
  // other content replaces the stored item. The call fails as a whole only with
  // NOT_FOUND (collection), FAILED_PRECONDITION (collection built with other models) or
  // INVALID_ARGUMENT (item count).
  // Index work is bulk: it queues behind Search's interactive work for the models.
  absl::StatusOr<std::vector<ItemResult>> Index(const std::string& collection,
                                                std::vector<IndexItem> items,
                                                const CallOptions& call = {});

  // Search returns up to top_k hits, best first, and the Q_t re-ranking used.
  // INVALID_ARGUMENT naming the field for a bad query; NOT_FOUND; FAILED_PRECONDITION for a
  // collection built with other models.
  absl::StatusOr<SearchResult> Search(const std::string& collection, const SearchQuery& query,
                                      const CallOptions& call = {});

  // Get returns stored items, one result per id in order (OK or NOT_FOUND); embeddings only when
  // asked. The call fails as a whole for NOT_FOUND (collection) or INVALID_ARGUMENT (id count).
  absl::StatusOr<std::vector<GetResult>> Get(const std::string& collection,
                                             const std::vector<std::string>& ids,
                                             bool include_embeddings);

  // Delete removes items; per id OK or NOT_FOUND.
  absl::StatusOr<std::vector<ItemResult>> Delete(const std::string& collection,
                                                 const std::vector<std::string>& ids);

  // SnapshotAll writes a snapshot of every collection that changed since its last one, then lets
  // the store forget the deletions the snapshot includes. Returns the first error (the other
  // collections are still snapshotted). A no-op without snapshot_dir. The server calls it at a
  // clean shutdown; a timer calls it every snapshot_interval_seconds.
  absl::Status SnapshotAll();

  const EngineOptions& options() const { return options_; }

  // BatcherDepths: how many inputs wait in each batcher's lanes now (for metrics); empty when
  // batching is disabled.
  std::vector<internal::Batchers::Depth> BatcherDepths() const { return batchers_->Depths(); }

 private:
  struct Collection;
  Engine(EngineOptions options, ModelSet models, std::unique_ptr<store::ItemStore> store,
         std::shared_ptr<spdlog::logger> log);
  absl::Status LoadCollections();
  absl::StatusOr<std::shared_ptr<Collection>> Find(const std::string& name);
  absl::StatusOr<std::unique_ptr<Collection>> MakeCollection(store::CollectionRecord record);
  CollectionInfo Describe(const Collection& collection);
  // FindUnchanged returns, sorted, the candidates whose stored content hash equals theirs, and
  // puts each one's stored caption in its result.
  absl::StatusOr<std::vector<size_t>> FindUnchanged(const std::string& collection,
                                                    const std::vector<IndexItem>& items,
                                                    const std::vector<uint64_t>& hashes,
                                                    const std::vector<size_t>& candidates,
                                                    std::vector<ItemResult>& results);
  // engine_search.cc
  struct ProvenanceQuery;
  absl::StatusOr<std::vector<float>> CaptionMatchQuery(const Collection& collection,
                                                       const SearchQuery& query,
                                                       const internal::Call& call);
  absl::StatusOr<ProvenanceQuery> MakeProvenanceQuery(const Collection& collection,
                                                      const SearchQuery& query,
                                                      const internal::Call& call);
  absl::StatusOr<std::vector<index::IndexHit>> CaptionMatchRanking(const Collection& collection,
                                                                  const std::vector<float>& q,
                                                                  int depth,
                                                                  const internal::Call& call);
  absl::StatusOr<std::vector<SearchHit>> ProvenanceRanking(const Collection& collection,
                                                           const SearchQuery& query,
                                                           const ProvenanceQuery& pq,
                                                           const internal::Call& call);
  // Hydrate fills hits' captions and attributes from the store, except where hydrated[i];
  // drops hits deleted since the index was searched.
  absl::StatusOr<std::vector<SearchHit>> Hydrate(const std::string& collection,
                                                 std::vector<SearchHit> hits,
                                                 const std::vector<bool>& hydrated);

  // Timed runs `work`, reporting its duration as `stage` with `batch_size` items.
  template <typename Work>
  auto Timed(Stage stage, size_t batch_size, Work&& work) {
    ScopedStage timer(options_.stage_observer, stage, static_cast<int>(batch_size));
    return work();
  }

  const EngineOptions options_;
  const ModelSet models_;
  const std::unique_ptr<store::ItemStore> store_;
  const std::shared_ptr<spdlog::logger> log_;
  // The models' and indexes' batchers; after models_, so they stop first.
  const std::unique_ptr<internal::Batchers> batchers_;

  absl::Status Snapshot(Collection& collection);
  void RunSnapshotTimer();

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Collection>> collections_ ABSL_GUARDED_BY(mu_);

  absl::Mutex timer_mu_;
  bool stopping_ ABSL_GUARDED_BY(timer_mu_) = false;
  std::thread snapshot_timer_;  // runs RunSnapshotTimer when snapshots are periodic
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_ENGINE_H_
