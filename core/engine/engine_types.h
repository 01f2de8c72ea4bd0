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
#include <string>
#include <vector>

#include "absl/status/status.h"
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

struct SearchQuery {
  enum class Kind { kImage, kText, kEmbedding };
  Kind kind = Kind::kText;
  std::string image;               // kImage: encoded bytes
  std::string text;                // kText
  std::vector<float> embedding;    // kEmbedding: caption-space dimension
  SearchMode mode = SearchMode::kCaptionMatch;
  int top_k = 10;                  // 1..max_top_k
};

struct SearchHit {
  std::string id;
  float score = 0;
  std::string caption;
  std::map<std::string, std::string> attributes;
};

// ItemRecord: a stored item as Get returns it.
struct ItemRecord {
  std::string id;
  std::string caption;
  std::map<std::string, std::string> attributes;
  std::vector<float> clip_image;    // empty unless embeddings were asked for
  std::vector<float> caption_text;
};

struct GetResult {
  absl::Status status;  // OK or NOT_FOUND
  ItemRecord item;
};

struct CollectionSpec {
  std::string name;
  int shards = 1;
  std::string caption_index = "Flat";
};

struct CollectionInfo {
  CollectionSpec spec;
  int64_t item_count = 0;
  int caption_dim = 0;
  std::string clip_model;
  std::string captioner_model;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_ENGINE_TYPES_H_
