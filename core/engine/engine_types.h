// engine_types.h — the plain request and result types of the Engine (core's API).
//
// These mirror the public API (proto/retrace/v1/retrace.proto) without protobuf: server/
// converts between them in one place. Bounds are in EngineLimits; defaults equal the proto's.
//
// Thread-safety: plain values.
#ifndef RETRACE_CORE_ENGINE_ENGINE_TYPES_H_
#define RETRACE_CORE_ENGINE_ENGINE_TYPES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/batching/dynamic_batcher.h"
#include "core/image/decode.h"

namespace retrace::engine {

// EngineLimits: the bound of every input (ServerConfig.limits; defaults documented there).
struct EngineLimits {
  image::DecodeLimits decode;            // bytes, pixels and side of one image
  int max_items_per_call = 64;           // images per Caption, items per Index, ids per Delete
  int max_top_k = 1000;
  size_t max_id_bytes = 512;
  size_t max_caption_bytes = 2048;
  size_t max_text_bytes = 2048;
  int max_attributes = 32;
  size_t max_attribute_key_bytes = 128;
  size_t max_attribute_value_bytes = 1024;
  int max_collections = 1000;
  int max_shards = 256;
  int max_candidates = 1000;             // ProvenanceOptions.candidates
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
  absl::Status status;  // OK: stored and searchable
  std::string caption;  // the caption stored
  bool unchanged = false;  // already stored with the same content; nothing was written
};

enum class SearchMode { kCaptionMatch, kProvenance, kHybrid };

// ProvenanceOptions: the candidate depth and re-ranking of PROVENANCE (and HYBRID); the
// formula is in core/search/rerank.h. Defaults equal the proto's.
struct ProvenanceOptions {
  int candidates = 100;  // N; 1..max_candidates
  float beta = 1.0f;     // finite, 0..kMaxRerankParam
  float w1 = 0.1f;       // finite, 0..kMaxRerankParam
  float w2 = 0.1f;       // finite, 0..kMaxRerankParam
  bool rerank = true;    // false: base-similarity order
};

inline constexpr float kMaxRerankParam = 100.0f;
inline constexpr int kDefaultRrfK = 60;
inline constexpr int kMaxRrfK = 10000;

struct SearchQuery {
  enum class Kind { kImage, kText, kEmbedding };
  Kind kind = Kind::kText;
  std::string image;               // kImage: encoded bytes
  std::string text;                // kText
  // kEmbedding: of the collection's caption_dim (CAPTION_MATCH) or image_dim (the others).
  std::vector<float> embedding;
  SearchMode mode = SearchMode::kCaptionMatch;
  int top_k = 10;                  // 1..max_top_k
  // PROVENANCE and HYBRID: Q_t (empty: the text query, or a caption of the image query).
  std::string query_caption;
  ProvenanceOptions provenance;
  int rrf_k = kDefaultRrfK;        // HYBRID; 1..kMaxRrfK
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
};

// ItemRecord: a stored item as Get returns it.
struct ItemRecord {
  std::string id;
  std::string caption;
  std::map<std::string, std::string> attributes;
  std::vector<float> clip_image;    // empty unless embeddings were asked for
  std::vector<float> caption_text;
  std::vector<float> image_features;  // empty without an image encoder
};

struct GetResult {
  absl::Status status;  // OK or NOT_FOUND
  ItemRecord item;
};

struct CollectionSpec {
  std::string name;
  int shards = 1;
  std::string caption_index = "Flat";
  std::string image_index = "Flat";
};

struct CollectionInfo {
  CollectionSpec spec;
  int64_t item_count = 0;
  int caption_dim = 0;
  std::string clip_model;
  std::string captioner_model;
  int image_dim = 0;
  std::string image_encoder_model;  // empty: the image space is CLIP's alone
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_ENGINE_TYPES_H_
