// search.cc — Searcher: CAPTION_MATCH, PROVENANCE and HYBRID, and Get.
//
// PROVENANCE, step by step (CS-SLIP paper, section III):
//   1. The query becomes an image-space vector (image_space.h): an image through the image
//      encoder and CLIP; a text through CLIP's text tower, placed in the CLIP part (so S is its
//      CLIP text-image similarity); an embedding as given.
//   2. The image index gives N candidates. S is then recomputed exactly from the stored
//      embeddings, so an approximate index (PQ, HNSW) only chooses the candidates.
//   3. P ranks the candidates' captions for the query's CLIP embedding; P' ranks their CLIP
//      image embeddings for Q_t's CLIP text embedding; core/search/rerank.h orders them.
// Q_t is the request's query_caption, else the text query itself, else (for an image) a caption
// from the server's captioner, written only when its term can count (w2 > 0).
//
// A stored item as the query (SearchQuery::Kind::kItem) stands for its image with what was
// computed from that image at ingest: its CLIP image embedding, its image-space vector, and its
// caption with that caption's CLIP text embedding as Q_t. So it runs no model, and its answer is
// the image query's. The item is read through Get (what the caller may read), and is left out
// of the hits by asking the index for one more and dropping it.
//
// A filter is evaluated once per search on the item table (ItemTable::Match) and applied inside
// every index search (index::SearchFilter), so each mode ranks passing items only: PROVENANCE
// takes its N candidates among them, HYBRID fuses two rankings of them. Hits are checked again
// against the attributes they are shown with (the table's, or the store's for candidates), so an
// item changed since the match cannot slip through. min_score then cuts the top_k's tail.
//
// CAPTION_TEXT and HYBRID's lexical ranking come from the store's full-text index, not from an
// index of this replica: LexicalRanking keeps what this replica holds and the filter passes
// (search.h's banner).
#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/engine/search.h"

#include "absl/strings/escaping.h"
#include "core/common/utf8.h"
#include "core/engine/image_space.h"
#include "core/engine/internal/item_record.h"
#include "core/engine/internal/prefixed.h"
#include "core/engine/validation.h"
#include "core/filter/filter.h"
#include "core/filter/scope.h"
#include "core/image/decode.h"
#include "core/search/inner_product.h"
#include "core/search/rank_fusion.h"
#include "core/search/rerank.h"
#include "core/store/caption_terms.h"

namespace retrace::engine {

using internal::AllFinite;
using internal::Prefixed;

struct Searcher::ProvenanceQuery {
  std::vector<float> image_space;     // searched in the image index
  // The query's CLIP embedding: vs the candidates' captions (P) and, in HYBRID, the caption
  // space. Empty for an embedding query whose CLIP part is zero.
  std::vector<float> clip_probe;
  std::vector<float> caption_vector;  // Q_t's CLIP text embedding vs their images (P'); same
  std::string query_caption;          // Q_t
};

namespace {

// CutBelowMinScore drops the hits scoring below the query's min_score (a tail: hits are sorted
// by score) and counts them.
void CutBelowMinScore(const SearchQuery& query, SearchResult& result) {
  if (!query.min_score.has_value()) return;
  const size_t before = result.hits.size();
  result.hits.erase(std::remove_if(result.hits.begin(), result.hits.end(),
                                   [&](const SearchHit& hit) { return hit.score < *query.min_score; }),
                    result.hits.end());
  result.cut_by_min_score = static_cast<int64_t>(before - result.hits.size());
}

// CheckedEmbedding validates a raw query vector of `dim` and returns it normalised.
absl::StatusOr<std::vector<float>> CheckedEmbedding(const std::vector<float>& values, int dim,
                                                    const std::string& collection,
                                                    absl::string_view what) {
  if (values.size() != static_cast<size_t>(dim)) {
    return absl::InvalidArgumentError(absl::StrCat("embedding: ", values.size(),
                                                   " values, but collection '", collection,
                                                   "' has ", what, " ", dim));
  }
  std::vector<float> v = values;
  if (!AllFinite(v.data(), v.size())) {
    return absl::InvalidArgumentError("embedding: values must be finite");
  }
  if (models::L2Normalize(v.data(), v.size()) == 0) {
    return absl::InvalidArgumentError("embedding: all values are zero");
  }
  return v;
}

// ToSearchHit: a space's hit as Search shows it.
SearchHit ToSearchHit(SpaceHit hit) {
  SearchHit out;
  out.id = std::move(hit.item.id);
  out.score = hit.score;
  out.caption = std::move(hit.item.caption);
  out.attributes = std::move(hit.item.attributes);
  return out;
}

}  // namespace

Searcher::Searcher(Options options, Batchers* batchers, SpaceSearcher* spaces,
                   const store::ItemStore* store)
    : options_(std::move(options)), batchers_(batchers), spaces_(spaces), store_(store) {}

absl::StatusOr<std::vector<float>> Searcher::CaptionMatchQuery(
    const store::CollectionRecord& record, const SearchQuery& query, const ItemRecord* query_item,
    const ModelCall& call) {
  switch (query.kind) {
    case SearchQuery::Kind::kItem:
      return query_item->clip_image;  // stored L2-normalised, as the image tower gives it
    case SearchQuery::Kind::kImage: {
      absl::StatusOr<image::Image> image;
      {
        ScopedStage timer(options_.stage_observer, Stage::kDecode, 1);
        image = image::DecodeImage(query.image, options_.limits.decode);
      }
      if (!image.ok()) return Prefixed(image.status(), "image");
      RETRACE_ASSIGN_OR_RETURN(models::EmbeddingMatrix m, batchers_->EncodeImages({&*image}, call));
      return m.RowVector(0);
    }
    case SearchQuery::Kind::kText: {
      RETRACE_RETURN_IF_ERROR(ValidateText(query.text, options_.limits));
      RETRACE_ASSIGN_OR_RETURN(models::EmbeddingMatrix m, batchers_->EncodeTexts({query.text}, call));
      return m.RowVector(0);
    }
    case SearchQuery::Kind::kEmbedding:
      return CheckedEmbedding(query.embedding, record.caption_dim, record.name, "caption_dim");
  }
  return absl::InvalidArgumentError("query: one of image, text, embedding or item_id is required");
}

absl::StatusOr<Searcher::ProvenanceQuery> Searcher::MakeProvenanceQuery(
    const store::CollectionRecord& record, const SearchQuery& query, const ItemRecord* query_item,
    const ModelCall& call) {
  const ProvenanceOptions& options = query.provenance;
  const bool encoder = HasImageEncoder(record);
  const size_t clip_dim = static_cast<size_t>(record.caption_dim);
  ProvenanceQuery pq;
  pq.query_caption = query.query_caption;
  switch (query.kind) {
    case SearchQuery::Kind::kImage: {
      absl::StatusOr<image::Image> image;
      {
        ScopedStage timer(options_.stage_observer, Stage::kDecode, 1);
        image = image::DecodeImage(query.image, options_.limits.decode);
      }
      if (!image.ok()) return Prefixed(image.status(), "image");
      // CLIP image, the image encoder and (when re-ranking needs it) the captioner overlap; their
      // errors are checked in the order they used to run in, so a call fails as it did.
      ImageCalls calls;
      calls.clip_image = true;
      calls.features = encoder;
      const bool caption = pq.query_caption.empty() && options.rerank && options.w2 > 0;
      if (caption) {
        calls.caption_options = &options_.caption;
        calls.caption_images = {&*image};
      }
      ImageResults done = batchers_->RunImageCalls({&*image}, calls, call);
      RETRACE_RETURN_IF_ERROR(done.clip_image.status());
      RETRACE_RETURN_IF_ERROR(done.features.status());
      std::vector<float> features;
      if (encoder) features = done.features->RowVector(0);
      pq.clip_probe = done.clip_image->RowVector(0);
      RETRACE_ASSIGN_OR_RETURN(pq.image_space, ImageSpaceVector(record, features, pq.clip_probe));
      if (caption) {
        RETRACE_RETURN_IF_ERROR(done.captions.status());
        pq.query_caption = (*done.captions)[0];
      }
      break;
    }
    case SearchQuery::Kind::kText: {
      RETRACE_RETURN_IF_ERROR(ValidateText(query.text, options_.limits));
      RETRACE_ASSIGN_OR_RETURN(models::EmbeddingMatrix t, batchers_->EncodeTexts({query.text}, call));
      pq.clip_probe = t.RowVector(0);
      // [0, sqrt(2) t] against [e, c] / sqrt(2) is exactly t . c: CLIP's text-image similarity.
      pq.image_space.assign(record.image_dim - clip_dim, 0.f);
      const float scale = encoder ? static_cast<float>(std::sqrt(2.0)) : 1.f;
      for (float x : pq.clip_probe) pq.image_space.push_back(x * scale);
      if (pq.query_caption.empty()) pq.query_caption = query.text;
      break;
    }
    case SearchQuery::Kind::kEmbedding: {
      RETRACE_ASSIGN_OR_RETURN(pq.image_space,
                               CheckedEmbedding(query.embedding, record.image_dim, record.name,
                                                "image_dim (the image space's dimension)"));
      // Its CLIP part is a CLIP image embedding: the probe for P.
      pq.clip_probe.assign(pq.image_space.end() - clip_dim, pq.image_space.end());
      if (models::L2Normalize(pq.clip_probe.data(), clip_dim) == 0) pq.clip_probe.clear();
      if (pq.query_caption.empty() && options.rerank && options.w2 > 0) {
        return absl::InvalidArgumentError(
            "query_caption: required for an embedding query when re-ranking with w2 > 0 (there "
            "is no image to caption); give the query's caption, or set provenance.w2 to 0");
      }
      break;
    }
    case SearchQuery::Kind::kItem: {
      pq.clip_probe = query_item->clip_image;
      RETRACE_ASSIGN_OR_RETURN(pq.image_space, ImageSpaceVector(record, query_item->image_features,
                                                                query_item->clip_image));
      // The stored caption is the one an image query would have captioned (or the one given at
      // ingest), and its CLIP text embedding is stored with it.
      if (pq.query_caption.empty() && options.rerank && options.w2 > 0) {
        pq.query_caption = query_item->caption;
        pq.caption_vector = query_item->caption_text;
        return pq;
      }
      break;
    }
  }
  if (options.rerank && !pq.query_caption.empty()) {
    RETRACE_ASSIGN_OR_RETURN(models::EmbeddingMatrix t,
                             batchers_->EncodeTexts({pq.query_caption}, call));
    pq.caption_vector = t.RowVector(0);
  }
  return pq;
}

absl::StatusOr<std::vector<SearchHit>> Searcher::ProvenanceRanking(
    const store::CollectionRecord& record, const SearchQuery& query, const ProvenanceQuery& pq,
    std::vector<SpaceHit> found) {
  ScopedStage rerank_timer(options_.stage_observer, Stage::kRerank,
                           static_cast<int>(found.size()));
  std::vector<ItemRecord> candidates;
  std::vector<float> base, caption_scores, image_scores;
  candidates.reserve(found.size());
  for (SpaceHit& hit : found) {
    ItemRecord& item = hit.item;
    // S recomputed from the stored embeddings: exact whatever the index type. They come from
    // the indexes or the store (space_search.h, EmbeddedHitsFromIndexes: S and P are the same
    // bits either way, P' may differ in its last bits); from the indexes with the image-space
    // vector itself.
    std::vector<float> built;
    if (hit.image_space.empty()) {
      RETRACE_ASSIGN_OR_RETURN(built,
                               ImageSpaceVector(record, item.image_features, item.clip_image));
    }
    base.push_back(
        search::InnerProduct(pq.image_space, hit.image_space.empty() ? built : hit.image_space));
    if (query.provenance.rerank && !pq.clip_probe.empty()) {
      caption_scores.push_back(search::InnerProduct(pq.clip_probe, item.caption_text));
    }
    if (!pq.caption_vector.empty()) {
      image_scores.push_back(search::InnerProduct(pq.caption_vector, item.clip_image));
    }
    candidates.push_back(std::move(item));
  }
  search::RerankParams params{query.provenance.beta, query.provenance.w1, query.provenance.w2};
  const std::vector<search::Reranked> order =
      query.provenance.rerank ? search::Rerank(base, caption_scores, image_scores, params)
                              : search::BaseOrder(base);
  std::vector<SearchHit> hits;
  hits.reserve(order.size());
  for (const search::Reranked& r : order) {
    ItemRecord& item = candidates[r.candidate];
    SearchHit hit;
    hit.id = std::move(item.id);
    hit.score = r.score;
    hit.caption = std::move(item.caption);
    hit.attributes = std::move(item.attributes);
    hit.provenance = ProvenanceParts{r.base_score, r.caption_rank, r.image_rank, r.score};
    hits.push_back(std::move(hit));
  }
  return hits;
}

absl::StatusOr<std::vector<std::optional<ItemTable::Entry>>> Searcher::Lookup(
    const LiveCollection& collection, const std::vector<std::string>& ids) {
  if (collection.holds_indexes()) return collection.Indexes()->items->Get(ids);
  // A frontend holds no item table: the store is what it knows.
  RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<store::StoredItem>> stored,
                           store_->GetItemsWithoutEmbeddings(collection.name(), ids));
  std::vector<std::optional<ItemTable::Entry>> entries(stored.size());
  for (size_t i = 0; i < stored.size(); ++i) {
    if (!stored[i].has_value()) continue;
    entries[i] = ItemTable::Entry{std::move(stored[i]->caption), std::move(stored[i]->attributes),
                                  stored[i]->created_ms, stored[i]->updated_ms};
  }
  return entries;
}

absl::StatusOr<std::vector<SearchHit>> Searcher::LexicalRanking(
    const LiveCollection& collection, absl::string_view text, int depth,
    const std::optional<filter::Filter>& filter) {
  const std::vector<std::string> terms = store::CaptionTerms(text);
  int fetch = std::min(depth * defaults::kLexicalOverfetch, defaults::kMaxLexicalFetch);
  std::vector<SearchHit> hits;
  while (true) {
    RETRACE_ASSIGN_OR_RETURN(std::vector<store::CaptionMatch> matches,
                             store_->SearchCaptions(collection.name(), terms, fetch));
    std::vector<std::string> ids;
    ids.reserve(matches.size());
    for (const store::CaptionMatch& m : matches) ids.push_back(m.id);
    RETRACE_ASSIGN_OR_RETURN(std::vector<std::optional<ItemTable::Entry>> entries,
                             Lookup(collection, ids));
    hits.clear();
    for (size_t i = 0; i < matches.size() && hits.size() < static_cast<size_t>(depth); ++i) {
      // Absent: not applied here yet, or deleted here; failing: the filter cuts it.
      if (!entries[i].has_value()) continue;
      if (filter.has_value() &&
          !filter::Evaluate(*filter, {entries[i]->attributes, entries[i]->created_ms,
                                      entries[i]->updated_ms})) {
        continue;
      }
      SearchHit& hit = hits.emplace_back();
      hit.id = std::move(matches[i].id);
      hit.score = static_cast<float>(matches[i].score);
      hit.caption = std::move(entries[i]->caption);
      hit.attributes = std::move(entries[i]->attributes);
    }
    // Done when the ranking is full, the store has no more matches, or the bound is reached.
    if (hits.size() >= static_cast<size_t>(depth) || matches.size() < static_cast<size_t>(fetch) ||
        fetch >= defaults::kMaxLexicalFetch) {
      return hits;
    }
    fetch = std::min(fetch * 2, defaults::kMaxLexicalFetch);
  }
}

absl::StatusOr<SearchResult> Searcher::Search(const LiveCollection& collection,
                                              const SearchQuery& request,
                                              const CallOptions& options) {
  RETRACE_RETURN_IF_ERROR(ValidateSearchQuery(request, options_.limits));
  // The request's filter AND the caller's scope: what every ranking below may see.
  SearchQuery scoped;
  if (options.scope != nullptr) {
    scoped = request;
    scoped.filter = filter::Restrict(request.filter, options.scope.get());
  }
  const SearchQuery& query = options.scope != nullptr ? scoped : request;
  if (query.kind != SearchQuery::Kind::kItem) {
    RETRACE_ASSIGN_OR_RETURN(SearchResult result, Rank(collection, query, nullptr, options));
    CutBelowMinScore(query, result);
    return result;
  }
  RETRACE_ASSIGN_OR_RETURN(ItemRecord item,
                           QueryItem(collection, query.item_id, options.scope.get()));
  // The item would rank among its own hits (first, as a rule): rank one more, then drop it, so
  // the others fill top_k. The copy holds no image bytes.
  SearchQuery ranked = query;
  if (!query.include_self) ranked.top_k = query.top_k + 1;
  RETRACE_ASSIGN_OR_RETURN(SearchResult result, Rank(collection, ranked, &item, options));
  if (!query.include_self) {
    result.hits.erase(std::remove_if(result.hits.begin(), result.hits.end(),
                                     [&](const SearchHit& hit) { return hit.id == item.id; }),
                      result.hits.end());
  }
  if (result.hits.size() > static_cast<size_t>(query.top_k)) result.hits.resize(query.top_k);
  CutBelowMinScore(query, result);
  return result;
}

absl::StatusOr<ItemRecord> Searcher::QueryItem(const LiveCollection& collection,
                                               const std::string& id,
                                               const filter::Filter* scope) {
  absl::Status valid = ValidateId(id, options_.limits);
  if (!valid.ok()) return Prefixed(valid, "query.item_id");
  // Through Get, so that the query item is one the caller could read.
  RETRACE_ASSIGN_OR_RETURN(std::vector<GetResult> found,
                           Get(collection, {id}, GetFields{/*embeddings=*/true}, scope));
  if (!found[0].status.ok()) {
    // INVALID_ARGUMENT, not NOT_FOUND: the request names a query that does not exist, and
    // the answer is the same whether the item is absent or only hidden from the caller.
    return absl::InvalidArgumentError(absl::StrCat("query.item_id: '", id,
                                                   "' is not in collection '",
                                                   collection.name(), "'"));
  }
  found[0].item.id = id;
  return std::move(found[0].item);
}

absl::StatusOr<SearchResult> Searcher::Rank(const LiveCollection& collection,
                                            const SearchQuery& query, const ItemRecord* query_item,
                                            const CallOptions& options) {
  const ModelCall call{options.search_lane, options.deadline};
  const store::CollectionRecord& record = collection.record();
  SearchResult result;
  // CAPTION_TEXT searches no vector index: it applies the filter to the store's matches.
  if (query.mode == SearchMode::kCaptionText) {
    if (collection.holds_indexes()) {
      result.applied_position = collection.applied();
    } else {
      // A frontend ranks and shows from the store alone: it is as new as the store, read first.
      RETRACE_ASSIGN_OR_RETURN(result.applied_position, store_->LastPosition());
    }
    RETRACE_ASSIGN_OR_RETURN(result.hits,
                             LexicalRanking(collection, query.text, query.top_k, query.filter));
    return result;  // Search cuts below min_score
  }
  auto searched = [&result](SpaceResult& r) {
    result.applied_position = r.applied_position;
    result.missing_shards = std::move(r.missing_shards);
  };

  if (query.mode == SearchMode::kCaptionMatch) {
    RETRACE_ASSIGN_OR_RETURN(std::vector<float> q,
                             CaptionMatchQuery(record, query, query_item, call));
    RETRACE_ASSIGN_OR_RETURN(
        SpaceResult found,
        spaces_->Search(collection, {{Space::kCaption, std::move(q), query.top_k}}, query.filter,
                        options, query.allow_partial));
    searched(found);
    for (SpaceHit& hit : found.hits[0]) result.hits.push_back(ToSearchHit(std::move(hit)));
    return result;
  }

  RETRACE_ASSIGN_OR_RETURN(ProvenanceQuery pq,
                           MakeProvenanceQuery(record, query, query_item, call));
  result.query_caption = pq.query_caption;
  // HYBRID takes both rankings to the same depth, so that with top_k > N every hit can have a
  // provenance rank (retrace.proto's HYBRID); PROVENANCE re-ranks exactly N candidates.
  const int depth = query.mode == SearchMode::kHybrid
                        ? std::max(query.top_k, query.provenance.candidates)
                        : query.provenance.candidates;
  // The image space's candidates, with the embeddings re-ranking needs; and for HYBRID the
  // Caption-Matching ranking of the same query (its CLIP embedding against the captions), in
  // the same call (one round trip to each shard server in a cluster).
  std::vector<SpaceQuery> spaces = {{Space::kImage, pq.image_space, depth, true}};
  const bool caption_ranking = query.mode == SearchMode::kHybrid && !pq.clip_probe.empty();
  if (caption_ranking) spaces.push_back({Space::kCaption, pq.clip_probe, depth});
  RETRACE_ASSIGN_OR_RETURN(SpaceResult found, spaces_->Search(collection, spaces, query.filter,
                                                              options, query.allow_partial));
  searched(found);
  RETRACE_ASSIGN_OR_RETURN(std::vector<SearchHit> provenance,
                           ProvenanceRanking(record, query, pq, std::move(found.hits[0])));
  if (query.mode == SearchMode::kProvenance) {
    if (provenance.size() > static_cast<size_t>(query.top_k)) provenance.resize(query.top_k);
    result.hits = std::move(provenance);
    return result;
  }

  // HYBRID: the two rankings, and with `lexical` the third (the query's words against the
  // captions), fused by rank.
  std::vector<SearchHit> caption_match;
  if (caption_ranking) {
    for (SpaceHit& hit : found.hits[1]) caption_match.push_back(ToSearchHit(std::move(hit)));
  }
  std::vector<SearchHit> lexical;
  if (query.lexical) {
    const std::optional<LexicalText> text = LexicalQueryText(query);  // validated: present
    RETRACE_ASSIGN_OR_RETURN(lexical, LexicalRanking(collection, text->text, depth, query.filter));
  }
  std::vector<std::vector<std::string>> rankings(query.lexical ? 3 : 2);
  for (const SearchHit& hit : caption_match) rankings[0].push_back(hit.id);
  for (const SearchHit& hit : provenance) rankings[1].push_back(hit.id);
  for (const SearchHit& hit : lexical) rankings[2].push_back(hit.id);
  std::vector<search::FusedHit> fused = search::ReciprocalRankFusion(rankings, query.rrf_k);
  if (fused.size() > static_cast<size_t>(query.top_k)) fused.resize(query.top_k);
  result.hits.reserve(fused.size());
  for (search::FusedHit& f : fused) {
    // Shown as the ranking that holds it shows it: the provenance candidate (with its parts),
    // else the Caption-Matching hit, else the lexical one.
    SearchHit hit;
    if (f.ranks[1] >= 0) {
      hit = std::move(provenance[f.ranks[1]]);
    } else if (f.ranks[0] >= 0) {
      hit = caption_match[f.ranks[0]];
    } else {
      hit = lexical[f.ranks[2]];
    }
    hit.id = std::move(f.id);
    hit.score = f.score;
    HybridParts parts;
    parts.caption_match_rank = f.ranks[0];
    if (f.ranks[0] >= 0) parts.caption_match_score = caption_match[f.ranks[0]].score;
    parts.provenance_rank = f.ranks[1];
    if (query.lexical && f.ranks[2] >= 0) {
      parts.lexical_rank = f.ranks[2];
      parts.lexical_score = lexical[f.ranks[2]].score;
    }
    hit.hybrid = parts;
    result.hits.push_back(std::move(hit));
  }
  return result;
}

absl::StatusOr<std::vector<GetResult>> Searcher::Get(const LiveCollection& collection,
                                                     const std::vector<std::string>& ids,
                                                     GetFields fields,
                                                     const filter::Filter* scope) {
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
                           fields.embeddings
                               ? store_->GetItems(collection.name(), valid)
                               : store_->GetItemsWithoutEmbeddings(collection.name(), valid));
  std::vector<std::optional<std::string>> thumbnails(valid.size());
  if (fields.thumbnail && collection.record().thumbnail_side > 0) {
    RETRACE_ASSIGN_OR_RETURN(thumbnails, store_->GetThumbnails(collection.name(), valid));
  }
  for (size_t v = 0; v < valid.size(); ++v) {
    GetResult& result = results[valid_owner[v]];
    // An item outside the caller's scope answers exactly as an absent one: never leak existence.
    if (!stored[v].has_value() ||
        (scope != nullptr &&
         !filter::Evaluate(*scope, {stored[v]->attributes, stored[v]->created_ms,
                                    stored[v]->updated_ms}))) {
      result.status = absl::NotFoundError(absl::StrCat("ids[", valid_owner[v], "] '", valid[v],
                                                       "': not in collection '",
                                                       collection.name(), "'"));
      continue;
    }
    // Embeddings only when asked: otherwise the store read none.
    result.item = internal::ToRecord(std::move(*stored[v]));
    if (thumbnails[v].has_value()) result.item.thumbnail = std::move(*thumbnails[v]);
  }
  return results;
}

}  // namespace retrace::engine
