#include "core/engine/ingest.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/common/utf8.h"
#include "core/engine/defaults.h"
#include "core/engine/image_space.h"
#include "core/engine/internal/content_hash.h"
#include "core/engine/internal/prefixed.h"
#include "core/engine/validation.h"
#include "core/filter/scope.h"
#include "core/image/decode.h"
#include "core/image/thumbnail.h"
#include "core/search/inner_product.h"

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

// Echo: an id as results echo it; one that is not valid UTF-8 is escaped (it must serialise).
std::string Echo(const std::string& id) { return IsValidUtf8(id) ? id : absl::CHexEscape(id); }

// PassesScope: whether a stored item is one the scoped caller may see and overwrite.
bool PassesScope(const filter::Filter& scope, const store::StoredItem& stored) {
  return filter::Evaluate(scope, {stored.attributes, stored.created_ms, stored.updated_ms});
}

// IdTaken: the error of an item whose id holds an item outside the caller's scope.
// ALREADY_EXISTS, not PERMISSION_DENIED: the caller may write such an item, only not under this
// id, which another tenant's item holds (ids are per collection). Answering OK without writing,
// or NOT_FOUND, would lie about the write; the id's existence is the one thing a shared id space
// cannot hide.
absl::Status IdTaken(const std::vector<IndexItem>& items, size_t i) {
  return absl::AlreadyExistsError(absl::StrCat(
      ItemLabel("items", i, items[i].id, true),
      ": id: taken in this collection by an item outside this token's filter; it is not "
      "overwritten (ids are per collection: prefix them with your tenant's name)"));
}

}  // namespace

Ingest::Ingest(Options options, Batchers* batchers, SpaceSearcher* spaces,
               store::ItemStore* store)
    : options_(std::move(options)), batchers_(batchers), spaces_(spaces), store_(store) {}

absl::Status Ingest::AwaitApplied(LiveCollection& collection, int64_t position,
                                  absl::Time deadline) {
  if (!collection.holds_indexes()) return absl::OkStatus();
  absl::Status last;
  while (collection.applied() < position) {
    last = CatchUp(collection, *store_, options_.follow);
    if (collection.applied() >= position) break;
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          "stored at position ", position, " but this replica's index of '", collection.name(),
          "' has not applied it yet (it has applied up to ", collection.applied(), ")",
          last.ok() ? std::string() : absl::StrCat(": ", last.message()),
          "; it stays pending and is retried, and a retry of this item answers once it is "
          "applied"));
    }
    if (!last.ok()) {
      collection.WaitForProgress(collection.applied(),
                                 std::min(deadline, absl::Now() + options_.retry_min));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<size_t>> Ingest::FindUnchanged(const std::string& collection,
                                                          const std::vector<IndexItem>& items,
                                                          const std::vector<uint64_t>& hashes,
                                                          const std::vector<size_t>& candidates,
                                                          std::vector<ItemResult>& results,
                                                          int64_t* position) {
  std::vector<size_t> unchanged;
  if (candidates.empty()) return unchanged;
  std::vector<std::string> ids;
  for (size_t i : candidates) ids.push_back(items[i].id);
  RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<store::ItemVersion>> stored,
                           store_->GetItemVersions(collection, ids));
  std::vector<std::string> same_ids;
  for (size_t k = 0; k < candidates.size(); ++k) {
    if (stored[k].has_value() && stored[k]->content_hash == hashes[candidates[k]]) {
      unchanged.push_back(candidates[k]);
      same_ids.push_back(ids[k]);
      *position = std::max(*position, stored[k]->position);
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

void Ingest::FindNearDuplicates(const LiveCollection& collection, const NearDuplicateCheck& check,
                                const std::vector<IndexItem>& items,
                                const std::vector<size_t>& good,
                                const std::vector<store::StoredItem>& stored,
                                std::vector<ItemResult>& results, const ModelCall& call,
                                const filter::Filter* scope) {
  const store::CollectionRecord& record = collection.record();
  // The caller's scope: only its own items are compared (never another tenant's named).
  std::optional<filter::Filter> own;
  if (scope != nullptr) own = *scope;
  CallOptions search_call;
  search_call.deadline = call.deadline;
  search_call.search_lane = call.lane;
  std::vector<std::vector<float>> kept;  // the image-space vectors of earlier items to store
  std::vector<size_t> kept_owner;
  for (size_t i : good) {
    if (!results[i].status.ok()) continue;
    const std::string label = ItemLabel("items", i, items[i].id, true);
    absl::StatusOr<std::vector<float>> v =
        ImageSpaceVector(record, stored[i].image_features, stored[i].clip_image);
    if (!v.ok()) {
      results[i].status = Prefixed(Prefixed(v.status(), "near_duplicate"), label);
      continue;
    }
    // Two: a changed item's own stored version may be the nearest, and is not its duplicate.
    absl::StatusOr<SpaceResult> found =
        spaces_->Search(collection, {{Space::kImage, *v, 2}}, own, search_call, false);
    if (!found.ok()) {
      results[i].status = Prefixed(Prefixed(found.status(), "near_duplicate"), label);
      continue;
    }
    std::string best_id;
    float best = -2;  // below any cosine similarity
    for (const SpaceHit& hit : found->hits[0]) {
      if (hit.item.id != items[i].id && hit.score > best) {
        best = hit.score;
        best_id = hit.item.id;
      }
    }
    for (size_t k = 0; k < kept.size(); ++k) {
      const float similarity = search::InnerProduct(*v, kept[k]);
      if (similarity > best) {
        best = similarity;
        best_id = items[kept_owner[k]].id;
      }
    }
    if (best >= check.threshold) {
      results[i].near_duplicate_id = best_id;
      results[i].near_duplicate_similarity = best;
      if (check.skip) {
        results[i].skipped = true;
        results[i].status = absl::AlreadyExistsError(absl::StrCat(
            label, ": near_duplicate: similarity ", best, " to '", best_id,
            "' is at least the threshold ", check.threshold, "; not stored (action SKIP)"));
        continue;
      }
    }
    kept.push_back(*std::move(v));
    kept_owner.push_back(i);
  }
}

absl::StatusOr<std::vector<size_t>> Ingest::KeepOwnIds(const std::string& collection,
                                                       const filter::Filter& scope,
                                                       const std::vector<IndexItem>& items,
                                                       const std::vector<size_t>& candidates,
                                                       std::vector<ItemResult>& results) {
  if (candidates.empty()) return candidates;
  std::vector<std::string> ids;
  for (size_t i : candidates) ids.push_back(items[i].id);
  RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<store::StoredItem>> stored,
                           store_->GetItemsWithoutEmbeddings(collection, ids));
  std::vector<size_t> own;
  for (size_t k = 0; k < candidates.size(); ++k) {
    const size_t i = candidates[k];
    if (!stored[k].has_value() || PassesScope(scope, *stored[k])) {
      own.push_back(i);
    } else {
      results[i].status = IdTaken(items, i);
    }
  }
  return own;
}

absl::StatusOr<WriteResult> Ingest::Index(LiveCollection& collection,
                                          std::vector<IndexItem> items, const CallOptions& call,
                                          const std::optional<NearDuplicateCheck>& near_duplicate) {
  const ModelCall model_call{batching::Lane::kBulk, call.deadline};
  const store::CollectionRecord& record = collection.record();
  const EngineLimits& limits = options_.limits;
  RETRACE_RETURN_IF_ERROR(ValidateItemCount(items.size(), "items", limits));
  if (near_duplicate.has_value()) RETRACE_RETURN_IF_ERROR(ValidateNearDuplicate(*near_duplicate));
  const absl::Time ack_deadline = std::min(call.deadline, absl::Now() + options_.ack_timeout);

  WriteResult written;
  std::vector<ItemResult>& results = written.items;
  results.resize(items.size());
  std::vector<image::Image> decoded(items.size());
  std::vector<std::string> thumbnails(items.size());  // when the collection keeps them
  std::vector<uint64_t> hashes(items.size());
  std::vector<size_t> valid;  // items that passed validation, in order
  std::vector<size_t> good;   // ... and are new or changed, and decoded
  std::unordered_map<std::string_view, size_t> first_seen;
  for (size_t i = 0; i < items.size(); ++i) {
    IndexItem& item = items[i];
    absl::Status id_status = ValidateId(item.id, limits);
    results[i].id = Echo(item.id);
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
    // A scoped caller's items get (or must already hold) its scope's attributes, before the
    // bounds are checked and the content hashed.
    if (status.ok() && call.scope != nullptr) {
      status = filter::ApplyScope(*call.scope, item.attributes);
    }
    if (status.ok()) status = ValidateAttributes(item.attributes, limits);
    if (status.ok() && item.image.empty()) status = absl::InvalidArgumentError("image: missing");
    if (!status.ok()) {
      results[i].status = Prefixed(status, label);
      continue;
    }
    hashes[i] = internal::ContentHash(item.image, item.caption, item.attributes);
    valid.push_back(i);
  }

  if (call.scope != nullptr) {
    RETRACE_ASSIGN_OR_RETURN(valid, KeepOwnIds(record.name, *call.scope, items, valid, results));
  }
  // Unchanged re-sends are acknowledged with what is stored, before any decoding or inference.
  RETRACE_ASSIGN_OR_RETURN(std::vector<size_t> unchanged,
                           FindUnchanged(record.name, items, hashes, valid, results,
                                         &written.position));
  for (size_t i : valid) {
    if (std::binary_search(unchanged.begin(), unchanged.end(), i)) continue;
    ScopedStage timer(options_.stage_observer, Stage::kDecode, 1);
    auto image = image::DecodeImage(items[i].image, limits.decode);
    if (!image.ok()) {
      results[i].status = Prefixed(Prefixed(image.status(), "image"),
                                   ItemLabel("items", i, items[i].id, true));
      continue;
    }
    decoded[i] = std::move(*image);
    std::string().swap(items[i].image);  // the encoded bytes are no longer needed
    if (record.thumbnail_side > 0) {
      auto jpeg = image::EncodeThumbnail(decoded[i], record.thumbnail_side,
                                         defaults::kThumbnailJpegQuality);
      if (!jpeg.ok()) {
        results[i].status = Prefixed(jpeg.status(), ItemLabel("items", i, items[i].id, true));
        continue;
      }
      thumbnails[i] = std::move(*jpeg);
    }
    good.push_back(i);
  }

  // Model work, in chunks; a chunk that fails fails its own items.
  const size_t chunk = options_.inference_batch_size;
  std::vector<store::StoredItem> stored(items.size());
  auto fail = [&](size_t i, const absl::Status& s) {
    if (results[i].status.ok()) {
      results[i].status = Prefixed(s, ItemLabel("items", i, items[i].id, true));
    }
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
    // The captioner, CLIP image and the image encoder overlap; CLIP text needs the captions.
    ImageCalls calls;
    calls.clip_image = true;
    // The collection, not the server, decides: its image space was fixed at creation.
    calls.features = HasImageEncoder(record);
    calls.caption_options = &options_.caption;
    calls.caption_images = std::move(to_caption);
    ImageResults done = batchers_->RunImageCalls(batch, calls, model_call);
    for (size_t c = 0; c < caption_owner.size(); ++c) {
      if (done.captions.ok()) {
        stored[caption_owner[c]].caption = std::move((*done.captions)[c]);
      } else {
        fail(caption_owner[c], Prefixed(done.captions.status(), "caption"));
      }
    }
    const absl::StatusOr<models::EmbeddingMatrix>& image_embeddings = done.clip_image;
    std::vector<std::string> texts;
    for (size_t k = begin; k < end; ++k) texts.push_back(stored[good[k]].caption);
    auto text_embeddings = batchers_->EncodeTexts(texts, model_call);
    const absl::StatusOr<models::EmbeddingMatrix>& features = done.features;
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

  if (near_duplicate.has_value()) {
    FindNearDuplicates(collection, *near_duplicate, items, good, stored, results, model_call,
                       call.scope.get());
  }

  std::vector<store::StoredItem> batch;
  std::vector<size_t> batch_owner;
  for (size_t i : good) {
    if (!results[i].status.ok()) continue;
    stored[i].id = items[i].id;
    stored[i].content_hash = hashes[i];
    stored[i].thumbnail = std::move(thumbnails[i]);
    stored[i].attributes = std::move(items[i].attributes);
    results[i].caption = stored[i].caption;
    batch_owner.push_back(i);
    batch.push_back(std::move(stored[i]));
  }
  if (!batch.empty()) {
    ScopedStage timer(options_.stage_observer, Stage::kStore, static_cast<int>(batch.size()));
    // A scoped caller's ids were checked before inference (KeepOwnIds, so that a taken id costs
    // no model time); the store checks again as it writes, since another tenant may have taken
    // an id since.
    store::ReplaceCheck may_replace;  // none without a scope: any stored item is replaced
    if (call.scope != nullptr) {
      may_replace = [&scope = *call.scope](const store::StoredItem& stored) {
        return PassesScope(scope, stored);
      };
    }
    absl::StatusOr<store::PutResult> put =
        store_->PutItemsChecked(record.name, std::move(batch), may_replace);
    if (!put.ok()) {
      // Nothing of the batch is stored (one transaction): each item says why.
      for (size_t i : batch_owner) {
        results[i].status = Prefixed(put.status(), ItemLabel("items", i, items[i].id, true));
        results[i].caption.clear();
      }
      batch_owner.clear();
    } else {
      for (size_t k : put->refused) {
        const size_t i = batch_owner[k];
        results[i].status = IdTaken(items, i);
        results[i].caption.clear();
      }
      for (auto k = put->refused.rbegin(); k != put->refused.rend(); ++k) {
        batch_owner.erase(batch_owner.begin() + static_cast<std::ptrdiff_t>(*k));
      }
      written.position = std::max(written.position, put->position);
    }
  }
  // Acknowledge once this replica has applied the commit (and the unchanged items' versions).
  std::vector<size_t> acknowledged = batch_owner;
  acknowledged.insert(acknowledged.end(), unchanged.begin(), unchanged.end());
  if (!acknowledged.empty()) {
    absl::Status applied = AwaitApplied(collection, written.position, ack_deadline);
    if (!applied.ok()) {
      for (size_t i : acknowledged) {
        results[i].status = Prefixed(applied, ItemLabel("items", i, items[i].id, true));
      }
    }
  }
  return written;
}

absl::StatusOr<WriteResult> Ingest::Delete(LiveCollection& collection,
                                           const std::vector<std::string>& ids,
                                           const CallOptions& call) {
  RETRACE_RETURN_IF_ERROR(ValidateItemCount(ids.size(), "ids", options_.limits));
  const absl::Time ack_deadline = std::min(call.deadline, absl::Now() + options_.ack_timeout);
  WriteResult written;
  written.items.resize(ids.size());
  std::vector<std::string> valid;
  std::vector<size_t> owner;
  for (size_t i = 0; i < ids.size(); ++i) {
    written.items[i].id = Echo(ids[i]);
    absl::Status s = ValidateId(ids[i], options_.limits);
    if (!s.ok()) {
      written.items[i].status = Prefixed(s, absl::StrCat("ids[", i, "]"));
    } else {
      valid.push_back(ids[i]);
      owner.push_back(i);
    }
  }
  auto not_found = [&](size_t i) {
    return absl::NotFoundError(absl::StrCat("ids[", i, "] '", ids[i], "': not in collection '",
                                            collection.name(), "'"));
  };
  if (call.scope != nullptr && !valid.empty()) {
    // An item outside the caller's scope is left alone and answered as an absent one.
    RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<store::StoredItem>> stored,
                             store_->GetItemsWithoutEmbeddings(collection.name(), valid));
    std::vector<std::string> own;
    std::vector<size_t> own_owner;
    for (size_t v = 0; v < valid.size(); ++v) {
      if (stored[v].has_value() &&
          filter::Evaluate(*call.scope, {stored[v]->attributes, stored[v]->created_ms,
                                         stored[v]->updated_ms})) {
        own.push_back(std::move(valid[v]));
        own_owner.push_back(owner[v]);
      } else {
        written.items[owner[v]].status = not_found(owner[v]);
      }
    }
    valid = std::move(own);
    owner = std::move(own_owner);
  }
  if (valid.empty()) return written;
  absl::StatusOr<store::DeleteResult> deleted;
  {
    ScopedStage timer(options_.stage_observer, Stage::kStore, static_cast<int>(valid.size()));
    deleted = store_->DeleteItems(collection.name(), valid);
  }
  RETRACE_RETURN_IF_ERROR(deleted.status());
  written.position = deleted->position;
  std::vector<size_t> removed;
  for (size_t v = 0; v < valid.size(); ++v) {
    const size_t i = owner[v];
    if (deleted->present[v]) {
      removed.push_back(i);
    } else {
      written.items[i].status = not_found(i);
    }
  }
  if (!removed.empty()) {
    absl::Status applied = AwaitApplied(collection, written.position, ack_deadline);
    if (!applied.ok()) {
      for (size_t i : removed) {
        written.items[i].status = Prefixed(
            absl::UnavailableError(absl::StrCat(
                "deleted from the store, but it may still be found in searches here until this "
                "replica applies the deletion: ",
                applied.message())),
            absl::StrCat("ids[", i, "] '", ids[i], "'"));
      }
    }
  }
  return written;
}

}  // namespace retrace::engine
