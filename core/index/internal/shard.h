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
// Training: a shard whose factory index needs training (IVF, PQ, ...) starts "pending": it holds
// its vectors in an exact IndexFlatIP under the same labels. Train moves them into a copy of a
// trained prototype (ShardedIndex trains one prototype for all its shards). An IVF keeps labels
// itself (add_with_ids, remove_ids); every other type sits in a faiss::IndexIDMap, where an IVF
// nested deeper (IndexRefine) counts as unable to remove: its removals would renumber nothing and
// break the map. Rebuilds of a trained shard start from a clone of the prototype and re-add the
// vectors as the index reconstructs them (lossy for compressed codes, but not retrained).
//
// Snapshots: Serialize copies the state out as bytes (the FAISS index as write_index writes it,
// and the id map in the format below); Restore rebuilds a shard from them. A trained IVF shard
// restored from a file may keep its lists memory-mapped from it: Upsert and Remove copy them into
// memory first, and Serialize copies out the mapped file's bytes, which are the shard's state.
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

namespace retrace::index {
struct SearchFilter;
}  // namespace retrace::index

namespace retrace::index::internal {

// ShardHit is one candidate of a shard's search. `id` points into the shard's own map and stays
// valid until the shard is next mutated.
struct ShardHit {
  float score;
  const std::string* id;
};

// Shard is one shard; see the banner.
class Shard {
 public:
  // State is what index_ holds; its value is part of the snapshot format.
  enum class State : uint8_t {
    kPlain = 0,    // the factory's own index; it needs no training
    kPending = 1,  // an IndexFlatIP standing in until the factory's index is trained
    kTrained = 2,  // a copy of the trained prototype
  };

  // Image is a shard's state as bytes: `index` is faiss::write_index's output, `ids` the id map:
  //   "RTXIDS01"                                  8-byte magic
  //   u8 state                                    State
  //   i64 next_label
  //   u64 live count, then per live item:         i64 label, u64 length, the id's bytes
  //   u64 tombstone count, then per tombstone:    i64 label
  // All integers little-endian; ids are raw bytes (NUL and non-UTF-8 allowed).
  // For Restore, `index` may instead stay empty and `index_file` name a file holding those bytes:
  // Restore then reads it with the IVF lists memory-mapped (ShardedIndex's banner). Serialize
  // never sets index_file.
  struct Image {
    std::vector<uint8_t> index;
    std::string ids;
    std::string index_file;
  };

  // kCompactMinTombstones is the smallest tombstone count that can trigger a rebuild, so small
  // shards are not rebuilt on every removal.
  static constexpr size_t kCompactMinTombstones = 1024;
  // kSearchBufferEntries bounds one search's FAISS result buffers (12 bytes an entry, 48 MiB).
  static constexpr size_t kSearchBufferEntries = size_t{1} << 22;

  // Create builds an empty shard from a FAISS index_factory string with inner-product metric;
  // pending when the factory's index needs training. INVALID_ARGUMENT (message starts with
  // "factory") when FAISS rejects the string, when it builds an ID map itself (IDMap,...) or a
  // metric other than inner product.
  static absl::StatusOr<std::unique_ptr<Shard>> Create(int dim, const std::string& factory);

  // Restore rebuilds a shard from an Image that Serialize wrote for the same dim and factory.
  // `prototype` is the trained prototype, required when the image is trained (else ignored);
  // nprobe is applied to a trained IVF. DATA_LOSS with the reason when the bytes do not parse,
  // contradict each other or do not fit dim and factory.
  static absl::StatusOr<std::unique_ptr<Shard>> Restore(
      int dim, const std::string& factory, Image image,
      std::shared_ptr<const faiss::Index> prototype, int nprobe);

  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Upsert adds ids[r] with row r of `vectors` (dim floats each) for every r in `rows`, replacing
  // the vector of an id already present. REQUIRES: the ids named by `rows` are distinct and
  // non-empty and the rows finite (ShardedIndex validates). INTERNAL when FAISS fails; the shard
  // stays consistent, but may hold the call's effect for none, or only for the removal of the
  // previous versions. A shard with memory-mapped lists copies them into memory first (INTERNAL,
  // nothing changed, when that fails).
  absl::Status Upsert(const std::vector<std::string>& ids, const float* vectors,
                      const std::vector<size_t>& rows);

  // Remove drops ids[r] for every r in `rows`; ids not present are ignored. Returns how many were
  // removed; INTERNAL when FAISS fails (nothing removed then), or when copying memory-mapped lists
  // into memory, which a removal from a mapped shard does first, fails.
  absl::StatusOr<size_t> Remove(const std::vector<std::string>& ids,
                                const std::vector<size_t>& rows);

  // Search returns, for each of n queries, up to k live hits of this shard, best first (ties by
  // id with a filter). With a `filter` (not owned; null: none), only hits whose ids are in
  // filter->allowed (ShardedIndex's banner). INTERNAL when FAISS fails.
  absl::StatusOr<std::vector<std::vector<ShardHit>>> Search(
      const float* queries, size_t n, int k, const SearchFilter* filter = nullptr) const;

  // CopyLiveVectors writes the live vectors whose ordinals are listed (ascending, each below
  // size(); ordinals count live vectors in storage order) to `out`, one dim-float row each.
  // REQUIRES: state() == kPending. INTERNAL when FAISS fails.
  absl::Status CopyLiveVectors(const std::vector<size_t>& ordinals, float* out) const;

  // exact_vectors reports whether ReadVectors gives back the very floats Upsert was given: the
  // FAISS index keeps them as they are (Flat, HNSW over flat storage, a pending shard's
  // IndexFlatIP), under the shard's IndexIDMap. Compressed codes (SQ, PQ) reconstruct only
  // approximately, and an IVF that keeps labels itself has no direct map to reconstruct by
  // label: both say false.
  bool exact_vectors() const;

  // ReadVectors copies the stored vector of ids[r] to out[r] (dim floats) for each r in `rows`
  // whose id is live here, and sets found[r] to 1; other rows are left as they were. REQUIRES:
  // exact_vectors(); out and found cover every row. INTERNAL when FAISS fails.
  absl::Status ReadVectors(const std::vector<std::string>& ids, const std::vector<size_t>& rows,
                           const std::vector<float*>& out, std::vector<uint8_t>& found) const;

  // Train moves the live vectors into a copy of `prototype` (trained, empty), keeping their
  // labels, and makes the shard kTrained. Nothing changes on failure: INTERNAL when FAISS fails.
  // REQUIRES: state() == kPending; prototype is the factory's index, trained.
  absl::Status Train(std::shared_ptr<const faiss::Index> prototype);

  // Serialize copies the state out. INTERNAL when FAISS fails.
  absl::StatusOr<Image> Serialize() const;

  // Contains reports whether `id` is live in this shard.
  bool Contains(std::string_view id) const;

  // size is the number of live vectors.
  size_t size() const { return label_of_.size(); }

  // tombstones is the number of dead vectors still held by the FAISS index.
  size_t tombstones() const { return tombstones_.size(); }

  // state says what the FAISS index is; see State.
  State state() const { return state_; }

  // mapped reports whether the shard's IVF lists are memory-mapped from a snapshot file.
  bool mapped() const;

  // prototype is the trained prototype of a kTrained shard, else null.
  const std::shared_ptr<const faiss::Index>& prototype() const { return prototype_; }

 private:
  Shard(int dim, std::string factory, State state, std::unique_ptr<faiss::Index> index,
        std::shared_ptr<const faiss::Index> prototype, bool can_remove);

  // SearchFiltered is Search with a filter: exact over the passing vectors when they are few,
  // else the FAISS index's search with a selector.
  absl::StatusOr<std::vector<std::vector<ShardHit>>> SearchFiltered(
      const float* queries, size_t n, int k, const SearchFilter& filter) const;

  // CopyLiveInto adds the live vectors, under their labels, to `to`. REQUIRES: index_ is an
  // IndexIDMap. Throws what FAISS throws.
  void CopyLiveInto(faiss::Index& to) const;

  // DropLabels takes `labels` (live) out of the index, or tombstones them, and out of the maps.
  absl::Status DropLabels(const std::vector<int64_t>& labels);

  // MaybeCompact drops tombstones when they are too many: removes them where the index can,
  // else rebuilds the index from its live vectors. A failure keeps the old index (still correct,
  // only slower) and is retried after the next change.
  void MaybeCompact();

  const int dim_;
  const std::string factory_;
  State state_;
  // A faiss::IndexIDMap owning the real index, or (kTrained IVF) an index that takes labels.
  std::unique_ptr<faiss::Index> index_;
  std::shared_ptr<const faiss::Index> prototype_;  // kTrained only: rebuilds clone it
  bool can_remove_;                                // false: removals become tombstones
  int64_t next_label_ = 0;
  absl::flat_hash_map<std::string, int64_t> label_of_;  // live ids only
  absl::flat_hash_map<int64_t, std::string> id_of_;     // live labels only
  absl::flat_hash_set<int64_t> tombstones_;             // dead labels still in index_
};

}  // namespace retrace::index::internal

#endif  // RETRACE_CORE_INDEX_INTERNAL_SHARD_H_
