// engine_types.h — the plain request and result types of the Engine (core's API).
//
// These mirror the public API (proto/retrace/v1/retrace.proto) without protobuf: server/
// converts between them in one place. Bounds are in EngineLimits; every default comes from
// defaults.h.
//
// Thread-safety: plain values.
#ifndef RETRACE_CORE_ENGINE_ENGINE_TYPES_H_
#define RETRACE_CORE_ENGINE_ENGINE_TYPES_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/batching/dynamic_batcher.h"
#include "core/engine/defaults.h"
#include "core/filter/filter.h"
#include "core/image/decode.h"

namespace retrace::engine {

// EngineLimits: the bound of every input (ServerConfig.limits; defaults documented there).
struct EngineLimits {
  image::DecodeLimits decode;            // bytes, pixels and side of one image
  int max_items_per_call = defaults::kMaxItemsPerCall;  // per Caption, Index, Delete or Get
  int max_top_k = defaults::kMaxTopK;
  size_t max_id_bytes = defaults::kMaxIdBytes;
  size_t max_caption_bytes = defaults::kMaxCaptionBytes;
  size_t max_text_bytes = defaults::kMaxTextBytes;
  int max_attributes = defaults::kMaxAttributes;
  size_t max_attribute_key_bytes = defaults::kMaxAttributeKeyBytes;
  size_t max_attribute_value_bytes = defaults::kMaxAttributeValueBytes;
  int max_collections = defaults::kMaxCollections;
  int max_shards = defaults::kMaxShards;
  int max_candidates = defaults::kMaxCandidates;  // ProvenanceOptions.candidates
  int max_filter_terms = defaults::kMaxFilterTerms;  // SearchQuery.filter
  int max_filter_depth = defaults::kMaxFilterDepth;
  int max_queries_per_call = defaults::kMaxQueriesPerCall;  // SearchBatch
  // The words of a lexical query (CAPTION_TEXT's text, HYBRID's lexical text), as
  // store::CaptionTerms counts them.
  int max_query_terms = defaults::kMaxQueryTerms;
};

// ReplicationOptions: how this process's indexes follow the store and report to it
// (ServerConfig.replication; defaults.h documents each).
struct ReplicationOptions {
  // This replica's id in the store's replica records, and where it serves (for operators).
  std::string replica_id;
  std::string address;
  absl::Duration ack_timeout = defaults::kAckTimeout;
  int64_t ready_max_lag = defaults::kReadyMaxLag;
  absl::Duration heartbeat_interval = defaults::kHeartbeatInterval;
  absl::Duration replica_expiry = defaults::kReplicaExpiry;
  absl::Duration poll_interval = defaults::kPollInterval;
  absl::Duration retry_min = defaults::kRetryMin;
  absl::Duration retry_max = defaults::kRetryMax;
  int change_page = defaults::kChangePage;
};

// BatchingOptions: dynamic batching of the model calls and index searches of concurrent engine
// calls (internal/batchers.h). Disabled, each call runs its model and search work itself.
// ServerConfig.batching documents the server's defaults.
struct BatchingOptions {
  bool enabled = true;
  batching::BatcherOptions clip_image, clip_text, image_encoder, captioner, search;
};

// CallOptions: what the caller knows about one engine call beyond its request.
struct CallOptions {
  // Work still queued for a model or the index at the deadline is dropped, and the call (or, in
  // Index, each item not yet embedded) fails with DEADLINE_EXCEEDED.
  absl::Time deadline = absl::InfiniteFuture();
  // Reads (Search, Get, DescribeCollection): answer only once this replica has applied every
  // change up to this store position (read your writes on any replica); DEADLINE_EXCEEDED if it
  // has not by the deadline. 0: no wait.
  int64_t min_position = 0;
  // Search: the batchers' lane of its model and index work. Bulk audits (SearchBatch) pass
  // kBulk, so that they queue behind interactive searches, as Index does.
  batching::Lane search_lane = batching::Lane::kInteractive;
  // The caller's mandatory filter (a tenant token's; filter/scope.h), null for none. Every item
  // the call reads, counts, deletes or overwrites must pass it, and what it cannot see answers
  // as if absent: Search and List rank and list only passing items, Get and Delete answer
  // NOT_FOUND for a failing id, DescribeCollection and ListCollections count passing items.
  // Index sets a conjunction of equalities on each item (or checks any other shape) and never
  // overwrites a stored item that fails it. REQUIRES: filter::Validate passed.
  std::shared_ptr<const filter::Filter> scope;
};

struct CaptionResult {
  absl::Status status;  // per image; INVALID_ARGUMENT for a bad image
  std::string caption;
};

struct IndexItem {
  std::string id;
  std::string image;    // encoded bytes
  std::string caption;  // empty: the captioner writes one
  std::map<std::string, std::string> attributes;
};

struct ItemResult {
  std::string id;
  absl::Status status;  // OK: stored (or deleted) and applied to this replica's index
  std::string caption;  // the caption stored
  bool unchanged = false;  // already stored with the same content; nothing was written
  // Index with a NearDuplicateCheck: the most similar other item at or above its threshold, and
  // the image-space cosine similarity; empty and 0 when none is.
  std::string near_duplicate_id;
  float near_duplicate_similarity = 0;
  bool skipped = false;  // not stored because it has one (NearDuplicateCheck::skip)
};

// NearDuplicateCheck: Index's search, per item, for the most similar item in the collection's
// image space or among the request's earlier stored items (IndexRequest.near_duplicate).
struct NearDuplicateCheck {
  float threshold = defaults::kNearDuplicateThreshold;  // kMinNearDuplicateThreshold..1
  bool skip = false;  // true: an item with a near-duplicate is not stored (ALREADY_EXISTS)
};

// WriteResult: the per-item results of an Index or Delete call, and the store position a read
// must ask for (CallOptions.min_position) to see every OK item of it on any replica: the
// write's commit, or the latest of the unchanged items' stored versions.
struct WriteResult {
  std::vector<ItemResult> items;
  int64_t position = 0;
};

// kCaptionText ranks items by their captions' lexical (full-text) relevance to a text query:
// ItemStore::SearchCaptions, intersected with this replica's item table (search.h).
enum class SearchMode { kCaptionMatch, kProvenance, kHybrid, kCaptionText };

// ProvenanceOptions: the candidate depth and re-ranking of PROVENANCE (and HYBRID); the
// formula is in core/search/rerank.h. Defaults equal the proto's.
struct ProvenanceOptions {
  int candidates = defaults::kCandidates;  // N; 1..max_candidates
  float beta = defaults::kBeta;            // finite, 0..kMaxRerankParam
  float w1 = defaults::kW1;                // finite, 0..kMaxRerankParam
  float w2 = defaults::kW2;                // finite, 0..kMaxRerankParam
  bool rerank = true;                      // false: base-similarity order
};

inline constexpr float kMaxRerankParam = 100.0f;
inline constexpr int kMaxRrfK = 10000;

struct SearchQuery {
  // kItem: a stored item's embeddings and caption stand for its image; no model runs.
  enum class Kind { kImage, kText, kEmbedding, kItem };
  Kind kind = Kind::kText;
  std::string image;               // kImage: encoded bytes
  std::string text;                // kText
  // kEmbedding: of the collection's caption_dim (CAPTION_MATCH) or image_dim (the others).
  std::vector<float> embedding;
  std::string item_id;             // kItem: the stored item's id
  // kItem: keep the query item among the hits; false leaves it out (the others fill top_k).
  bool include_self = false;
  SearchMode mode = SearchMode::kCaptionMatch;
  int top_k = defaults::kTopK;     // 1..max_top_k
  // PROVENANCE and HYBRID: Q_t (empty: the text query, or a caption of the image query).
  std::string query_caption;
  ProvenanceOptions provenance;
  int rrf_k = defaults::kRrfK;     // HYBRID; 1..kMaxRrfK
  // HYBRID: fuse a third ranking, the lexical one (as CAPTION_TEXT ranks), of the query's text:
  // the text query, else query_caption (one is required). Off: two rankings, as before.
  bool lexical = false;
  // Only items whose attributes satisfy it are ranked, in every mode (PROVENANCE re-ranks and
  // HYBRID fuses only passing candidates). Bounded by EngineLimits' max_filter_* and the
  // attribute key and value bounds.
  std::optional<filter::Filter> filter;
  // Hits scoring below it are cut from the top_k (SearchResult::cut_by_min_score counts them):
  // on S in CAPTION_MATCH (-1..1), on S' in PROVENANCE (-1..1 + w1 + w2), on the fused score in
  // HYBRID (0..1; 0..1.5 with lexical), on the store's lexical score in CAPTION_TEXT (>= 0).
  std::optional<float> min_score;
  // A frontend of a sharded cluster: answer without the shard groups that cannot be searched
  // (SearchResult::missing_shards lists their shards) instead of failing UNAVAILABLE.
  bool allow_partial = false;
};

// ProvenanceParts: a hit's S, P, P' and S' (ranks -1 when not scored).
struct ProvenanceParts {
  float base_score = 0;
  int caption_rank = -1;
  int image_rank = -1;
  float score = 0;
};

// HybridParts: a hit's place in each fused ranking, -1 where absent.
struct HybridParts {
  int caption_match_rank = -1;
  float caption_match_score = 0;
  int provenance_rank = -1;
  // The lexical ranking (SearchQuery::lexical): the hit's rank and the store's score there.
  int lexical_rank = -1;
  float lexical_score = 0;
};

struct SearchHit {
  std::string id;
  float score = 0;
  std::string caption;
  std::map<std::string, std::string> attributes;
  std::optional<ProvenanceParts> provenance;  // PROVENANCE, and HYBRID for candidates
  std::optional<HybridParts> hybrid;          // HYBRID
};

struct SearchResult {
  std::vector<SearchHit> hits;  // best first
  std::string query_caption;    // the Q_t re-ranking used; empty when none
  // The store position this replica's index of the collection had applied when searched.
  int64_t applied_position = 0;
  // True when this replica cannot reach the store now: the answer comes from its indexes as
  // of applied_position and may miss later writes.
  bool stale = false;
  // How many of the top_k hits SearchQuery::min_score cut (0 without one).
  int64_t cut_by_min_score = 0;
  // allow_partial: the collection's shards missing from the answer, ascending; else empty.
  std::vector<int> missing_shards;
};

// ItemRecord: a stored item as Get returns it.
struct ItemRecord {
  std::string id;
  std::string caption;
  std::map<std::string, std::string> attributes;
  std::vector<float> clip_image;    // empty unless embeddings were asked for
  std::vector<float> caption_text;
  std::vector<float> image_features;  // empty without an image encoder
  std::string thumbnail;  // JPEG; empty unless asked for and the collection keeps them
  // When the item was first stored and when this version was (ms since the Unix epoch).
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

// ListPage: one page of Engine::List.
struct ListPage {
  std::vector<ItemRecord> items;  // in id order
  std::string next_cursor;        // empty: the last page
};

// FilterDeleteResult: what Engine::DeleteMatching did.
struct FilterDeleteResult {
  int64_t matched = 0;   // items that satisfied the filter
  int64_t deleted = 0;   // of them, deleted by this call (0 in a dry run)
  int64_t position = 0;  // the last deletion's store position; 0 when none
};

// GetFields: what Get reads besides ids, captions and attributes.
struct GetFields {
  bool embeddings = false;
  bool thumbnail = false;
};

struct GetResult {
  absl::Status status;  // OK or NOT_FOUND
  ItemRecord item;
};

struct CollectionSpec {
  std::string name;
  int shards = defaults::kShards;
  std::string caption_index = defaults::kIndexFactory;
  std::string image_index = defaults::kIndexFactory;
  // The longest side of the JPEG kept per item for showing it, kMinThumbnailSide..
  // kMaxThumbnailSide; 0: none.
  int thumbnail_side = defaults::kThumbnailSide;
};

struct CollectionInfo {
  CollectionSpec spec;
  int64_t item_count = 0;
  int caption_dim = 0;
  std::string clip_model;
  std::string captioner_model;
  int image_dim = 0;
  std::string image_encoder_model;  // empty: the image space is CLIP's alone
  int64_t created_position = 0;
  // How far this replica's indexes have followed the store: every change up to
  // applied_position is applied; lag is the store's last position known here minus it.
  int64_t applied_position = 0;
  int64_t lag = 0;
  // Not OK while a change cannot be applied (it stays pending and is retried): the reason.
  absl::Status degraded;
};

// ReplicaStatus: one replica as the store records it (Engine::ClusterStatus).
struct ReplicaStatus {
  std::string replica;
  std::string address;
  absl::Time started;
  absl::Time heartbeat;  // the store's clock
  bool live = false;     // heartbeat within ReplicationOptions.replica_expiry
  struct Collection {
    std::string name;
    int64_t applied = 0;
    int64_t lag = 0;      // the store's last position minus applied
    int64_t resume = -1;  // the snapshot it would restart from; -1: none
  };
  std::vector<Collection> collections;
};

// ShardGroupStatus: one group of a frontend's shard map, each replica's health probed now.
struct ShardGroupStatus {
  int group = 0;
  struct Replica {
    std::string address;
    std::string health;  // SERVING, NOT_SERVING or UNREACHABLE: ...
  };
  std::vector<Replica> replicas;
};

struct ClusterStatus {
  std::string store;            // the store's description (never a password)
  int64_t last_position = 0;    // the store's
  std::vector<ReplicaStatus> replicas;
  std::vector<ShardGroupStatus> shard_groups;  // a frontend's shard map; else empty
};

// BatcherDepth: how many inputs wait in one batcher's lane (for metrics).
struct BatcherDepth {
  std::string batcher;
  batching::Lane lane;
  size_t depth;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_ENGINE_TYPES_H_
