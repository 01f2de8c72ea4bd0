#include "core/index/internal/faiss_index.h"

#include <faiss/IVFlib.h>
#include <faiss/Index.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/clone_index.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/OnDiskInvertedLists.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"

namespace retrace::index::internal {
namespace {

// BelowPreTransforms returns the index under any IndexPreTransform layers (PCA, OPQ, ...).
const faiss::Index* BelowPreTransforms(const faiss::Index* index) {
  while (const auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
    index = pre->index;
  }
  return index;
}

// MappedLists returns the memory-mapped lists of the IVF in `index` (what IO_FLAG_MMAP reads an
// ArrayInvertedLists into), or null when it has no IVF or its lists are in memory.
faiss::OnDiskInvertedLists* MappedLists(const faiss::Index& index) {
  const faiss::IndexIVF* ivf = faiss::ivflib::try_extract_index_ivf(&index);
  return ivf == nullptr ? nullptr : dynamic_cast<faiss::OnDiskInvertedLists*>(ivf->invlists);
}

}  // namespace

absl::StatusOr<FactoryInfo> InspectFactory(int dim, const std::string& factory) {
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::index_factory(dim, factory.c_str(), faiss::METRIC_INNER_PRODUCT));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("factory '", factory, "' is not an index FAISS can build: ", e.what()));
  }
  // An IDMap inside would make our add_with_ids fail; we map ids ourselves.
  if (dynamic_cast<const faiss::IndexIDMap*>(index.get()) != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("factory '", factory,
                     "' builds its own ID map; leave out IDMap (ids are mapped by the index)"));
  }
  if (index->metric_type != faiss::METRIC_INNER_PRODUCT) {
    return absl::InvalidArgumentError(
        absl::StrCat("factory '", factory, "' builds an index with metric ",
                     static_cast<int>(index->metric_type), ", not inner product"));
  }
  FactoryInfo info;
  info.needs_training = !index->is_trained;
  if (!info.needs_training) return info;
  const faiss::IndexIVF* ivf = faiss::ivflib::try_extract_index_ivf(index.get());
  if (ivf != nullptr) info.nlist = ivf->nlist;
  if (const auto* ivfpq = dynamic_cast<const faiss::IndexIVFPQ*>(ivf)) {
    info.pq_centroids = ivfpq->pq.ksub;
  } else if (const auto* pq =
                 dynamic_cast<const faiss::IndexPQ*>(BelowPreTransforms(index.get()))) {
    info.pq_centroids = pq->pq.ksub;
  }
  const size_t centroids = std::max(info.nlist, info.pq_centroids);
  info.min_training_vectors = std::max<size_t>(centroids, 1);
  const size_t kmeans = centroids > 0 ? centroids : kDefaultCentroids;
  info.recommended_training_vectors = kRecommendedSamplesPerCentroid * kmeans;
  info.max_training_vectors = kTrainingSamplesPerCentroid * kmeans;
  return info;
}

int DefaultNprobe(size_t nlist) { return static_cast<int>(std::max<size_t>(1, nlist / 16)); }

void SetNprobe(faiss::Index& index, int nprobe) {
  faiss::IndexIVF* ivf = faiss::ivflib::try_extract_index_ivf(&index);
  if (ivf == nullptr) return;
  ivf->nprobe = std::clamp<size_t>(static_cast<size_t>(std::max(nprobe, 1)), 1, ivf->nlist);
}

absl::StatusOr<std::shared_ptr<const faiss::Index>> TrainPrototype(int dim,
                                                                   const std::string& factory,
                                                                   const float* vectors, size_t n,
                                                                   int nprobe) {
  try {
    std::shared_ptr<faiss::Index> index(
        faiss::index_factory(dim, factory.c_str(), faiss::METRIC_INNER_PRODUCT));
    // index_factory turns on polysemous training for PQ ("PQ16" unless "PQ16np"): a simulated
    // annealing that only helps polysemous (Hamming) search, which we never run, and costs
    // seconds per sub-quantizer (about 12 s each on a 2-core build machine).
    faiss::Index* below = index.get();
    while (auto* pre = dynamic_cast<faiss::IndexPreTransform*>(below)) below = pre->index;
    if (auto* pq = dynamic_cast<faiss::IndexPQ*>(below)) pq->do_polysemous_training = false;
    if (auto* ivfpq = dynamic_cast<faiss::IndexIVFPQ*>(below)) {
      ivfpq->do_polysemous_training = false;
    }
    index->train(static_cast<faiss::Index::idx_t>(n), vectors);
    SetNprobe(*index, nprobe);
    return std::shared_ptr<const faiss::Index>(std::move(index));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("FAISS failed to train a '", factory, "' index on ", n,
                                            " vectors: ", e.what()));
  }
}

std::unique_ptr<faiss::Index> CloneIndex(const faiss::Index& index) {
  try {
    return std::unique_ptr<faiss::Index>(faiss::clone_index(&index));
  } catch (const faiss::FaissException&) {
    // clone_index knows a fixed list of types; serialisation knows them all.
  }
  faiss::VectorIOWriter writer;
  faiss::write_index(&index, &writer);
  faiss::VectorIOReader reader;
  reader.data = std::move(writer.data);
  return std::unique_ptr<faiss::Index>(faiss::read_index(&reader));
}

bool TakesLabels(const faiss::Index& index) {
  return dynamic_cast<const faiss::IndexIVF*>(BelowPreTransforms(&index)) != nullptr;
}

absl::StatusOr<std::vector<uint8_t>> IndexToBytes(const faiss::Index& index) {
  try {
    faiss::VectorIOWriter writer;
    faiss::write_index(&index, &writer);
    return std::move(writer.data);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("FAISS failed to serialise an index: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<faiss::Index>> IndexFromBytes(std::vector<uint8_t> bytes) {
  try {
    faiss::VectorIOReader reader;
    reader.data = std::move(bytes);
    return std::unique_ptr<faiss::Index>(faiss::read_index(&reader));
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("FAISS cannot read the index: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<faiss::Index>> IndexFromFile(const std::string& path,
                                                            bool map_lists) {
  try {
    std::unique_ptr<faiss::Index> index(
        faiss::read_index(path.c_str(), map_lists ? faiss::IO_FLAG_MMAP : 0));
    // FAISS would start prefetch threads (32) for every search of mapped lists, and serialise
    // concurrent searches on their mutex; pages are faulted in by the search itself instead.
    if (faiss::OnDiskInvertedLists* mapped = MappedLists(*index)) mapped->prefetch_nthread = 0;
    return index;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("FAISS cannot read the index: ", e.what()));
  }
}

std::string_view MappedFileBytes(const faiss::Index& index) {
  const faiss::OnDiskInvertedLists* lists = MappedLists(index);
  // FAISS maps the whole file from offset 0 (totsize is its size) and reads list offsets into it.
  if (lists == nullptr || lists->ptr == nullptr) return {};
  return std::string_view(reinterpret_cast<const char*>(lists->ptr), lists->totsize);
}

absl::Status CopyMappedListsIntoMemory(faiss::Index& index) {
  faiss::OnDiskInvertedLists* mapped = MappedLists(index);
  if (mapped == nullptr) return absl::OkStatus();
  try {
    auto copy = std::make_unique<faiss::ArrayInvertedLists>(mapped->nlist, mapped->code_size);
    for (size_t list = 0; list < mapped->nlist; ++list) {
      const size_t n = mapped->list_size(list);
      if (n == 0) continue;
      faiss::InvertedLists::ScopedIds ids(mapped, list);
      faiss::InvertedLists::ScopedCodes codes(mapped, list);
      copy->add_entries(list, n, ids.get(), codes.get());
    }
    // The IVF owns the mapped lists (read_index made them): replacing them unmaps the file.
    faiss::ivflib::extract_index_ivf(&index)->replace_invlists(copy.release(), true);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("FAISS failed to copy memory-mapped IVF lists into memory: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace retrace::index::internal
