#include "core/engine/engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "core/common/status_macros.h"
#include "core/engine/batchers.h"
#include "core/engine/collection_registry.h"
#include "core/engine/ingest.h"
#include "core/engine/internal/item_record.h"
#include "core/engine/internal/prefixed.h"
#include "core/engine/live_collection.h"
#include "core/engine/replication.h"
#include "core/engine/search.h"
#include "core/engine/validation.h"
#include "core/filter/scope.h"
#include "core/image/decode.h"

namespace retrace::engine {

using internal::Prefixed;

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(EngineOptions options, ModelSet models,
                                                     std::unique_ptr<store::ItemStore> store,
                                                     std::shared_ptr<spdlog::logger> log) {
  if (models.clip == nullptr || models.captioner == nullptr) {
    return absl::InvalidArgumentError("engine: a CLIP model and a captioner are required");
  }
  if (store == nullptr || log == nullptr) {
    return absl::InvalidArgumentError("engine: a store and a logger are required");
  }
  if (options.inference_batch_size < 1 || options.inference_batch_size > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("inference_batch_size ",
                                                   options.inference_batch_size,
                                                   " is not in 1..1024"));
  }
  if (absl::Status s = models.captioner->ValidateOptions(options.caption); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("engine: caption defaults: ", s.message()));
  }
  if (options.replication.replica_id.empty()) {
    return absl::InvalidArgumentError("engine: replication.replica_id is required");
  }
  std::unique_ptr<Engine> engine(
      new Engine(std::move(options), std::move(models), std::move(store), std::move(log)));
  // Every collection the store holds, loaded before the first call (the server says
  // NOT_SERVING meanwhile); the replicator then catches each up with the feed.
  RETRACE_RETURN_IF_ERROR(engine->registry_->Reconcile().status());
  engine->replicator_->Start();
  return engine;
}

Engine::Engine(EngineOptions options, ModelSet models, std::unique_ptr<store::ItemStore> store,
               std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options)),
      models_(std::move(models)),
      store_(std::move(store)),
      log_(std::move(log)) {
  batchers_ = std::make_unique<Batchers>(models_.clip.get(), models_.captioner.get(),
                                         models_.image_encoder.get(), options_.batching,
                                         options_.stage_observer);
  ModelIdentities identities;
  identities.clip = models_.clip->manifest().Identity();
  identities.clip_dim = models_.clip->dim();
  identities.captioner = models_.captioner->manifest().Identity();
  if (models_.image_encoder != nullptr) {
    identities.image_encoder = models_.image_encoder->manifest().Identity();
  }
  local_spaces_ = std::make_unique<LocalSpaces>(batchers_.get(), store_.get());
  const bool frontend = options_.remote_spaces != nullptr;
  spaces_ = frontend ? options_.remote_spaces.get() : local_spaces_.get();
  registry_ = std::make_unique<CollectionRegistry>(std::move(identities), store_.get(),
                                                   options_.snapshot_dir, log_,
                                                   options_.shard_group, !frontend,
                                                   options_.mmap_snapshots);
  FollowOptions follow;
  follow.page_size = options_.replication.change_page;
  follow.fault_hook = options_.apply_fault_hook;
  follow.log = log_.get();

  Ingest::Options ingest;
  ingest.limits = options_.limits;
  ingest.caption = options_.caption;
  ingest.inference_batch_size = options_.inference_batch_size;
  ingest.ack_timeout = options_.replication.ack_timeout;
  ingest.retry_min = options_.replication.retry_min;
  ingest.follow = follow;
  ingest.stage_observer = options_.stage_observer;
  ingest_ = std::make_unique<Ingest>(std::move(ingest), batchers_.get(), spaces_, store_.get());

  Searcher::Options search;
  search.limits = options_.limits;
  search.caption = options_.caption;
  search.stage_observer = options_.stage_observer;
  searcher_ = std::make_unique<Searcher>(std::move(search), batchers_.get(), spaces_,
                                         store_.get());

  Replicator::Options replication;
  replication.replication = options_.replication;
  replication.follow = follow;
  replication.snapshot_dir = options_.snapshot_dir;
  replication.snapshot_interval_seconds = options_.snapshot_interval_seconds;
  replicator_ = std::make_unique<Replicator>(registry_.get(), store_.get(),
                                             std::move(replication), log_);
}

Engine::~Engine() {
  // The replicator's threads use the registry and the store: stop them first.
  if (replicator_ != nullptr) replicator_->Stop();
}

absl::StatusOr<std::shared_ptr<LiveCollection>> Engine::Find(const std::string& name,
                                                             const CallOptions& call) const {
  if (call.min_position < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_position: ", call.min_position, " is negative"));
  }
  auto late = [&](int64_t applied) {
    return absl::DeadlineExceededError(absl::StrCat(
        "min_position ", call.min_position, " is not applied on this replica by the deadline (it "
        "has applied up to ", applied, "); retry later, or on another replica"));
  };
  // A collection created at or before min_position must be found.
  if (call.min_position > 0 && !registry_->WaitPosition(call.min_position, call.deadline)) {
    return late(registry_->position());
  }
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection, registry_->Find(name));
  RETRACE_RETURN_IF_ERROR(collection->refused());
  // A frontend holds no index to wait for: the shard servers wait for min_position.
  if (call.min_position > 0 && collection->holds_indexes() &&
      !collection->WaitApplied(call.min_position, call.deadline)) {
    return late(collection->applied());
  }
  return collection;
}

CollectionInfo Engine::Describe(const LiveCollection& collection,
                                const filter::Filter* scope) const {
  const store::CollectionRecord& r = collection.record();
  CollectionInfo info;
  info.spec = {r.name, r.shards, r.caption_index, r.image_index, r.thumbnail_side};
  info.caption_dim = r.caption_dim;
  info.clip_model = r.clip_model;
  info.captioner_model = r.captioner_model;
  info.image_dim = r.image_dim;
  info.image_encoder_model = r.image_encoder_model;
  info.created_position = r.created_position;
  if (collection.holds_indexes()) {
    const std::shared_ptr<CollectionIndexes> indexes = collection.Indexes();
    // A scoped caller counts its own items only (the item table's match, as a search sees).
    info.item_count = static_cast<int64_t>(
        scope == nullptr ? indexes->items->size() : indexes->items->Match(*scope).ids.size());
    info.applied_position = collection.applied();
    info.lag = std::max<int64_t>(0, replicator_->last_position() - info.applied_position);
    info.degraded = collection.degraded();
  } else if (scope == nullptr) {
    // A refused collection (or a frontend's) has no item table; a scoped caller is told 0
    // rather than everyone's.
    info.item_count = store_->CountItems(r.name).value_or(0);
  }
  return info;
}

absl::StatusOr<std::vector<CaptionResult>> Engine::Caption(const std::vector<std::string>& images,
                                                          const models::CaptionOptions& options,
                                                          const CallOptions& call_options) {
  const ModelCall call{batching::Lane::kInteractive, call_options.deadline};
  RETRACE_RETURN_IF_ERROR(ValidateItemCount(images.size(), "images", options_.limits));
  models::CaptionOptions effective = options;
  if (effective.max_new_tokens == 0) effective.max_new_tokens = options_.caption.max_new_tokens;
  RETRACE_RETURN_IF_ERROR(models_.captioner->ValidateOptions(effective));

  std::vector<CaptionResult> results(images.size());
  std::vector<image::Image> decoded(images.size());
  std::vector<size_t> good;
  for (size_t i = 0; i < images.size(); ++i) {
    ScopedStage timer(options_.stage_observer, Stage::kDecode, 1);
    auto image = image::DecodeImage(images[i], options_.limits.decode);
    if (!image.ok()) {
      results[i].status = Prefixed(image.status(), absl::StrCat("images[", i, "]"));
      continue;
    }
    decoded[i] = std::move(*image);
    good.push_back(i);
  }
  const size_t chunk = options_.inference_batch_size;
  for (size_t begin = 0; begin < good.size(); begin += chunk) {
    const size_t end = std::min(good.size(), begin + chunk);
    std::vector<const image::Image*> batch;
    for (size_t k = begin; k < end; ++k) batch.push_back(&decoded[good[k]]);
    auto captions = batchers_->Caption(batch, effective, call);
    for (size_t k = begin; k < end; ++k) {
      if (captions.ok()) {
        results[good[k]].caption = std::move((*captions)[k - begin]);
      } else {
        results[good[k]].status = captions.status();
      }
    }
  }
  return results;
}

absl::StatusOr<CollectionInfo> Engine::CreateCollection(const CollectionSpec& spec) {
  RETRACE_RETURN_IF_ERROR(ValidateCollectionName(spec.name));
  if (spec.shards < 1 || spec.shards > options_.limits.max_shards) {
    return absl::InvalidArgumentError(absl::StrCat("shards: ", spec.shards, " is not in 1..",
                                                   options_.limits.max_shards));
  }
  if (spec.thumbnail_side != 0 && (spec.thumbnail_side < defaults::kMinThumbnailSide ||
                                   spec.thumbnail_side > defaults::kMaxThumbnailSide)) {
    return absl::InvalidArgumentError(
        absl::StrCat("thumbnail_side: ", spec.thumbnail_side, " is not in ",
                     defaults::kMinThumbnailSide, "..", defaults::kMaxThumbnailSide,
                     " (pixels; 0: keep no thumbnails)"));
  }
  if (registry_->size() >= static_cast<size_t>(options_.limits.max_collections)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("collections: the server holds ", registry_->size(),
                     ", the limit (max_collections)"));
  }
  store::CollectionRecord record;
  record.name = spec.name;
  record.shards = spec.shards;
  record.caption_index = spec.caption_index.empty() ? defaults::kIndexFactory : spec.caption_index;
  record.caption_dim = models_.clip->dim();
  record.clip_model = models_.clip->manifest().Identity();
  record.captioner_model = models_.captioner->manifest().Identity();
  record.image_index = spec.image_index.empty() ? defaults::kIndexFactory : spec.image_index;
  record.thumbnail_side = spec.thumbnail_side;
  record.image_dim = models_.clip->dim();
  if (models_.image_encoder != nullptr) {
    record.image_dim += models_.image_encoder->dim();
    record.image_encoder_model = models_.image_encoder->manifest().Identity();
  }
  // A bad index spec is refused before anything is stored.
  RETRACE_RETURN_IF_ERROR(CreateIndexes(record).status());
  RETRACE_ASSIGN_OR_RETURN(record.created_position, store_->CreateCollection(record));
  log_->info("created collection '{}' at position {} (shards {}, caption index '{}' dim {}, "
             "image index '{}' dim {})",
             record.name, record.created_position, record.shards, record.caption_index,
             record.caption_dim, record.image_index, record.image_dim);
  // Served here before the call returns (read your writes); other replicas follow.
  RETRACE_RETURN_IF_ERROR(registry_->Reconcile().status());
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection,
                           registry_->Find(record.name));
  return Describe(*collection, nullptr);
}

absl::StatusOr<CollectionInfo> Engine::DescribeCollection(const std::string& name,
                                                          const CallOptions& call) {
  if (call.min_position > 0 && !registry_->WaitPosition(call.min_position, call.deadline)) {
    return absl::DeadlineExceededError(absl::StrCat("min_position ", call.min_position,
                                                    " is not applied on this replica by the "
                                                    "deadline"));
  }
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection, registry_->Find(name));
  return Describe(*collection, call.scope.get());
}

absl::StatusOr<std::vector<CollectionInfo>> Engine::ListCollections(const CallOptions& call) {
  if (call.min_position > 0 && !registry_->WaitPosition(call.min_position, call.deadline)) {
    return absl::DeadlineExceededError(absl::StrCat("min_position ", call.min_position,
                                                    " is not applied on this replica by the "
                                                    "deadline"));
  }
  std::vector<CollectionInfo> infos;
  for (const auto& collection : registry_->All()) {
    infos.push_back(Describe(*collection, call.scope.get()));
  }
  return infos;
}

absl::StatusOr<int64_t> Engine::DropCollection(const std::string& name) {
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection, registry_->Find(name));
  RETRACE_ASSIGN_OR_RETURN(int64_t position, store_->DropCollection(name));
  registry_->Remove(name, collection->record().created_position);
  return position;
}

absl::StatusOr<WriteResult> Engine::Index(const std::string& collection_name,
                                          std::vector<IndexItem> items, const CallOptions& call,
                                          std::optional<NearDuplicateCheck> near_duplicate) {
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection,
                           registry_->Find(collection_name));
  RETRACE_RETURN_IF_ERROR(collection->refused());
  return ingest_->Index(*collection, std::move(items), call, near_duplicate);
}

absl::StatusOr<WriteResult> Engine::Delete(const std::string& collection_name,
                                           const std::vector<std::string>& ids,
                                           const CallOptions& call) {
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection,
                           registry_->Find(collection_name));
  RETRACE_RETURN_IF_ERROR(collection->refused());
  return ingest_->Delete(*collection, ids, call);
}

absl::StatusOr<SearchResult> Engine::Search(const std::string& collection_name,
                                            const SearchQuery& query, const CallOptions& call) {
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection,
                           Find(collection_name, call));
  RETRACE_ASSIGN_OR_RETURN(SearchResult result, searcher_->Search(*collection, query, call));
  result.stale = !replicator_->store_reachable();
  return result;
}

absl::StatusOr<SpaceResult> Engine::SearchSpaces(const std::string& collection_name,
                                                 const std::vector<SpaceQuery>& queries,
                                                 const std::optional<filter::Filter>& filter,
                                                 const CallOptions& call) {
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection,
                           Find(collection_name, call));
  if (!collection->holds_indexes()) {
    return absl::FailedPreconditionError(
        absl::StrCat("collection '", collection_name, "': this server holds no index of it"));
  }
  const store::CollectionRecord& record = collection->record();
  if (queries.empty() || queries.size() > defaults::kMaxSpaceQueries) {
    return absl::InvalidArgumentError(absl::StrCat("queries: ", queries.size(),
                                                   " queries, not 1..", defaults::kMaxSpaceQueries));
  }
  for (size_t i = 0; i < queries.size(); ++i) {
    const int dim = queries[i].space == Space::kCaption ? record.caption_dim : record.image_dim;
    if (queries[i].vector.size() != static_cast<size_t>(dim)) {
      return absl::InvalidArgumentError(absl::StrCat("queries[", i, "].vector: ",
                                                     queries[i].vector.size(),
                                                     " values, but the space has ", dim));
    }
    const int max_k = std::max(options_.limits.max_top_k, options_.limits.max_candidates);
    if (queries[i].k < 1 || queries[i].k > max_k) {
      return absl::InvalidArgumentError(
          absl::StrCat("queries[", i, "].k: ", queries[i].k, " is not in 1..", max_k));
    }
  }
  if (filter.has_value()) RETRACE_RETURN_IF_ERROR(ValidateFilter(*filter, options_.limits));
  return local_spaces_->Search(*collection, queries, filter, call, false);
}

namespace {

// A List cursor is the last id of a page behind a version tag, base64url-encoded: opaque to
// clients, and a cursor from another build is recognised rather than misread.
constexpr absl::string_view kCursorTag = "retrace-list-1:";

std::string EncodeCursor(const std::string& last_id) {
  return absl::WebSafeBase64Escape(absl::StrCat(kCursorTag, last_id));
}

absl::StatusOr<std::string> DecodeCursor(const std::string& cursor) {
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(cursor, &decoded) || !absl::StartsWith(decoded, kCursorTag)) {
    return absl::InvalidArgumentError(
        "cursor: not a cursor this server gave (pass a ListResponse.next_cursor unchanged)");
  }
  return decoded.substr(kCursorTag.size());
}

}  // namespace

absl::StatusOr<ListPage> Engine::List(const std::string& collection_name,
                                      const std::string& cursor, int page_size, GetFields fields,
                                      const std::optional<filter::Filter>& filter,
                                      const CallOptions& call) {
  if (page_size == 0) page_size = defaults::kListPageSize;
  if (page_size < 1 || page_size > defaults::kMaxListPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", page_size, " is not in 1..",
                                                   defaults::kMaxListPageSize));
  }
  if (filter.has_value()) RETRACE_RETURN_IF_ERROR(ValidateFilter(*filter, options_.limits));
  std::string after;
  if (!cursor.empty()) {
    if (cursor.size() > 4 * options_.limits.max_id_bytes) {
      return absl::InvalidArgumentError("cursor: longer than any cursor this server gives");
    }
    RETRACE_ASSIGN_OR_RETURN(after, DecodeCursor(cursor));
  }
  // The request's filter AND the caller's scope.
  const std::optional<filter::Filter> passing = filter::Restrict(filter, call.scope.get());
  if (call.min_position > 0) RETRACE_RETURN_IF_ERROR(Find(collection_name, call).status());
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection,
                           registry_->Find(collection_name));
  // Read in id order until the page is full, the store ends or the scan budget is spent; with
  // no filter that is one read of page_size items.
  const int budget = passing.has_value()
                         ? std::max(defaults::kListFilterScanPages * page_size,
                                    defaults::kListFilterMinScan)
                         : page_size;
  ListPage page;
  std::vector<std::string> ids;
  int scanned = 0;
  bool at_end = false;
  while (static_cast<int>(page.items.size()) < page_size && scanned < budget && !at_end) {
    const int chunk = std::min(budget - scanned, std::max(page_size, 1000));
    RETRACE_ASSIGN_OR_RETURN(
        std::vector<store::StoredItem> stored,
        store_->ListItems(collection->name(), after, chunk, fields.embeddings));
    at_end = static_cast<int>(stored.size()) < chunk;
    for (store::StoredItem& s : stored) {
      ++scanned;
      after = s.id;
      if (passing.has_value() &&
          !filter::Evaluate(*passing, {s.attributes, s.created_ms, s.updated_ms})) {
        continue;
      }
      ids.push_back(s.id);
      page.items.push_back(internal::ToRecord(std::move(s)));
      if (static_cast<int>(page.items.size()) == page_size) {
        at_end = false;  // more may follow the item that filled the page
        break;
      }
    }
  }
  if (fields.thumbnail && collection->record().thumbnail_side > 0 && !ids.empty()) {
    RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> thumbnails,
                             store_->GetThumbnails(collection->name(), ids));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (thumbnails[i].has_value()) page.items[i].thumbnail = std::move(*thumbnails[i]);
    }
  }
  // Not at the end: a next page may hold more; the page after the last item is empty, with no
  // cursor.
  if (!at_end && scanned > 0) page.next_cursor = EncodeCursor(after);
  return page;
}

absl::StatusOr<FilterDeleteResult> Engine::DeleteMatching(const std::string& collection_name,
                                                          const filter::Filter& filter,
                                                          bool dry_run, const CallOptions& call) {
  RETRACE_RETURN_IF_ERROR(ValidateFilter(filter, options_.limits));
  // The request's filter AND the caller's scope: a tenant counts and deletes only its own.
  const filter::Filter passing = *filter::Restrict(filter, call.scope.get());
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection,
                           registry_->Find(collection_name));
  if (!dry_run) RETRACE_RETURN_IF_ERROR(collection->refused());
  FilterDeleteResult result;
  // An error part way keeps what is done (each batch is its own store write) and says so.
  auto stopped = [&result](const absl::Status& cause) {
    return absl::Status(cause.code(),
                        absl::StrCat("filter: stopped after deleting ", result.deleted, " of the ",
                                     result.matched, " matching items read so far (the same call "
                                     "again deletes the rest): ", cause.message()));
  };
  const size_t batch = static_cast<size_t>(options_.limits.max_items_per_call);
  std::string after;
  for (bool at_end = false; !at_end;) {
    if (absl::Now() >= call.deadline) {
      return stopped(absl::DeadlineExceededError("the call's deadline passed"));
    }
    absl::StatusOr<std::vector<store::StoredItem>> stored = store_->ListItems(
        collection->name(), after, defaults::kListFilterMinScan, /*with_embeddings=*/false);
    if (!stored.ok()) return stopped(stored.status());
    at_end = static_cast<int>(stored->size()) < defaults::kListFilterMinScan;
    if (!stored->empty()) after = stored->back().id;
    std::vector<std::string> matching;
    for (const store::StoredItem& s : *stored) {
      if (filter::Evaluate(passing, {s.attributes, s.created_ms, s.updated_ms})) {
        matching.push_back(s.id);
      }
    }
    result.matched += static_cast<int64_t>(matching.size());
    if (dry_run) continue;
    for (size_t first = 0; first < matching.size(); first += batch) {
      const std::vector<std::string> ids(
          matching.begin() + first, matching.begin() + std::min(matching.size(), first + batch));
      absl::StatusOr<WriteResult> written = ingest_->Delete(*collection, ids, call);
      if (!written.ok()) return stopped(written.status());
      if (written->position > 0) result.position = written->position;
      // OK: deleted and applied here. UNAVAILABLE: deleted from the store, not yet applied here
      // (Ingest::Delete); the call stops after this batch. NOT_FOUND: deleted by another call
      // since it was read.
      absl::Status unapplied;
      for (const ItemResult& item : written->items) {
        if (item.status.ok() || absl::IsUnavailable(item.status)) ++result.deleted;
        if (!item.status.ok() && !absl::IsNotFound(item.status) && unapplied.ok()) {
          unapplied = item.status;
        }
      }
      if (!unapplied.ok()) return stopped(unapplied);
    }
  }
  return result;
}

absl::StatusOr<std::vector<GetResult>> Engine::Get(const std::string& collection_name,
                                                    const std::vector<std::string>& ids,
                                                    GetFields fields, const CallOptions& call) {
  if (call.min_position > 0) {
    RETRACE_RETURN_IF_ERROR(Find(collection_name, call).status());
  }
  // Get reads the store, which holds every committed write: a refused collection's items too.
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<LiveCollection> collection,
                           registry_->Find(collection_name));
  return searcher_->Get(*collection, ids, fields, call.scope.get());
}

absl::Status Engine::SnapshotAll() { return replicator_->SnapshotAll(); }

bool Engine::Ready() const { return replicator_->caught_up(); }

bool Engine::StoreReachable() const { return replicator_->store_reachable(); }

absl::StatusOr<ClusterStatus> Engine::Cluster() const {
  ClusterStatus status;
  status.store = store_->Describe();
  RETRACE_ASSIGN_OR_RETURN(status.last_position, store_->LastPosition());
  RETRACE_ASSIGN_OR_RETURN(std::vector<store::ReplicaRecord> replicas, store_->ListReplicas());
  status.shard_groups = spaces_->Groups(absl::Now() + defaults::kShardHealthProbeTimeout);
  const absl::Time live_since = absl::Now() - options_.replication.replica_expiry;
  for (store::ReplicaRecord& r : replicas) {
    ReplicaStatus& out = status.replicas.emplace_back();
    out.replica = std::move(r.replica);
    out.address = std::move(r.address);
    out.started = r.started;
    out.heartbeat = r.heartbeat;
    out.live = r.heartbeat >= live_since;
    for (const store::ReplicaCollectionPosition& p : r.positions) {
      out.collections.push_back(
          {p.collection, p.applied, std::max<int64_t>(0, status.last_position - p.applied),
           p.resume});
    }
  }
  return status;
}

std::vector<CollectionReplication> Engine::Replication() const {
  std::vector<CollectionReplication> out;
  const int64_t last = replicator_->last_position();
  for (const auto& collection : registry_->All()) {
    if (!collection->holds_indexes()) continue;
    CollectionReplication& r = out.emplace_back();
    r.collection = collection->name();
    r.applied_position = collection->applied();
    r.lag = std::max<int64_t>(0, last - r.applied_position);
    r.changes_applied = collection->changes_applied.load(std::memory_order_relaxed);
    r.degraded = !collection->degraded().ok();
  }
  return out;
}

std::vector<BatcherDepth> Engine::BatcherDepths() const { return batchers_->Depths(); }

}  // namespace retrace::engine
