// sharded_index.h — one search space of one collection: vectors of one dimension, keyed by the
// caller's string ids, spread over shards by a stable hash, searched by inner product.
//
// Each shard is a FAISS index built from a factory string ("Flat", "HNSW32", ...). Callers
// L2-normalise vectors, so scores are cosine similarities. Search asks every shard for its top k
// and merges them exactly, so a sharded index answers as one unsharded index would (up to ties).
// Placement (ShardOf) is FNV-1a 64 of the id's bytes modulo the shard count: stable across
// processes, versions and machines, so shard files can be persisted and reloaded.
//
// Removal: Flat removes at once. Index types that cannot remove (HNSW) keep the old vector as a
// tombstone; Search over-fetches by the shard's tombstone count and filters them out, and a shard
// is rebuilt from its live vectors once its tombstones exceed max(1024, its live vectors), so the
// over-fetch and the dead memory stay bounded (amortised, a removal costs at most one re-insert).
// HNSW searches run with efSearch = max(16, k + tombstones): FAISS 1.7.3 otherwise stops after
// efSearch good candidates whatever k is, and deep searches would come back short.
//
// Parallelism: Search runs the shards on min(shards, hardware_concurrency) threads (std::async,
// started per call); FAISS adds OpenMP threads inside each shard search.
//
// Thread-safety: safe for concurrent use. Search, Contains and size share a reader lock; Add and
// Remove take it exclusively (a shard rebuild happens inside them, under that lock).
//
//   RETRACE_ASSIGN_OR_RETURN(auto index, ShardedIndex::Create(IndexOptions{512, 4, "HNSW32"}));
//   RETRACE_RETURN_IF_ERROR(index->Add(ids, vectors.data(), ids.size()));
#ifndef RETRACE_CORE_INDEX_SHARDED_INDEX_H_
#define RETRACE_CORE_INDEX_SHARDED_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace retrace::index {

namespace internal {
class Shard;
}  // namespace internal

// IndexOptions configures a ShardedIndex; fixed at creation.
struct IndexOptions {
  // dim is the vector dimension: 1..ShardedIndex::kMaxDim. Required (default 0 is rejected).
  int dim = 0;
  // shards is the number of shards: 1..ShardedIndex::kMaxShards. Default 1.
  int shards = 1;
  // factory is the FAISS index_factory string for every shard, built with inner-product metric.
  // Default "Flat" (exact). "HNSW<M>" and "HNSW<M>,Flat" work; types that need training (IVF*,
  // PQ*, ...) and strings naming an IDMap are rejected.
  std::string factory = "Flat";
};

// IndexHit is one search result: the caller's id and its inner product with the query.
struct IndexHit {
  std::string id;
  float score;
};

// ShardedIndex is a vector index keyed by string ids; see the banner.
class ShardedIndex {
 public:
  // kMaxDim bounds IndexOptions::dim.
  static constexpr int kMaxDim = 65536;
  // kMaxShards bounds IndexOptions::shards.
  static constexpr int kMaxShards = 256;
  // kMaxK bounds Search's k.
  static constexpr int kMaxK = 10000;
  // kMaxQueries bounds how many queries one Search call takes.
  static constexpr size_t kMaxQueries = 4096;
  // kMaxHitsPerSearch bounds n * k for one Search call (results and merge buffers scale with it).
  static constexpr size_t kMaxHitsPerSearch = size_t{1} << 20;

  // Create builds an empty index. INVALID_ARGUMENT naming the field for dim or shards out of
  // range, or for a factory string that FAISS rejects (quoting FAISS's message), that needs
  // training ("index 'IVF1024,PQ32' needs training, which is not supported yet; use Flat or
  // HNSW<M>"), that names an IDMap, or whose metric is not inner product.
  static absl::StatusOr<std::unique_ptr<ShardedIndex>> Create(const IndexOptions& options);

  ~ShardedIndex();
  ShardedIndex(const ShardedIndex&) = delete;
  ShardedIndex& operator=(const ShardedIndex&) = delete;

  // Add upserts n items: ids[i] gets row i of `vectors` (n * dim floats, row-major, not owned);
  // an id already present is replaced. n == 0 is a no-op. INVALID_ARGUMENT, with nothing changed,
  // when ids.size() != n, vectors is null while n > 0, an id is empty, an id appears twice in the
  // call (naming it and both positions) or a vector has a non-finite value (naming the item).
  // INTERNAL when FAISS fails; the index stays usable but may hold only part of the call (the
  // store is the source of truth: rebuild or retry, Add being idempotent).
  absl::Status Add(const std::vector<std::string>& ids, const float* vectors, size_t n);

  // Remove drops `ids`; ids not present (or repeated) are ignored. Returns how many items were
  // removed. INTERNAL when FAISS fails (shards already done keep their removals).
  absl::StatusOr<size_t> Remove(const std::vector<std::string>& ids);

  // Search returns, for each of n queries (n * dim floats, row-major, not owned), its top
  // min(k, size()) hits, best first (ties by id ascending), merged exactly across shards.
  // With a Flat factory results are exact; with HNSW they are approximate and may be fewer.
  // The n queries go to FAISS as one batch per shard; shards are searched in parallel on up to
  // hardware_concurrency threads. INVALID_ARGUMENT when k is outside 1..kMaxK, n exceeds
  // kMaxQueries, n * k exceeds kMaxHitsPerSearch, queries is null while n > 0, or a query has a
  // non-finite value. INTERNAL when FAISS fails.
  absl::StatusOr<std::vector<std::vector<IndexHit>>> Search(const float* queries, size_t n,
                                                            int k) const;

  // Contains reports whether `id` is present (added and not removed since).
  bool Contains(std::string_view id) const;

  // size is the number of live items.
  size_t size() const;

  // options returns the options the index was created with.
  const IndexOptions& options() const { return options_; }

  // ShardOf is the placement rule: FNV-1a 64 of id's bytes, modulo `shards`. Stable forever;
  // changing it orphans persisted shards. REQUIRES: shards >= 1 (values below are treated as 1).
  static uint32_t ShardOf(std::string_view id, int shards);

 private:
  ShardedIndex(IndexOptions options, std::vector<std::unique_ptr<internal::Shard>> shards);

  const IndexOptions options_;
  mutable absl::Mutex mu_;
  // One per IndexOptions::shards; the vector itself never changes size, its shards do.
  std::vector<std::unique_ptr<internal::Shard>> shards_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retrace::index

#endif  // RETRACE_CORE_INDEX_SHARDED_INDEX_H_
