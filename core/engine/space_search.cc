#include "core/engine/space_search.h"

#include <cmath>
#include <cstring>
#include <utility>

#include "core/common/status_macros.h"
#include "core/engine/image_space.h"
#include "core/engine/internal/item_record.h"
#include "core/engine/internal/passing_filter.h"

namespace retrace::engine {
namespace {

bool Passes(const std::optional<filter::Filter>& filter,
            const std::map<std::string, std::string>& attributes, int64_t created_ms,
            int64_t updated_ms) {
  return !filter.has_value() || filter::Evaluate(*filter, {attributes, created_ms, updated_ms});
}

// Unscale recovers the n components x that ImageSpaceVector scaled by 1/sqrt(2) into v: for
// each, the float nearest v / factor (worked out in double), or when that one's product with
// the factor does not round to v again, a float up to 2 ulps either side of it that does. The
// factor is ImageSpaceVector's, written the same way; the caller checks the whole vector
// against ImageSpaceVector, so a drift between the two would send reads to the store, never
// give a wrong score. False when a component has no such x (not for a v ImageSpaceVector made).
bool Unscale(const float* v, size_t n, std::vector<float>& x) {
  const float half = static_cast<float>(1.0 / std::sqrt(2.0));
  const double inverse = 1.0 / static_cast<double>(half);
  x.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const float guess = static_cast<float>(static_cast<double>(v[i]) * inverse);
    x[i] = guess;
    if (guess * half == v[i]) continue;  // the common case: one multiply and a compare
    bool found = false;
    float up = guess, down = guess;
    for (int step = 0; step < 2 && !found; ++step) {
      up = std::nextafter(up, INFINITY);
      down = std::nextafter(down, -INFINITY);
      if (up * half == v[i]) {
        x[i] = up;
        found = true;
      } else if (down * half == v[i]) {
        x[i] = down;
        found = true;
      }
    }
    if (!found) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::optional<std::vector<SpaceHit>>> EmbeddedHitsFromIndexes(
    const store::CollectionRecord& record, const CollectionIndexes& indexes,
    const std::vector<index::IndexHit>& found, const std::optional<filter::Filter>& filter) {
  std::vector<std::string> ids;
  ids.reserve(found.size());
  for (const index::IndexHit& hit : found) ids.push_back(hit.id);
  // The table first, then the images, then the captions: the reverse of the order in which the
  // follower adds (captions, images, table), so an entry read here was in both indexes, and a
  // removal since shows as a miss in one of the three.
  std::vector<std::optional<ItemTable::Entry>> entries = indexes.items->Get(ids);
  const bool encoder = HasImageEncoder(record);
  const size_t image_dim = static_cast<size_t>(record.image_dim);
  const size_t clip_dim = static_cast<size_t>(record.caption_dim);
  // The hits still in the table and passing, with room for their vectors: the indexes copy
  // them straight in (no buffer of N vectors, whose fresh pages cost more than the copy).
  std::vector<SpaceHit> hits;
  hits.reserve(found.size());
  std::vector<std::string> kept;
  for (size_t i = 0; i < found.size(); ++i) {
    std::optional<ItemTable::Entry>& entry = entries[i];
    // Deleted, or changed to fail the filter, since the index was searched.
    if (!entry.has_value() ||
        !Passes(filter, entry->attributes, entry->created_ms, entry->updated_ms)) {
      continue;
    }
    SpaceHit& hit = hits.emplace_back();
    hit.score = found[i].score;
    ItemRecord& item = hit.item;
    item.id = ids[i];
    item.caption = std::move(entry->caption);
    item.attributes = std::move(entry->attributes);
    item.created_ms = entry->created_ms;
    item.updated_ms = entry->updated_ms;
    item.caption_text.resize(clip_dim);
    (encoder ? hit.image_space : item.clip_image).resize(image_dim);  // e_clip is v without one
    kept.push_back(std::move(ids[i]));
  }
  std::vector<float*> image_rows, caption_rows;
  image_rows.reserve(hits.size());
  caption_rows.reserve(hits.size());
  for (SpaceHit& hit : hits) {
    image_rows.push_back((encoder ? hit.image_space : hit.item.clip_image).data());
    caption_rows.push_back(hit.item.caption_text.data());
  }
  absl::StatusOr<std::vector<bool>> in_images = indexes.images->ReadVectors(kept, image_rows);
  if (absl::IsUnimplemented(in_images.status())) return std::nullopt;
  RETRACE_RETURN_IF_ERROR(in_images.status());
  absl::StatusOr<std::vector<bool>> in_captions = indexes.captions->ReadVectors(kept, caption_rows);
  if (absl::IsUnimplemented(in_captions.status())) return std::nullopt;
  RETRACE_RETURN_IF_ERROR(in_captions.status());

  size_t shown = 0;
  for (size_t h = 0; h < hits.size(); ++h) {
    if (!(*in_images)[h] || !(*in_captions)[h]) continue;  // removed from an index since
    SpaceHit& hit = hits[shown++];
    if (shown - 1 != h) hit = std::move(hits[h]);
    if (!encoder) continue;
    ItemRecord& item = hit.item;
    const float* v = hit.image_space.data();
    const size_t encoder_dim = image_dim - clip_dim;
    if (!Unscale(v, encoder_dim, item.image_features) ||
        !Unscale(v + encoder_dim, clip_dim, item.clip_image)) {
      return std::nullopt;
    }
    RETRACE_ASSIGN_OR_RETURN(std::vector<float> again,
                             ImageSpaceVector(record, item.image_features, item.clip_image));
    if (std::memcmp(again.data(), v, image_dim * sizeof(float)) != 0) return std::nullopt;
  }
  hits.resize(shown);
  return hits;
}

absl::StatusOr<std::vector<SpaceHit>> EmbeddedHitsFromStore(
    const store::ItemStore& store, const std::string& collection,
    std::vector<index::IndexHit> found, const std::optional<filter::Filter>& filter) {
  std::vector<std::string> ids;
  ids.reserve(found.size());
  for (const index::IndexHit& hit : found) ids.push_back(hit.id);
  RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<store::StoredItem>> stored,
                           store.GetItems(collection, ids));
  std::vector<SpaceHit> hits;
  hits.reserve(found.size());
  for (size_t i = 0; i < found.size(); ++i) {
    // Deleted, or changed to fail the filter, since the index was searched.
    if (!stored[i].has_value() ||
        !Passes(filter, stored[i]->attributes, stored[i]->created_ms, stored[i]->updated_ms)) {
      continue;
    }
    hits.push_back({internal::ToRecord(std::move(*stored[i])), found[i].score});
  }
  return hits;
}

absl::StatusOr<SpaceResult> LocalSpaces::Search(const LiveCollection& collection,
                                                const std::vector<SpaceQuery>& queries,
                                                const std::optional<filter::Filter>& filter,
                                                const CallOptions& call, bool /*allow_partial*/) {
  const ModelCall model_call{call.search_lane, call.deadline};
  SpaceResult result;
  // The position first: the indexes hold at least every change up to it.
  result.applied_position = collection.applied();
  const std::shared_ptr<CollectionIndexes> indexes = collection.Indexes();
  // The filter's passing ids, matched once for every index search of this call.
  ItemTable::Matched matched;
  index::SearchFilter search_filter;
  const index::SearchFilter* index_filter = nullptr;
  if (filter.has_value()) {
    matched = indexes->items->Match(*filter);
    search_filter = internal::PassingFilter(matched);
    index_filter = &search_filter;
  }
  result.hits.resize(queries.size());
  for (size_t q = 0; q < queries.size(); ++q) {
    const SpaceQuery& query = queries[q];
    const index::ShardedIndex& space =
        query.space == Space::kCaption ? *indexes->captions : *indexes->images;
    RETRACE_ASSIGN_OR_RETURN(
        std::vector<index::IndexHit> found,
        batchers_->Search(space, query.vector.data(), query.k, model_call, index_filter));
    std::vector<SpaceHit>& hits = result.hits[q];
    if (query.with_embeddings) {
      if (embeddings_ == EmbeddingSource::kIndexesWhenExact) {
        RETRACE_ASSIGN_OR_RETURN(
            std::optional<std::vector<SpaceHit>> read,
            EmbeddedHitsFromIndexes(collection.record(), *indexes, found, filter));
        if (read.has_value()) {
          hits = std::move(*read);
          continue;
        }
      }
      RETRACE_ASSIGN_OR_RETURN(hits, EmbeddedHitsFromStore(*store_, collection.name(),
                                                           std::move(found), filter));
      continue;
    }
    std::vector<std::string> ids;
    ids.reserve(found.size());
    for (const index::IndexHit& hit : found) ids.push_back(hit.id);
    hits.reserve(found.size());
    std::vector<std::optional<ItemTable::Entry>> entries = indexes->items->Get(ids);
    for (size_t i = 0; i < found.size(); ++i) {
      if (!entries[i].has_value() ||
          !Passes(filter, entries[i]->attributes, entries[i]->created_ms, entries[i]->updated_ms)) {
        continue;
      }
      SpaceHit& hit = hits.emplace_back();
      hit.score = found[i].score;
      hit.item.id = std::move(found[i].id);
      hit.item.caption = std::move(entries[i]->caption);
      hit.item.attributes = std::move(entries[i]->attributes);
      hit.item.created_ms = entries[i]->created_ms;
      hit.item.updated_ms = entries[i]->updated_ms;
    }
  }
  return result;
}

}  // namespace retrace::engine
