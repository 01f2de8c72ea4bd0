#include "server/proto_convert.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

#include "server/filter_convert.h"
#include "server/status_mapping.h"

namespace retrace::server {

absl::StatusOr<engine::SearchQuery> FromProto(const v1::SearchRequest& request) {
  engine::SearchQuery query;
  switch (request.query_case()) {
    case v1::SearchRequest::kImage:
      query.kind = engine::SearchQuery::Kind::kImage;
      query.image = request.image();
      break;
    case v1::SearchRequest::kText:
      query.kind = engine::SearchQuery::Kind::kText;
      query.text = request.text();
      break;
    case v1::SearchRequest::kEmbedding:
      query.kind = engine::SearchQuery::Kind::kEmbedding;
      query.embedding.assign(request.embedding().values().begin(),
                             request.embedding().values().end());
      break;
    case v1::SearchRequest::kItemId:
      query.kind = engine::SearchQuery::Kind::kItem;
      query.item_id = request.item_id();
      break;
    default:
      return absl::InvalidArgumentError("query: set one of image, text, embedding or item_id");
  }
  switch (request.mode()) {
    case v1::SEARCH_MODE_UNSPECIFIED:
    case v1::CAPTION_MATCH: query.mode = engine::SearchMode::kCaptionMatch; break;
    case v1::PROVENANCE: query.mode = engine::SearchMode::kProvenance; break;
    case v1::HYBRID: query.mode = engine::SearchMode::kHybrid; break;
    case v1::CAPTION_TEXT: query.mode = engine::SearchMode::kCaptionText; break;
    default: return absl::InvalidArgumentError("mode: unknown search mode");
  }
  query.top_k = request.top_k() == 0 ? engine::defaults::kTopK : request.top_k();
  query.query_caption = request.query_caption();
  const v1::ProvenanceOptions& p = request.provenance();
  engine::ProvenanceOptions& options = query.provenance;
  if (p.candidates() != 0) options.candidates = p.candidates();
  if (p.has_beta()) options.beta = p.beta();
  if (p.has_w1()) options.w1 = p.w1();
  if (p.has_w2()) options.w2 = p.w2();
  options.rerank = !p.no_rerank();
  if (request.hybrid().rrf_k() != 0) query.rrf_k = request.hybrid().rrf_k();
  query.lexical = request.hybrid().lexical();
  if (request.has_filter()) {
    absl::StatusOr<filter::Filter> f = FilterFromProto(request.filter(), "filter");
    if (!f.ok()) return f.status();
    query.filter = *std::move(f);
  }
  if (request.has_min_score()) query.min_score = request.min_score();
  query.include_self = request.include_self();
  query.allow_partial = request.allow_partial();
  return query;
}

absl::StatusOr<std::optional<engine::NearDuplicateCheck>> NearDuplicateFromProto(
    const v1::wire::IndexRequestWire& request) {
  if (!request.has_near_duplicate()) return std::optional<engine::NearDuplicateCheck>();
  const v1::wire::NearDuplicateWire& wire = request.near_duplicate();
  engine::NearDuplicateCheck check;
  if (wire.threshold() != 0) check.threshold = wire.threshold();
  switch (wire.action()) {
    case v1::NearDuplicate::REPORT: break;
    case v1::NearDuplicate::SKIP: check.skip = true; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("near_duplicate.action: ", wire.action(), " is not REPORT or SKIP"));
  }
  return std::optional<engine::NearDuplicateCheck>(check);
}

std::vector<engine::IndexItem> FromProto(v1::wire::IndexRequestWire& request) {
  std::vector<engine::IndexItem> items;
  items.reserve(request.items_size());
  for (v1::wire::ItemWire& item : *request.mutable_items()) {
    engine::IndexItem out;
    out.id = item.id();
    out.image = std::move(*item.mutable_image());
    out.caption = item.caption();
    // As in a proto map, the last of repeated keys wins.
    for (const v1::wire::AttributeWire& a : item.attributes()) out.attributes[a.key()] = a.value();
    items.push_back(std::move(out));
  }
  return items;
}

engine::CollectionSpec FromProto(const v1::Collection& collection) {
  engine::CollectionSpec spec;
  spec.name = collection.name();
  if (collection.shards() != 0) spec.shards = collection.shards();
  if (!collection.caption_index().empty()) spec.caption_index = collection.caption_index();
  if (!collection.image_index().empty()) spec.image_index = collection.image_index();
  // 0: the default side; -1: none (the engine's 0); anything else is checked by the engine.
  if (collection.thumbnail_side() != 0) {
    spec.thumbnail_side = collection.thumbnail_side() == -1 ? 0 : collection.thumbnail_side();
  }
  return spec;
}

void ToProto(const engine::CollectionInfo& info, v1::Collection* out) {
  out->set_name(info.spec.name);
  out->set_shards(info.spec.shards);
  out->set_caption_index(info.spec.caption_index);
  out->set_item_count(info.item_count);
  out->set_caption_dim(info.caption_dim);
  out->set_clip_model(info.clip_model);
  out->set_captioner_model(info.captioner_model);
  out->set_image_index(info.spec.image_index);
  out->set_image_dim(info.image_dim);
  out->set_image_encoder_model(info.image_encoder_model);
  out->set_thumbnail_side(info.spec.thumbnail_side > 0 ? info.spec.thumbnail_side : -1);
  out->set_created_position(info.created_position);
  out->set_applied_position(info.applied_position);
  out->set_lag(info.lag);
  if (!info.degraded.ok()) out->set_degraded(std::string(info.degraded.message()));
}

void ToProto(const engine::SearchResult& result, v1::SearchResponse* out) {
  out->set_cut_by_min_score(result.cut_by_min_score);
  out->mutable_missing_shards()->Add(result.missing_shards.begin(), result.missing_shards.end());
  for (const engine::SearchHit& hit : result.hits) {
    v1::SearchHit* h = out->add_hits();
    h->set_id(hit.id);
    h->set_score(hit.score);
    h->set_caption(hit.caption);
    h->mutable_attributes()->insert(hit.attributes.begin(), hit.attributes.end());
    if (hit.provenance.has_value()) {
      v1::ProvenanceParts* p = h->mutable_provenance();
      p->set_base_score(hit.provenance->base_score);
      p->set_caption_rank(hit.provenance->caption_rank);
      p->set_image_rank(hit.provenance->image_rank);
      p->set_score(hit.provenance->score);
    }
    if (hit.hybrid.has_value()) {
      v1::HybridParts* p = h->mutable_hybrid();
      p->set_caption_match_rank(hit.hybrid->caption_match_rank);
      p->set_caption_match_score(hit.hybrid->caption_match_score);
      p->set_provenance_rank(hit.hybrid->provenance_rank);
      p->set_lexical_rank(hit.hybrid->lexical_rank);
      p->set_lexical_score(hit.hybrid->lexical_score);
    }
  }
  out->set_query_caption(result.query_caption);
  out->set_applied_position(result.applied_position);
  out->set_stale(result.stale);
}

void ToProto(const engine::WriteResult& written, v1::IndexResponse* out) {
  out->set_position(written.position);
  for (const engine::ItemResult& r : written.items) {
    v1::IndexResult* result = out->add_results();
    result->set_id(r.id);
    ToItemStatus(r.status, result->mutable_status());
    result->set_caption(r.caption);
    result->set_unchanged(r.unchanged);
    result->set_near_duplicate_id(r.near_duplicate_id);
    result->set_near_duplicate_similarity(r.near_duplicate_similarity);
    result->set_skipped(r.skipped);
  }
}

void ToProto(const engine::WriteResult& written, v1::DeleteResponse* out) {
  out->set_position(written.position);
  for (const engine::ItemResult& r : written.items) {
    v1::IndexResult* result = out->add_results();
    result->set_id(r.id);
    ToItemStatus(r.status, result->mutable_status());
  }
}

void ToProto(const std::vector<engine::CaptionResult>& results, v1::CaptionResponse* out) {
  for (const engine::CaptionResult& r : results) {
    v1::CaptionResult* result = out->add_results();
    ToItemStatus(r.status, result->mutable_status());
    result->set_caption(r.caption);
  }
}

void ToProto(const engine::ItemRecord& record, v1::StoredItem* item) {
  item->set_id(record.id);
  item->set_caption(record.caption);
  item->mutable_attributes()->insert(record.attributes.begin(), record.attributes.end());
  if (!record.clip_image.empty()) {
    item->mutable_clip_image()->mutable_values()->Add(record.clip_image.begin(),
                                                       record.clip_image.end());
    item->mutable_caption_text()->mutable_values()->Add(record.caption_text.begin(),
                                                         record.caption_text.end());
  }
  if (!record.thumbnail.empty()) item->set_thumbnail(record.thumbnail);
  if (!record.image_features.empty()) {
    item->mutable_image_features()->mutable_values()->Add(record.image_features.begin(),
                                                           record.image_features.end());
  }
  item->set_created_ms(record.created_ms);
  item->set_updated_ms(record.updated_ms);
}

void ToProto(const std::vector<engine::GetResult>& results, v1::GetResponse* out) {
  for (const engine::GetResult& r : results) {
    v1::GetResult* result = out->add_results();
    ToItemStatus(r.status, result->mutable_status());
    if (r.status.ok()) {
      ToProto(r.item, result->mutable_item());
    } else {
      result->mutable_item()->set_id(r.item.id);
    }
  }
}

void ToProto(const engine::ListPage& page, v1::ListResponse* out) {
  for (const engine::ItemRecord& item : page.items) ToProto(item, out->add_items());
  out->set_next_cursor(page.next_cursor);
}

void ToProto(const engine::ClusterStatus& status, v1::ClusterStatus* out) {
  out->set_store(status.store);
  out->set_last_position(status.last_position);
  for (const engine::ReplicaStatus& r : status.replicas) {
    v1::ReplicaStatus* replica = out->add_replicas();
    replica->set_replica(r.replica);
    replica->set_address(r.address);
    replica->set_started_unix_ms(absl::ToUnixMillis(r.started));
    replica->set_heartbeat_unix_ms(absl::ToUnixMillis(r.heartbeat));
    replica->set_live(r.live);
    for (const engine::ReplicaStatus::Collection& c : r.collections) {
      v1::ReplicaCollectionStatus* collection = replica->add_collections();
      collection->set_collection(c.name);
      collection->set_applied_position(c.applied);
      collection->set_lag(c.lag);
      collection->set_resume_position(c.resume);
    }
  }
  for (const engine::ShardGroupStatus& g : status.shard_groups) {
    v1::ShardGroupStatus* group = out->add_shard_groups();
    group->set_group(g.group);
    for (const engine::ShardGroupStatus::Replica& r : g.replicas) {
      v1::ShardReplicaStatus* replica = group->add_replicas();
      replica->set_address(r.address);
      replica->set_health(r.health);
    }
  }
}

models::CaptionOptions FromProto(const v1::CaptionOptions& options,
                                 const models::CaptionOptions& defaults) {
  models::CaptionOptions out = defaults;
  if (options.max_new_tokens() != 0) out.max_new_tokens = options.max_new_tokens();
  if (options.has_num_beams()) out.num_beams = options.num_beams();
  if (options.has_length_penalty()) out.length_penalty = options.length_penalty();
  if (options.has_min_new_tokens()) out.min_new_tokens = options.min_new_tokens();
  if (options.has_no_repeat_ngram_size()) out.no_repeat_ngram_size = options.no_repeat_ngram_size();
  if (options.has_repetition_penalty()) out.repetition_penalty = options.repetition_penalty();
  if (options.has_prompt()) out.prompt = options.prompt();
  return out;
}

}  // namespace retrace::server
