// search.h — the read path: Search's three modes over one collection, and Get.
//
// CAPTION_MATCH (the Caption-Matching paper) scores the query's CLIP embedding (image tower for
// an image, text tower for a text, or a raw vector) against the captions' CLIP text embeddings.
// PROVENANCE (the CS-SLIP paper) takes N candidates from the image space and re-ranks them
// cross-modally (core/search/rerank.h); HYBRID fuses the two rankings (core/search/rank_fusion.h).
// Hits are shown from the collection's item table, in memory: a search reads the store only
// for PROVENANCE's candidate embeddings. search.cc walks through PROVENANCE step by step.
//
// Thread-safety: safe for concurrent use.
//
//   RETRACE_ASSIGN_OR_RETURN(SearchResult result, searcher.Search(*collection, query, call));
#ifndef RETRACE_CORE_ENGINE_SEARCH_H_
#define RETRACE_CORE_ENGINE_SEARCH_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/batchers.h"
#include "core/engine/engine_types.h"
#include "core/engine/live_collection.h"
#include "core/engine/stage_observer.h"
#include "core/store/item_store.h"

namespace retrace::engine {

class Searcher {
 public:
  struct Options {
    EngineLimits limits;
    models::CaptionOptions caption;  // for captioning an image query's Q_t
    StageObserver* stage_observer = nullptr;
  };
  // Not owned; must outlive this object.
  Searcher(Options options, Batchers* batchers, const store::ItemStore* store);

  // Search: see Engine::Search. REQUIRES: the collection is not refused. Fills every field of
  // the result but `stale`.
  absl::StatusOr<SearchResult> Search(const LiveCollection& collection, const SearchQuery& query,
                                      const CallOptions& call);
  // Get: see Engine::Get. An id whose stored item fails `scope` (null: none) is NOT_FOUND, as
  // an absent one.
  absl::StatusOr<std::vector<GetResult>> Get(const LiveCollection& collection,
                                             const std::vector<std::string>& ids,
                                             GetFields fields, const filter::Filter* scope);

 private:
  struct ProvenanceQuery;
  absl::StatusOr<std::vector<float>> CaptionMatchQuery(const store::CollectionRecord& record,
                                                       const SearchQuery& query,
                                                       const ModelCall& call);
  absl::StatusOr<ProvenanceQuery> MakeProvenanceQuery(const store::CollectionRecord& record,
                                                      const SearchQuery& query,
                                                      const ModelCall& call);
  // ProvenanceRanking: the top `depth` items of the image space, re-ranked (PROVENANCE passes
  // provenance.candidates; HYBRID max(top_k, candidates), the depth of both its rankings);
  // with a filter, only candidates whose stored attributes pass `passing`.
  absl::StatusOr<std::vector<SearchHit>> ProvenanceRanking(
      const LiveCollection& collection, const CollectionIndexes& indexes,
      const SearchQuery& query, const ProvenanceQuery& pq, int depth, const ModelCall& call,
      const index::SearchFilter* filter, const std::optional<filter::Filter>& passing);
  // Show fills hits' captions and attributes from the item table, except where shown[i]; drops
  // hits the table no longer holds (deleted since the index was searched) and, with a filter,
  // hits whose attributes there no longer pass it.
  static std::vector<SearchHit> Show(const ItemTable& table, std::vector<SearchHit> hits,
                                     const std::vector<bool>& shown,
                                     const std::optional<filter::Filter>& filter);

  const Options options_;
  Batchers* const batchers_;
  const store::ItemStore* const store_;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_SEARCH_H_
