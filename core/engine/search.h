// search.h — the read path: Search's three modes over one collection, and Get.
//
// CAPTION_MATCH (the Caption-Matching paper) scores the query's CLIP embedding (image tower for
// an image, text tower for a text, or a raw vector) against the captions' CLIP text embeddings.
// PROVENANCE (the CS-SLIP paper) takes N candidates from the image space and re-ranks them
// cross-modally (core/search/rerank.h); HYBRID fuses the two rankings (core/search/rank_fusion.h),
// and, with `lexical`, a third. CAPTION_TEXT ranks by the captions' words: the store's full-text
// index (ItemStore::SearchCaptions) ranks, and the item table decides what may be a hit.
// The index searches go through a SpaceSearcher (space_search.h): this process's indexes, or on
// a frontend of a sharded cluster the shard servers'. Hits are shown from the item table, in
// memory: a search reads the store only for PROVENANCE's candidate embeddings and for lexical
// rankings (and, on a frontend, which has no item table, for the lexical hits' captions).
// search.cc walks through PROVENANCE step by step.
//
// Lexical consistency: a replica searches its indexes as of its applied position while the store
// may be ahead. A lexical ranking keeps only the store's matches that this replica's item table
// holds (so a hit is never an item it has not applied, or has deleted) and that pass the filter
// there, and asks the store for more while those cut it short (defaults.h, kLexicalOverfetch
// and kMaxLexicalFetch: past that bound a ranking may hold fewer items than pass). The scores
// are of the store's current captions, which for an item rewritten since the applied position
// may be newer than the caption the hit shows.
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
#include "absl/strings/string_view.h"
#include "core/engine/batchers.h"
#include "core/engine/engine_types.h"
#include "core/engine/live_collection.h"
#include "core/engine/space_search.h"
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
  Searcher(Options options, Batchers* batchers, SpaceSearcher* spaces,
           const store::ItemStore* store);

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
  // Rank: the search itself, before min_score's cut. `query_item`: the stored item of a kItem
  // query (its embeddings and caption), else null.
  absl::StatusOr<SearchResult> Rank(const LiveCollection& collection, const SearchQuery& query,
                                    const ItemRecord* query_item, const CallOptions& options);
  // QueryItem reads a kItem query's item, embeddings included, through Get; INVALID_ARGUMENT
  // naming query.item_id for a bad id or one Get does not find.
  // An item outside `scope` (the caller's; null: none) is as absent.
  absl::StatusOr<ItemRecord> QueryItem(const LiveCollection& collection, const std::string& id,
                                       const filter::Filter* scope);
  absl::StatusOr<std::vector<float>> CaptionMatchQuery(const store::CollectionRecord& record,
                                                       const SearchQuery& query,
                                                       const ItemRecord* query_item,
                                                       const ModelCall& call);
  absl::StatusOr<ProvenanceQuery> MakeProvenanceQuery(const store::CollectionRecord& record,
                                                      const SearchQuery& query,
                                                      const ItemRecord* query_item,
                                                      const ModelCall& call);
  // ProvenanceRanking re-ranks the image space's candidates (hits with their embeddings).
  absl::StatusOr<std::vector<SearchHit>> ProvenanceRanking(const store::CollectionRecord& record,
                                                           const SearchQuery& query,
                                                           const ProvenanceQuery& pq,
                                                           std::vector<SpaceHit> found);
  // LexicalRanking: the collection's items ranked by their captions' lexical relevance to
  // `text`, to `depth`, each one this process holds (Lookup) and (with a filter) passing it
  // there, shown from there; see the banner.
  absl::StatusOr<std::vector<SearchHit>> LexicalRanking(
      const LiveCollection& collection, absl::string_view text, int depth,
      const std::optional<filter::Filter>& filter);
  // Lookup: what a hit shows of each id, from the item table (a frontend: the store); absent
  // for an id not applied here, or deleted.
  absl::StatusOr<std::vector<std::optional<ItemTable::Entry>>> Lookup(
      const LiveCollection& collection, const std::vector<std::string>& ids);

  const Options options_;
  Batchers* const batchers_;
  SpaceSearcher* const spaces_;
  const store::ItemStore* const store_;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_SEARCH_H_
