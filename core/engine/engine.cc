#include "core/engine/engine.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <unordered_map>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/engine/collection_index.h"
#include "core/engine/image_space.h"
#include "core/engine/internal/collection_state.h"
#include "core/engine/internal/content_hash.h"
#include "core/engine/validation.h"
#include "core/image/decode.h"
#include "core/index/sharded_index.h"

namespace retrace::engine {

namespace {

using internal::AllFinite;
using internal::Prefixed;

// ItemLabel names item i for messages: items[3] 'sketch/horse/1.png'.
std::string ItemLabel(absl::string_view field, size_t i, absl::string_view id, bool id_ok) {
  std::string label = absl::StrCat(field, "[", i, "]");
  if (id_ok) absl::StrAppend(&label, " '", id, "'");
  return label;
}

// ForChunks calls fn(begin, end) over [0, n) in chunks of at most `chunk`.
template <typename Fn>
absl::Status ForChunks(size_t n, size_t chunk, Fn fn) {
  for (size_t begin = 0; begin < n; begin += chunk) {
    RETRACE_RETURN_IF_ERROR(fn(begin, std::min(n, begin + chunk)));
  }
  return absl::OkStatus();
}

}  // namespace

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
  std::unique_ptr<Engine> engine(
      new Engine(std::move(options), std::move(models), std::move(store), std::move(log)));
  RETRACE_RETURN_IF_ERROR(engine->LoadCollections());
  if (!engine->options_.snapshot_dir.empty() && engine->options_.snapshot_interval_seconds > 0) {
    engine->snapshot_timer_ = std::thread([e = engine.get()] { e->RunSnapshotTimer(); });
  }
  return engine;
}

Engine::Engine(EngineOptions options, ModelSet models, std::unique_ptr<store::ItemStore> store,
               std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options)),
      models_(std::move(models)),
      store_(std::move(store)),
      log_(std::move(log)),
      batchers_(std::make_unique<internal::Batchers>(
          models_.clip.get(), models_.captioner.get(), models_.image_encoder.get(),
          options_.batching, options_.stage_observer)) {}

Engine::~Engine() {
  {
    absl::MutexLock lock(&timer_mu_);
    stopping_ = true;
  }
  if (snapshot_timer_.joinable()) snapshot_timer_.join();
}

void Engine::RunSnapshotTimer() {
  const absl::Duration interval = absl::Seconds(options_.snapshot_interval_seconds);
  while (true) {
    {
      absl::MutexLock lock(&timer_mu_);
      if (timer_mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
    }
    absl::Status s = SnapshotAll();
    if (!s.ok()) log_->error("periodic snapshot: {}", s.ToString());
  }
}

absl::Status Engine::Snapshot(Collection& collection) {
  int64_t sequence;
  {
    // With the write lock held no write is between store and index, so everything up to this
    // sequence is in the index. Writes after it may be in the snapshot too; replaying them at
    // recovery is harmless (changes carry their final state).
    absl::MutexLock write_lock(&collection.write_mu);
    sequence = store_->LastSequence();
    if (sequence == collection.snapshot_sequence) return absl::OkStatus();
  }
  const auto start = absl::Now();
  RETRACE_RETURN_IF_ERROR(
      SaveSnapshots(collection.indexes, collection.record, sequence, options_.snapshot_dir));
  {
    absl::MutexLock write_lock(&collection.write_mu);
    collection.snapshot_sequence = std::max(collection.snapshot_sequence, sequence);
  }
  // Only this snapshot is kept, so older deletions are no longer needed for catching up.
  absl::Status compacted = store_->CompactDeletions(collection.record.name, sequence);
  if (!compacted.ok() && compacted.code() != absl::StatusCode::kNotFound) return compacted;
  log_->info("collection '{}': snapshot at sequence {} ({} items) in {:.2f} s",
             collection.record.name, sequence, collection.indexes.captions->size(),
             absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status Engine::SnapshotAll() {
  if (options_.snapshot_dir.empty()) return absl::OkStatus();
  std::vector<std::shared_ptr<Collection>> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, collection] : collections_) {
      if (collection->refused.ok()) all.push_back(collection);
    }
  }
  absl::Status first;
  for (const auto& collection : all) {
    absl::Status s = Snapshot(*collection);
    if (!s.ok()) {
      log_->error("collection '{}': snapshot failed: {}", collection->record.name, s.ToString());
      if (first.ok()) first = s;
    }
  }
  return first;
}

absl::StatusOr<std::unique_ptr<Engine::Collection>> Engine::MakeCollection(
    store::CollectionRecord record) {
  auto collection = std::make_unique<Collection>();
  collection->record = std::move(record);
  const store::CollectionRecord& r = collection->record;
  const std::string clip = models_.clip->manifest().Identity();
  const std::string captioner = models_.captioner->manifest().Identity();
  if (r.clip_model != clip || r.caption_dim != models_.clip->dim()) {
    collection->refused = absl::FailedPreconditionError(absl::StrCat(
        "collection '", r.name, "' was built with CLIP model '", r.clip_model, "' (dimension ",
        r.caption_dim, ") but this server runs '", clip, "' (dimension ", models_.clip->dim(),
        "); start the server with that collection's models, or index into a new collection"));
    return collection;
  }
  const std::string encoder =
      models_.image_encoder ? models_.image_encoder->manifest().Identity() : std::string();
  if (r.image_encoder_model != encoder) {
    collection->refused = absl::FailedPreconditionError(absl::StrCat(
        "collection '", r.name, "' was built with image encoder '",
        r.image_encoder_model.empty() ? "(none)" : r.image_encoder_model,
        "' but this server runs '", encoder.empty() ? "(none)" : encoder,
        "'; start the server with that collection's models, or index into a new collection"));
    return collection;
  }
  if (r.captioner_model != captioner) {
    // Captions are text: a different captioner does not make embeddings incomparable, but the
    // collection then mixes caption styles. Worth a warning, not a refusal.
    log_->warn("collection '{}' was captioned by '{}'; new items will be captioned by '{}'",
               r.name, r.captioner_model, captioner);
  }
  RETRACE_ASSIGN_OR_RETURN(collection->indexes, CreateIndexes(r));
  return collection;
}

absl::Status Engine::LoadCollections() {
  RETRACE_ASSIGN_OR_RETURN(std::vector<store::CollectionRecord> records, store_->ListCollections());
  for (store::CollectionRecord& record : records) {
    const std::string name = record.name;
    RETRACE_ASSIGN_OR_RETURN(std::unique_ptr<Collection> collection,
                             MakeCollection(std::move(record)));
    if (collection->refused.ok()) {
      const auto start = absl::Now();
      RETRACE_ASSIGN_OR_RETURN(
          RecoveredIndexes recovered,
          RecoverIndexes(*store_, collection->record, options_.snapshot_dir));
      collection->indexes = std::move(recovered.indexes);
      {
        absl::MutexLock write_lock(&collection->write_mu);
        collection->snapshot_sequence = recovered.snapshot_sequence;
      }
      log_->info("collection '{}': {} items ready in {:.2f} s, {}", name,
                 collection->indexes.captions->size(), absl::ToDoubleSeconds(absl::Now() - start),
                 recovered.how);
    } else {
      log_->error("{}", collection->refused.ToString());
    }
    absl::MutexLock lock(&mu_);
    collections_[name] = std::move(collection);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Engine::Collection>> Engine::Find(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) {
    return absl::NotFoundError(absl::StrCat("collection '", name, "' not found"));
  }
  return it->second;
}

CollectionInfo Engine::Describe(const Collection& collection) {
  const store::CollectionRecord& r = collection.record;
  CollectionInfo info;
  info.spec = {r.name, r.shards, r.caption_index, r.image_index};
  info.caption_dim = r.caption_dim;
  info.clip_model = r.clip_model;
  info.captioner_model = r.captioner_model;
  info.image_dim = r.image_dim;
  info.image_encoder_model = r.image_encoder_model;
  if (collection.indexes.captions != nullptr) {
    info.item_count = static_cast<int64_t>(collection.indexes.captions->size());
  } else {
    info.item_count = store_->CountItems(r.name).value_or(0);
  }
  return info;
}

absl::StatusOr<CollectionInfo> Engine::CreateCollection(const CollectionSpec& spec) {
  RETRACE_RETURN_IF_ERROR(ValidateCollectionName(spec.name));
  if (spec.shards < 1 || spec.shards > options_.limits.max_shards) {
    return absl::InvalidArgumentError(absl::StrCat("shards: ", spec.shards, " is not in 1..",
                                                   options_.limits.max_shards));
  }
  store::CollectionRecord record;
  record.name = spec.name;
  record.shards = spec.shards;
  record.caption_index = spec.caption_index.empty() ? "Flat" : spec.caption_index;
  record.caption_dim = models_.clip->dim();
  record.clip_model = models_.clip->manifest().Identity();
  record.captioner_model = models_.captioner->manifest().Identity();
  record.image_index = spec.image_index.empty() ? "Flat" : spec.image_index;
  record.image_dim = models_.clip->dim();
  if (models_.image_encoder != nullptr) {
    record.image_dim += models_.image_encoder->dim();
    record.image_encoder_model = models_.image_encoder->manifest().Identity();
  }
  RETRACE_ASSIGN_OR_RETURN(std::unique_ptr<Collection> collection, MakeCollection(record));

  absl::MutexLock lock(&mu_);
  if (collections_.count(spec.name) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("collection '", spec.name, "' already exists"));
  }
  if (collections_.size() >= static_cast<size_t>(options_.limits.max_collections)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "collections: the server holds ", collections_.size(), ", the limit (max_collections)"));
  }
  // The store numbers the creation; snapshots are tagged with it.
  RETRACE_ASSIGN_OR_RETURN(collection->record.created_seq, store_->CreateCollection(record));
  log_->info("created collection '{}' (shards {}, caption index '{}' dim {}, image index '{}' "
             "dim {})",
             record.name, record.shards, record.caption_index, record.caption_dim,
             record.image_index, record.image_dim);
  auto [it, inserted] = collections_.emplace(spec.name, std::move(collection));
  return Describe(*it->second);
}

absl::StatusOr<CollectionInfo> Engine::DescribeCollection(const std::string& name) {
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<Collection> collection, Find(name));
  return Describe(*collection);
}

absl::StatusOr<std::vector<CollectionInfo>> Engine::ListCollections() {
  std::vector<std::shared_ptr<Collection>> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, collection] : collections_) all.push_back(collection);
  }
  std::vector<CollectionInfo> infos;
  infos.reserve(all.size());
  for (const auto& collection : all) infos.push_back(Describe(*collection));
  return infos;
}

absl::Status Engine::DropCollection(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) {
    return absl::NotFoundError(absl::StrCat("collection '", name, "' not found"));
  }
  {
    // Wait for in-flight writes so none lands in the store after the drop.
    absl::MutexLock write_lock(&it->second->write_mu);
    RETRACE_RETURN_IF_ERROR(store_->DropCollection(name));
  }
  collections_.erase(it);
  if (!options_.snapshot_dir.empty()) {
    // A leftover would be recognised as stale anyway (its tag is the old created_seq).
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(options_.snapshot_dir) / name, ec);
  }
  log_->info("dropped collection '{}'", name);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CaptionResult>> Engine::Caption(const std::vector<std::string>& images,
                                                          const models::CaptionOptions& options,
                                                          const CallOptions& call_options) {
  const internal::Call call{batching::Lane::kInteractive, call_options.deadline};
  RETRACE_RETURN_IF_ERROR(ValidateItemCount(images.size(), "images", options_.limits));
  models::CaptionOptions effective = options;
  if (effective.max_new_tokens == 0) effective.max_new_tokens = options_.caption.max_new_tokens;
  RETRACE_RETURN_IF_ERROR(models_.captioner->ValidateOptions(effective));

  std::vector<CaptionResult> results(images.size());
  std::vector<image::Image> decoded(images.size());
  std::vector<size_t> good;
  for (size_t i = 0; i < images.size(); ++i) {
    auto image = Timed(Stage::kDecode, 1,
                       [&] { return image::DecodeImage(images[i], options_.limits.decode); });
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

absl::StatusOr<std::vector<ItemResult>> Engine::Index(const std::string& collection_name,
                                                      std::vector<IndexItem> items,
                                                      const CallOptions& call_options) {
  const internal::Call call{batching::Lane::kBulk, call_options.deadline};
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<Collection> collection, Find(collection_name));
  RETRACE_RETURN_IF_ERROR(collection->refused);
  const EngineLimits& limits = options_.limits;
  RETRACE_RETURN_IF_ERROR(ValidateItemCount(items.size(), "items", limits));

  std::vector<ItemResult> results(items.size());
  std::vector<image::Image> decoded(items.size());
  std::vector<uint64_t> hashes(items.size());
  std::vector<size_t> valid;  // items that passed validation, in order
  std::vector<size_t> good;   // ... and are new or changed, and decoded
  std::unordered_map<std::string_view, size_t> first_seen;
  for (size_t i = 0; i < items.size(); ++i) {
    IndexItem& item = items[i];
    absl::Status id_status = ValidateId(item.id, limits);
    // Results echo the id; one that is not valid UTF-8 is echoed escaped (it must serialise).
    results[i].id = IsValidUtf8(item.id) ? item.id : absl::CHexEscape(item.id);
    const std::string label = ItemLabel("items", i, item.id, id_status.ok());
    absl::Status status = id_status;
    if (status.ok()) {
      auto [it, inserted] = first_seen.emplace(item.id, i);
      if (!inserted) {
        status = absl::InvalidArgumentError(
            absl::StrCat("id: duplicate of items[", it->second, "] in the same request"));
      }
    }
    if (status.ok()) status = ValidateCaption(item.caption, limits);
    if (status.ok()) status = ValidateAttributes(item.attributes, limits);
    if (status.ok() && item.image.empty()) status = absl::InvalidArgumentError("image: missing");
    if (!status.ok()) {
      results[i].status = Prefixed(status, label);
      continue;
    }
    hashes[i] = internal::ContentHash(item.image, item.caption, item.attributes);
    valid.push_back(i);
  }

  // Unchanged re-sends are acknowledged with what is stored, before any decoding or inference.
  RETRACE_ASSIGN_OR_RETURN(std::vector<size_t> unchanged, FindUnchanged(collection_name, items,
                                                                        hashes, valid, results));
  for (size_t i : valid) {
    if (std::binary_search(unchanged.begin(), unchanged.end(), i)) continue;
    auto image =
        Timed(Stage::kDecode, 1, [&] { return image::DecodeImage(items[i].image, limits.decode); });
    if (!image.ok()) {
      results[i].status = Prefixed(Prefixed(image.status(), "image"),
                                   ItemLabel("items", i, items[i].id, true));
      continue;
    }
    decoded[i] = std::move(*image);
    std::string().swap(items[i].image);  // the encoded bytes are no longer needed
    good.push_back(i);
  }

  // Model work, in chunks; a chunk that fails fails its own items.
  const size_t chunk = options_.inference_batch_size;
  std::vector<store::StoredItem> stored(items.size());
  auto fail = [&](size_t i, const absl::Status& s) {
    if (results[i].status.ok()) results[i].status = Prefixed(s, ItemLabel("items", i, items[i].id, true));
  };
  for (size_t begin = 0; begin < good.size(); begin += chunk) {
    const size_t end = std::min(good.size(), begin + chunk);
    std::vector<const image::Image*> to_caption;
    std::vector<size_t> caption_owner;
    std::vector<const image::Image*> batch;
    for (size_t k = begin; k < end; ++k) {
      const size_t i = good[k];
      batch.push_back(&decoded[i]);
      if (items[i].caption.empty()) {
        to_caption.push_back(&decoded[i]);
        caption_owner.push_back(i);
      } else {
        stored[i].caption = items[i].caption;
      }
    }
    if (!to_caption.empty()) {
      auto captions = batchers_->Caption(to_caption, options_.caption, call);
      for (size_t c = 0; c < caption_owner.size(); ++c) {
        if (captions.ok()) {
          stored[caption_owner[c]].caption = std::move((*captions)[c]);
        } else {
          fail(caption_owner[c], Prefixed(captions.status(), "caption"));
        }
      }
    }
    auto image_embeddings = batchers_->EncodeImages(batch, call);
    std::vector<std::string> texts;
    for (size_t k = begin; k < end; ++k) texts.push_back(stored[good[k]].caption);
    auto text_embeddings = batchers_->EncodeTexts(texts, call);
    // The collection, not the server, decides: its image space was fixed at creation.
    absl::StatusOr<models::EmbeddingMatrix> features = models::EmbeddingMatrix();
    if (HasImageEncoder(collection->record)) {
      features = batchers_->EncodeImageFeatures(batch, call);
    }
    for (size_t k = begin; k < end; ++k) {
      const size_t i = good[k];
      if (!image_embeddings.ok()) {
        fail(i, Prefixed(image_embeddings.status(), "image embedding"));
      } else if (!text_embeddings.ok()) {
        fail(i, Prefixed(text_embeddings.status(), "caption embedding"));
      } else if (!features.ok()) {
        fail(i, Prefixed(features.status(), "image-encoder embedding"));
      } else {
        stored[i].clip_image = image_embeddings->RowVector(k - begin);
        stored[i].caption_text = text_embeddings->RowVector(k - begin);
        if (features->rows > 0) stored[i].image_features = features->RowVector(k - begin);
        if (!AllFinite(stored[i].clip_image.data(), stored[i].clip_image.size()) ||
            !AllFinite(stored[i].caption_text.data(), stored[i].caption_text.size()) ||
            !AllFinite(stored[i].image_features.data(), stored[i].image_features.size())) {
          fail(i, absl::InternalError("the model returned a non-finite embedding"));
        }
      }
    }
  }

  std::vector<store::StoredItem> batch;
  std::vector<size_t> batch_owner;
  for (size_t i : good) {
    if (!results[i].status.ok()) continue;
    stored[i].id = items[i].id;
    stored[i].content_hash = hashes[i];
    stored[i].attributes = std::move(items[i].attributes);
    results[i].caption = stored[i].caption;
    batch_owner.push_back(i);
    batch.push_back(std::move(stored[i]));
  }
  if (batch.empty()) return results;

  std::vector<store::StoredItem> to_index(batch);  // the store takes the batch; indexes read this
  absl::MutexLock write_lock(&collection->write_mu);
  ScopedStage store_timer(options_.stage_observer, Stage::kStore, static_cast<int>(batch.size()));
  auto sequence = store_->PutItems(collection_name, std::move(batch));
  absl::Status written = sequence.status();
  if (written.ok()) {
    std::vector<const store::StoredItem*> pointers;
    for (const store::StoredItem& item : to_index) pointers.push_back(&item);
    written = AddItems(collection->indexes, collection->record, pointers);
    if (!written.ok()) {
      // Stored but not searchable until the index is rebuilt at the next start: say so loudly.
      log_->error("collection '{}': stored {} items but the index refused them: {}",
                  collection_name, to_index.size(), written.ToString());
    }
  }
  if (!written.ok()) {
    for (size_t i : batch_owner) {
      results[i].status = Prefixed(written, ItemLabel("items", i, items[i].id, true));
      results[i].caption.clear();
    }
  }
  return results;
}

absl::StatusOr<std::vector<size_t>> Engine::FindUnchanged(const std::string& collection,
                                                          const std::vector<IndexItem>& items,
                                                          const std::vector<uint64_t>& hashes,
                                                          const std::vector<size_t>& candidates,
                                                          std::vector<ItemResult>& results) {
  std::vector<size_t> unchanged;
  if (candidates.empty()) return unchanged;
  std::vector<std::string> ids;
  for (size_t i : candidates) ids.push_back(items[i].id);
  RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<uint64_t>> stored,
                           store_->GetContentHashes(collection, ids));
  std::vector<std::string> same_ids;
  for (size_t k = 0; k < candidates.size(); ++k) {
    if (stored[k].has_value() && *stored[k] == hashes[candidates[k]]) {
      unchanged.push_back(candidates[k]);
      same_ids.push_back(ids[k]);
    }
  }
  if (unchanged.empty()) return unchanged;
  // Their stored captions go back in the results, as for a fresh write.
  RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<store::StoredItem>> records,
                           store_->GetItemsWithoutEmbeddings(collection, same_ids));
  for (size_t k = 0; k < unchanged.size(); ++k) {
    results[unchanged[k]].unchanged = true;
    if (records[k].has_value()) results[unchanged[k]].caption = records[k]->caption;
  }
  return unchanged;
}

absl::StatusOr<std::vector<GetResult>> Engine::Get(const std::string& collection_name,
                                                    const std::vector<std::string>& ids,
                                                    bool include_embeddings) {
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<Collection> collection, Find(collection_name));
  RETRACE_RETURN_IF_ERROR(ValidateItemCount(ids.size(), "ids", options_.limits));
  std::vector<GetResult> results(ids.size());
  std::vector<std::string> valid;
  std::vector<size_t> valid_owner;
  for (size_t i = 0; i < ids.size(); ++i) {
    results[i].item.id = IsValidUtf8(ids[i]) ? ids[i] : absl::CHexEscape(ids[i]);
    absl::Status s = ValidateId(ids[i], options_.limits);
    if (!s.ok()) {
      results[i].status = Prefixed(s, absl::StrCat("ids[", i, "]"));
      continue;
    }
    valid.push_back(ids[i]);
    valid_owner.push_back(i);
  }
  if (valid.empty()) return results;
  RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<store::StoredItem>> stored,
                           store_->GetItems(collection_name, valid));
  for (size_t v = 0; v < valid.size(); ++v) {
    GetResult& result = results[valid_owner[v]];
    if (!stored[v].has_value()) {
      result.status = absl::NotFoundError(absl::StrCat("ids[", valid_owner[v], "] '", valid[v],
                                                       "': not in collection '", collection_name,
                                                       "'"));
      continue;
    }
    result.item.caption = std::move(stored[v]->caption);
    result.item.attributes = std::move(stored[v]->attributes);
    if (include_embeddings) {
      result.item.clip_image = std::move(stored[v]->clip_image);
      result.item.caption_text = std::move(stored[v]->caption_text);
      result.item.image_features = std::move(stored[v]->image_features);
    }
  }
  return results;
}

absl::StatusOr<std::vector<ItemResult>> Engine::Delete(const std::string& collection_name,
                                                       const std::vector<std::string>& ids) {
  RETRACE_ASSIGN_OR_RETURN(std::shared_ptr<Collection> collection, Find(collection_name));
  RETRACE_RETURN_IF_ERROR(collection->refused);
  RETRACE_RETURN_IF_ERROR(ValidateItemCount(ids.size(), "ids", options_.limits));
  std::vector<ItemResult> results(ids.size());
  std::vector<std::string> valid;
  for (size_t i = 0; i < ids.size(); ++i) {
    results[i].id = IsValidUtf8(ids[i]) ? ids[i] : absl::CHexEscape(ids[i]);
    absl::Status s = ValidateId(ids[i], options_.limits);
    if (!s.ok()) {
      results[i].status = Prefixed(s, absl::StrCat("ids[", i, "]"));
    } else {
      valid.push_back(ids[i]);
    }
  }
  if (valid.empty()) return results;
  absl::MutexLock write_lock(&collection->write_mu);
  RETRACE_ASSIGN_OR_RETURN(std::vector<bool> present, store_->DeleteItems(collection_name, valid));
  RETRACE_RETURN_IF_ERROR(RemoveItems(collection->indexes, valid));
  size_t v = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!results[i].status.ok()) continue;
    if (!present[v++]) {
      results[i].status = absl::NotFoundError(
          absl::StrCat("ids[", i, "] '", ids[i], "': not in collection '", collection_name, "'"));
    }
  }
  return results;
}

}  // namespace retrace::engine
