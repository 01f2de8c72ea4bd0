// shard.h — one shard of a ShardedIndex: a FAISS index keyed by int64 labels, the maps between
// the caller's string ids and those labels, and tombstones for index types that cannot remove.
//
// Labels are allocated from a per-shard counter and never reused, so a label names one version of
// one item. Index types whose FAISS implementation can remove (Flat) lose the old vector at once;
// the others (HNSW) keep it as a tombstone that Search filters out, over-fetching by the number
// of tombstones. When tombstones outnumber max(kCompactMinTombstones, live vectors) the shard is
// rebuilt from its live vectors, which bounds both the over-fetch and the dead memory. Search
// raises HNSW's efSearch to the fetch size, and cuts very large batches into blocks of queries so
// the FAISS result buffers stay under kSearchBufferEntries.
//
// Training: Create rejects index types that need training. The place for a later
// "train when enough vectors" step is Upsert: buffer rows until a threshold, train, then flush.
//
// Thread-safety: not thread-safe. ShardedIndex serialises the mutators and lets the const methods
// run concurrently (FAISS searches on one index may run concurrently).
//
//   RETRACE_ASSIGN_OR_RETURN(std::unique_ptr<Shard> shard, Shard::Create(32, "HNSW32"));
//   RETRACE_RETURN_IF_ERROR(shard->Upsert(ids, vectors, rows));
#ifndef RETRACE_CORE_INDEX_INTERNAL_SHARD_H_
#define RETRACE_CORE_INDEX_INTERNAL_SHARD_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace faiss {
struct Index;
}  // namespace faiss

namespace retrace::index::internal {

// ShardHit is one candidate of a shard's search. `id` points into the shard's own map and stays
// valid until the shard is next mutated.
struct ShardHit {
  float score;
  const std::string* id;
};

class Shard {
 public:
  // kCompactMinTombstones is the smallest tombstone count that can trigger a rebuild, so small
  // shards are not rebuilt on every removal.
  static constexpr size_t kCompactMinTombstones = 1024;
  // kSearchBufferEntries bounds one search's FAISS result buffers (12 bytes an entry, 48 MiB).
  static constexpr size_t kSearchBufferEntries = size_t{1} << 22;

  // Create builds an empty shard from a FAISS index_factory string with inner-product metric.
  // INVALID_ARGUMENT (message starts with "factory") when FAISS rejects the string, when it builds
  // an ID map itself (IDMap,...), a metric other than inner product, or a type that needs training.
  static absl::StatusOr<std::unique_ptr<Shard>> Create(int dim, const std::string& factory);

  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Upsert adds ids[r] with row r of `vectors` (dim floats each) for every r in `rows`, replacing
  // the vector of an id already present. REQUIRES: the ids named by `rows` are distinct and
  // non-empty and the rows finite (ShardedIndex validates). INTERNAL when FAISS fails; the shard
  // stays consistent, but may hold the call's effect for none, or only for the removal of the
  // previous versions.
  absl::Status Upsert(const std::vector<std::string>& ids, const float* vectors,
                      const std::vector<size_t>& rows);

  // Remove drops ids[r] for every r in `rows`; ids not present are ignored. Returns how many were
  // removed; INTERNAL when FAISS fails (nothing removed then).
  absl::StatusOr<size_t> Remove(const std::vector<std::string>& ids,
                                const std::vector<size_t>& rows);

  // Search returns, for each of n queries, up to k live hits of this shard, best first.
  // INTERNAL when FAISS fails.
  absl::StatusOr<std::vector<std::vector<ShardHit>>> Search(const float* queries, size_t n,
                                                            int k) const;

  // Contains reports whether `id` is live in this shard.
  bool Contains(std::string_view id) const;

  // size is the number of live vectors.
  size_t size() const { return label_of_.size(); }

  // tombstones is the number of dead vectors still held by the FAISS index.
  size_t tombstones() const { return tombstones_.size(); }

 private:
  Shard(int dim, std::string factory, std::unique_ptr<faiss::Index> index, bool can_remove);

  // DropLabels takes `labels` (live) out of the index, or tombstones them, and out of the maps.
  absl::Status DropLabels(const std::vector<int64_t>& labels);

  // MaybeCompact rebuilds the index from its live vectors when tombstones are too many. A failed
  // rebuild keeps the old index (still correct, only slower) and is retried after the next change.
  void MaybeCompact();

  const int dim_;
  const std::string factory_;
  std::unique_ptr<faiss::Index> index_;  // a faiss::IndexIDMap owning the factory's index
  const bool can_remove_;                // false: removals become tombstones
  int64_t next_label_ = 0;
  absl::flat_hash_map<std::string, int64_t> label_of_;  // live ids only
  absl::flat_hash_map<int64_t, std::string> id_of_;     // live labels only
  absl::flat_hash_set<int64_t> tombstones_;             // dead labels still in index_
};

}  // namespace retrace::index::internal

#endif  // RETRACE_CORE_INDEX_INTERNAL_SHARD_H_
