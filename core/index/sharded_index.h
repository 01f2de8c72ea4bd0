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
// Training: index types that need training (IVF*, PQ*, SQ*, PCA...) start exact. Each shard holds
// its vectors in an IndexFlatIP until the whole index holds IndexOptions::train_min_vectors live
// vectors; the Add that crosses that threshold trains ONE index on a deterministic sample of the
// live vectors (at most 256 per k-means centroid), copies the trained index to every shard and
// moves each shard's vectors into it. Before, Search is exact; after, it is as approximate as the
// factory's index (IVF visits IndexOptions::nprobe lists). That Add is slow — k-means plus
// re-adding every vector, all under the exclusive lock, so searches wait for it too; later Adds
// are not. An index never goes back to flat, even if removals take it below the threshold.
// PQ is trained without FAISS's polysemous step (index_factory turns it on; it only serves
// Hamming search, which is never used here, and costs seconds per sub-quantizer).
//
// Snapshots: SaveSnapshot writes the index to a directory and LoadSnapshot reads it back, with
// the store sequence it includes; see their comments for the files and the crash guarantees.
//
// Memory-mapped snapshots (IndexOptions::mmap_snapshots): LoadSnapshot reads a trained IVF
// shard's file with FAISS's IO_FLAG_MMAP, which keeps the coarse quantizer and the list sizes in
// memory and maps the file read-only (PROT_READ, MAP_SHARED) for the codes and ids of the lists;
// pages come in as searches touch them (FAISS's per-search prefetch threads are turned off: they
// cost more than they save once pages are cached, and serialise concurrent searches) and the
// kernel may drop them again, so resident memory follows the lists searched, not the index
// size. FAISS 1.7.3 maps nothing else: a Flat, SQ, PQ or HNSW index, and an IVF shard still
// pending training, load into memory as without the option. The file's checksum is still
// verified, by streaming it (start-up reads the file once). The mapped lists cannot change: the first Add or Remove that touches a mapped shard first
// copies its lists into memory (copy-on-write, per shard; under the exclusive lock, so searches
// wait for it), and from then on the shard is an ordinary in-memory IVF. SaveSnapshot writes an
// untouched mapped shard as the bytes of the file it maps (the same state), so saving does not
// need the lists in memory beyond the copy it writes. The mapped file must not be modified while
// mapped (SaveSnapshot never does: it writes new files and only unlinks old ones, and an unlinked
// file stays readable while mapped); IO_FLAG_ONDISK_SAME_DIR only concerns FAISS's own on-disk
// index format (OnDiskInvertedLists written by merge_ondisk), which snapshots never use.
//
// Filtered search: Search may take a SearchFilter, the set of ids it may return. The filter is
// applied inside each shard's search, not to its top k afterwards (which returns too few hits, or
// none, when few items pass). A shard where few of its items pass scores just those exactly
// (brute force over their vectors, read back from the FAISS index); otherwise it searches its
// FAISS index with an IDSelector over a bitmap of the passing labels, raising HNSW's efSearch and
// an IVF's nprobe by the inverse of the passing fraction so the graph or the lists still yield k
// passing hits (FAISS 1.7.3 reads no efSearch from search parameters, so HNSW is widened by
// asking it for that many hits and keeping the best k). Every hit is checked against the bitmap
// again, so an index type that ignored the selector could cost recall, never correctness.
//
// Parallelism: a Search with one non-empty shard runs it on the calling thread with that thread's
// own OpenMP setting (FAISS may open a team there; the server sets threads.faiss_omp on its
// workers). With several, the calling thread and the process's shard-search pool take the shards
// one at a time until none is left (ThreadPool::ParallelFor): no thread is started per call, and
// the caller never waits for a pool thread that has not started (with the pool busy, it searches
// every shard itself). Every shard search there, the caller's included, runs with ONE OpenMP
// thread, so S concurrent searches use at most S + the pool's threads, never shards x OpenMP.
// Why one suffices, from FAISS 1.7.3 as linked here (threads in /proc/self/task after one search
// on a fresh process): a Flat or IVF search of one query opens no OpenMP team at all, while HNSW
// opens a full team even for one query (every member allocating an ntotal-byte visited table,
// the idle ones spinning), so for single queries, the server's case, one thread is strictly
// better. Batches (n >= 2) open a team in every type; over several shards they now get their
// parallelism from the shards alone, so a batch over fewer non-empty shards than cores uses fewer
// cores than nested teams would, the price of not oversubscribing when callers search at once.
// (A Flat batch of 20 or more queries calls BLAS's sgemm, whose threads OpenBLAS sizes itself.)
// The pool has hardware_concurrency - 1 threads (at least 1), is started by the first search over
// several shards, and is joined at exit (a function-local static); it is one per process, not one
// per index, because it stands for the cores, which every index shares: per-index pools would
// keep threads x indexes threads and bound nothing across indexes. REQUIRES: no search runs while
// the process destroys its statics (after main returns or in exit()).
//
// Thread-safety: safe for concurrent use. Search, Contains, size, trained and SaveSnapshot share a
// reader lock (SaveSnapshot only while it copies the state to memory); Add and Remove take it
// exclusively (shard rebuilds and training happen inside them, under that lock). SaveSnapshot
// calls on one index run one at a time.
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
#include "absl/container/flat_hash_set.h"
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
  // Default "Flat" (exact). Any string FAISS builds with that metric works ("HNSW32",
  // "IVF1024,Flat", "IVF4096,PQ64", "PQ32", ...) except one naming an IDMap. Types that need
  // training are exact until trained; see the banner.
  std::string factory = "Flat";
  // train_min_vectors is how many live vectors the whole index must hold before a factory index
  // that needs training is trained. Default 0: FAISS's recommendation, 39 * the largest k-means
  // the index runs: 39 * nlist for IVF, 39 * 256 = 9,984 for PQ with 8-bit codes (and for other
  // trainable types, e.g. SQ8), the larger of the two for IVF+PQ. When set, at least what FAISS
  // can train on: nlist for IVF, 2^nbits (256) for PQ. Ignored for types that need no training.
  int64_t train_min_vectors = 0;
  // nprobe is how many IVF lists a search visits once trained; values above nlist mean nlist.
  // Default 0: max(1, nlist / 16). Ignored without an IVF.
  int nprobe = 0;
  // mmap_snapshots makes LoadSnapshot memory-map the inverted lists of trained IVF shards
  // ("IVF4096,PQ96", "IVF1024,Flat", "IVF256,SQ8", ...) from the snapshot files instead of
  // reading them into memory, so the index may be larger than RAM. Default false. Other types
  // and untrained shards (Flat, SQ8, PQ, HNSW) load into memory whatever this says: FAISS 1.7.3
  // maps only IVF lists. See "Memory-mapped snapshots" in the banner.
  bool mmap_snapshots = false;
};

// IndexHit is one search result: the caller's id and its inner product with the query.
struct IndexHit {
  std::string id;
  float score;
};

// SearchFilter restricts a Search to some ids; see the banner.
struct SearchFilter {
  // allowed holds the only ids Search may return (not owned; must outlive the call). Ids the index
  // does not hold are ignored.
  const absl::flat_hash_set<std::string>* allowed = nullptr;
  // A shard whose passing items number at most exact_max_ids, or less than exact_fraction of its
  // live items, scores each of them exactly instead of searching its FAISS index with a selector
  // (engine defaults: kFilterExactMaxIds, kFilterExactFraction). 0 and 0: always the selector.
  size_t exact_max_ids = 0;
  double exact_fraction = 0;
  // A filtered HNSW search looks max(the index's efSearch, min_ef_search, k) / the passing
  // fraction deep, capped at max_ef_search (0: no cap beyond the passing items).
  int min_ef_search = 0;
  int max_ef_search = 0;
};

class ShardedIndex;

// LoadedIndex is what ShardedIndex::LoadSnapshot returns: the index and what SaveSnapshot was
// told about it.
struct LoadedIndex {
  std::unique_ptr<ShardedIndex> index;
  // sequence is the store sequence the index includes, as given to SaveSnapshot.
  int64_t sequence = 0;
  // tag is SaveSnapshot's opaque tag, byte for byte.
  std::string tag;
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
  // range, a negative train_min_vectors or nprobe, a train_min_vectors FAISS cannot train on,
  // or a factory string that FAISS rejects (quoting FAISS's message), that names an IDMap, or
  // whose metric is not inner product.
  static absl::StatusOr<std::unique_ptr<ShardedIndex>> Create(const IndexOptions& options);

  // LoadSnapshot reads the snapshot SaveSnapshot last completed in `dir` into a new index with
  // options `expected` (train_min_vectors, nprobe and mmap_snapshots come from `expected`, not
  // the snapshot; with mmap_snapshots, trained IVF shards stay mapped from the files, see the
  // banner).
  // NOT_FOUND when `dir` holds no manifest (or does not exist). DATA_LOSS, naming the file and
  // the reason, when the manifest or a file it names is missing, truncated, fails its checksum,
  // or does not parse (FAISS's message quoted). FAILED_PRECONDITION when the snapshot's dim,
  // shards or factory differ from `expected`: rebuild from the store then. INVALID_ARGUMENT as
  // Create for a bad `expected`; other I/O errors as SaveSnapshot's. Only files named by the
  // manifest are read: stray files (a crashed save's leftovers) are ignored.
  // REQUIRES: no SaveSnapshot into `dir` runs meanwhile (it deletes the previous files).
  static absl::StatusOr<LoadedIndex> LoadSnapshot(const std::string& dir,
                                                  const IndexOptions& expected);

  ~ShardedIndex();
  ShardedIndex(const ShardedIndex&) = delete;
  ShardedIndex& operator=(const ShardedIndex&) = delete;

  // Add upserts n items: ids[i] gets row i of `vectors` (n * dim floats, row-major, not owned);
  // an id already present is replaced. n == 0 is a no-op. INVALID_ARGUMENT, with nothing changed,
  // when ids.size() != n, vectors is null while n > 0, an id is empty, an id appears twice in the
  // call (naming it and both positions) or a vector has a non-finite value (naming the item).
  // INTERNAL when FAISS fails; the index stays usable but may hold only part of the call (the
  // store is the source of truth: rebuild or retry, Add being idempotent). The Add that brings an
  // index that needs training to train_min_vectors live items also trains it (see the banner);
  // if training fails the items are in, search stays exact, Add returns INTERNAL ("...added, but
  // training failed...") and the next Add tries again.
  absl::Status Add(const std::vector<std::string>& ids, const float* vectors, size_t n);

  // Remove drops `ids`; ids not present (or repeated) are ignored. Returns how many items were
  // removed. INTERNAL when FAISS fails (shards already done keep their removals).
  absl::StatusOr<size_t> Remove(const std::vector<std::string>& ids);

  // Search returns, for each of n queries (n * dim floats, row-major, not owned), its top
  // min(k, size()) hits, best first (ties by id ascending), merged exactly across shards.
  // With a Flat factory results are exact; with HNSW they are approximate and may be fewer; with
  // a type that needs training they are exact until trained() and approximate after.
  // The n queries go to FAISS as one batch per shard; shards are searched in parallel on the
  // calling thread and the process's shard-search pool (banner: Parallelism).
  // INVALID_ARGUMENT when k is outside 1..kMaxK, n exceeds kMaxQueries, n * k exceeds
  // kMaxHitsPerSearch, queries is null while n > 0, or a query has a non-finite value. INTERNAL
  // when FAISS fails.
  // With a `filter` (not owned; null: none), only ids in filter->allowed are returned, with the
  // same exactness as without one, except that a shard where few items pass is exact (banner);
  // INVALID_ARGUMENT when filter->allowed is null.
  absl::StatusOr<std::vector<std::vector<IndexHit>>> Search(
      const float* queries, size_t n, int k, const SearchFilter* filter = nullptr) const;

  // Contains reports whether `id` is present (added and not removed since).
  bool Contains(std::string_view id) const;

  // ReadVectors copies the stored vector of each of `ids` to rows[i] (dim floats each, not
  // owned) and returns, per id, whether the index holds it (the row of an absent id is left as
  // it was). Rows are the caller's own memory, so a read allocates no buffer of its size: the
  // caller reads straight into what it keeps. Exact: the very floats Add was given, read under
  // the reader lock as Search is, so a concurrent Add or Remove is seen whole or not at all
  // (per call). Cost: a hash look-up and a binary search per id, then a copy of its floats.
  // UNIMPLEMENTED, with nothing read, when a shard cannot give its vectors back exactly: an
  // index of compressed codes once trained (SQ, PQ: reconstruction is lossy), a trained IVF
  // (no direct map from ids to list entries), anything else but Flat and HNSW over flat
  // storage; callers read the vectors from the store then. INVALID_ARGUMENT when rows.size()
  // != ids.size() or a row is null; INTERNAL when FAISS fails.
  absl::StatusOr<std::vector<bool>> ReadVectors(const std::vector<std::string>& ids,
                                                const std::vector<float*>& rows) const;

  // size is the number of live items.
  size_t size() const;

  // needs_training reports whether the factory's index needs training (fixed at creation).
  bool needs_training() const { return training_.needed; }

  // trained reports whether every shard holds the factory's own index: always true when it needs
  // no training; false until the first Add that reaches train_min_vectors (or after a failed
  // training) otherwise.
  bool trained() const;

  // mapped_shards is how many shards keep their IVF lists memory-mapped from a snapshot: those
  // LoadSnapshot mapped (IndexOptions::mmap_snapshots) that no Add or Remove has touched since.
  int mapped_shards() const;

  // SaveSnapshot writes the whole index to `dir` (created if missing) so that LoadSnapshot can
  // read it back, with `sequence` (the store sequence the index includes) and `tag` (any bytes;
  // the caller's way to recognise its own snapshot, e.g. the collection's creation sequence).
  //
  // Files, in `dir`: per shard s, index-<G>-shard-<s>.faiss (faiss::write_index's output) and
  // index-<G>-shard-<s>.ids (the id map: labels, ids, tombstones, next label); when trained,
  // index-<G>-prototype.faiss (the trained, empty index); and MANIFEST, which names those files
  // with their sizes and CRC-32s, and holds dim, shards, factory, sequence and tag, followed by
  // its own CRC-32. G is one more than any generation found in `dir`, so a new snapshot never
  // overwrites a file the current manifest names. Each file is written to "<name>.tmp", fsynced
  // and renamed into place; the directory is fsynced; MANIFEST comes last (same way), and only
  // then are files of other generations and .tmp leftovers deleted. A crash at any point leaves
  // the previous complete snapshot or the new one. Files with other names are left alone.
  //
  // The state is copied to memory under the reader lock, then written without it: Add and Remove
  // wait for the copy only (about 0.1 s per 55 MB of index on the 2-core build machine), and so
  // do searches that arrive while an Add waits (absl::Mutex lets no new reader past a waiting
  // writer). The snapshot holds whole Add and Remove calls. Peak memory is about twice the
  // index's.
  // When a file cannot be written: RESOURCE_EXHAUSTED (disk full), PERMISSION_DENIED or
  // INTERNAL, naming the path and the OS error; FAILED_PRECONDITION when `dir` is not a
  // directory; INTERNAL when FAISS fails. A failed save leaves the previous snapshot in place
  // (its partial files are deleted by the next save). Deleting old files is best effort: a
  // failure there still returns OK, and the next save retries.
  absl::Status SaveSnapshot(const std::string& dir, int64_t sequence, const std::string& tag) const;

  // options returns the options the index was created with.
  const IndexOptions& options() const { return options_; }

  // ShardOf is the placement rule: FNV-1a 64 of id's bytes, modulo `shards`. Stable forever;
  // changing it orphans persisted shards. REQUIRES: shards >= 1 (values below are treated as 1).
  static uint32_t ShardOf(std::string_view id, int shards);

 private:
  // Training is what Create worked out about training the factory's index.
  struct Training {
    bool needed = false;
    size_t threshold = 0;   // live vectors that trigger training
    size_t max_sample = 0;  // training sees at most this many vectors
    int nprobe = 0;         // set on a trained IVF
  };

  ShardedIndex(IndexOptions options, Training training,
               std::vector<std::unique_ptr<internal::Shard>> shards);

  // TrainLocked trains the pending shards: on a new prototype trained on a sample of all live
  // vectors, or on the prototype of a shard already trained (an earlier attempt that failed
  // part way). INTERNAL when FAISS fails; shards already trained stay trained.
  absl::Status TrainLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const IndexOptions options_;
  const Training training_;
  // save_mu_ makes SaveSnapshot calls take turns; it is taken before mu_, never while holding it.
  mutable absl::Mutex save_mu_;
  mutable absl::Mutex mu_;
  // One per IndexOptions::shards; the vector itself never changes size, its shards do.
  std::vector<std::unique_ptr<internal::Shard>> shards_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retrace::index

#endif  // RETRACE_CORE_INDEX_SHARDED_INDEX_H_
