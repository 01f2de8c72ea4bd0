#include "core/engine/space_search.h"

#include <utility>

#include "core/common/status_macros.h"
#include "core/engine/internal/item_record.h"
#include "core/engine/internal/passing_filter.h"

namespace retrace::engine {
namespace {

bool Passes(const std::optional<filter::Filter>& filter,
            const std::map<std::string, std::string>& attributes, int64_t created_ms,
            int64_t updated_ms) {
  return !filter.has_value() || filter::Evaluate(*filter, {attributes, created_ms, updated_ms});
}

}  // namespace

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
    std::vector<std::string> ids;
    ids.reserve(found.size());
    for (const index::IndexHit& hit : found) ids.push_back(hit.id);
    std::vector<SpaceHit>& hits = result.hits[q];
    hits.reserve(found.size());
    if (query.with_embeddings) {
      // From the store: the embeddings are not kept in memory beside the indexes.
      RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<store::StoredItem>> stored,
                               store_->GetItems(collection.name(), ids));
      for (size_t i = 0; i < found.size(); ++i) {
        // Deleted, or changed to fail the filter, since the index was searched.
        if (!stored[i].has_value() ||
            !Passes(filter, stored[i]->attributes, stored[i]->created_ms, stored[i]->updated_ms)) {
          continue;
        }
        hits.push_back({internal::ToRecord(std::move(*stored[i])), found[i].score});
      }
      continue;
    }
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
