// faiss_index.h — the FAISS calls that Shard, ShardedIndex's training and its snapshots share:
// what a factory string builds (and what training it asks for), training one prototype index,
// cloning, and serialising an index to bytes and back.
//
// Every function catches what FAISS throws and returns a status; none keeps state.
// Thread-safety: the functions are safe to call concurrently on different indexes; the const
// ones (CloneIndex, IndexToBytes) also on one index that nobody mutates meanwhile.
//
//   RETRACE_ASSIGN_OR_RETURN(FactoryInfo info, InspectFactory(128, "IVF1024,PQ16"));
//   RETRACE_ASSIGN_OR_RETURN(auto prototype, TrainPrototype(128, "IVF1024,PQ16", x, n, 64));
#ifndef RETRACE_CORE_INDEX_INTERNAL_FAISS_INDEX_H_
#define RETRACE_CORE_INDEX_INTERNAL_FAISS_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace faiss {
struct Index;
}  // namespace faiss

namespace retrace::index::internal {

// kTrainingSamplesPerCentroid caps how many vectors training sees per k-means centroid; FAISS
// subsamples to the same figure (ClusteringParameters::max_points_per_centroid).
constexpr size_t kTrainingSamplesPerCentroid = 256;
// kRecommendedSamplesPerCentroid is FAISS's own minimum recommendation (it warns below it).
constexpr size_t kRecommendedSamplesPerCentroid = 39;
// kDefaultCentroids stands in for the k-means size of trainable types with no IVF or PQ
// (ScalarQuantizer, PCA, ...), so their default threshold matches PQ's 39 * 256.
constexpr size_t kDefaultCentroids = 256;

// FactoryInfo is what building a factory string's index once tells about it.
struct FactoryInfo {
  // needs_training: the index must be trained before it can hold vectors.
  bool needs_training = false;
  // nlist is the number of IVF lists; 0 when the index has no IVF.
  size_t nlist = 0;
  // pq_centroids is the number of centroids per PQ sub-quantizer (2^nbits); 0 without a PQ.
  size_t pq_centroids = 0;
  // min_training_vectors is the fewest vectors FAISS can train on: max(nlist, pq_centroids, 1)
  // when needs_training, else 0.
  size_t min_training_vectors = 0;
  // recommended_training_vectors is 39 * the largest k-means the index runs (nlist or
  // pq_centroids, kDefaultCentroids when it has neither) when needs_training, else 0.
  size_t recommended_training_vectors = 0;
  // max_training_vectors is 256 * that same k-means size: more would be subsampled by FAISS.
  size_t max_training_vectors = 0;
};

// InspectFactory builds the factory's index (dim, inner product) and describes it.
// INVALID_ARGUMENT, with a message starting "factory '<factory>'", when FAISS rejects the string,
// when the index is an ID map itself (IDMap,...), or when its metric is not inner product.
absl::StatusOr<FactoryInfo> InspectFactory(int dim, const std::string& factory);

// DefaultNprobe is max(1, nlist / 16): a sixteenth of the lists, the usual recall/speed middle.
int DefaultNprobe(size_t nlist);

// TrainPrototype builds the factory's index, trains it on n vectors (n * dim floats, row-major,
// not owned) and sets nprobe (when the index has an IVF; clamped to 1..nlist). Polysemous
// training of PQ codes is turned off: it only serves Hamming search, which shards never run.
// The result holds no vectors; shards clone it. INTERNAL when FAISS fails (e.g. too few vectors).
absl::StatusOr<std::shared_ptr<const faiss::Index>> TrainPrototype(int dim,
                                                                   const std::string& factory,
                                                                   const float* vectors, size_t n,
                                                                   int nprobe);

// SetNprobe sets the IVF's nprobe (clamped to 1..nlist) when `index` has an IVF; else no-op.
void SetNprobe(faiss::Index& index, int nprobe);

// CloneIndex deep-copies `index`: faiss::clone_index, or a write/read round trip for the types
// clone_index does not know (IndexRefine). Throws what FAISS throws.
std::unique_ptr<faiss::Index> CloneIndex(const faiss::Index& index);

// TakesLabels reports whether `index` keeps the labels add_with_ids gives it and removes by them
// (an IVF, possibly under pre-transforms); other indexes are wrapped in an IndexIDMap.
bool TakesLabels(const faiss::Index& index);

// IndexToBytes serialises `index` as faiss::write_index does. INTERNAL when FAISS fails.
absl::StatusOr<std::vector<uint8_t>> IndexToBytes(const faiss::Index& index);

// IndexFromBytes reads an index IndexToBytes wrote (consumes `bytes`). DATA_LOSS, quoting FAISS,
// when FAISS cannot read it.
absl::StatusOr<std::unique_ptr<faiss::Index>> IndexFromBytes(std::vector<uint8_t> bytes);

// IndexFromFile reads an index write_index wrote to `path`. With map_lists, the inverted lists of
// an IVF (bare or under an IndexIDMap, pre-transforms or IndexRefine) are memory-mapped read-only
// from the file instead of read (FAISS's IO_FLAG_MMAP; other types read normally). DATA_LOSS,
// quoting FAISS, when FAISS cannot read or map it.
absl::StatusOr<std::unique_ptr<faiss::Index>> IndexFromFile(const std::string& path,
                                                            bool map_lists);

// MappedFileBytes returns the whole file whose mapping holds the IVF lists of `index` (what
// IndexFromFile read with map_lists), or an empty view when its lists are in memory. The view
// lives as long as the lists stay mapped.
std::string_view MappedFileBytes(const faiss::Index& index);

// CopyMappedListsIntoMemory replaces memory-mapped IVF lists of `index` by an in-memory copy, so
// they can change; no-op when they are in memory already. INTERNAL (index unchanged) when FAISS
// fails or memory runs out.
absl::Status CopyMappedListsIntoMemory(faiss::Index& index);

}  // namespace retrace::index::internal

#endif  // RETRACE_CORE_INDEX_INTERNAL_FAISS_INDEX_H_
