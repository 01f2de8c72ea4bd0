#include "core/index/internal/shard.h"

#include <faiss/Index.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"

namespace retrace::index::internal {
namespace {

using Label = faiss::Index::idx_t;
static_assert(std::is_same_v<Label, int64_t>, "FAISS labels are int64");

// kCompactChunkBytes bounds the scratch buffer used to copy vectors out during a rebuild.
constexpr size_t kCompactChunkBytes = size_t{16} << 20;

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// NewIdMap builds an empty faiss::IndexIDMap that owns a fresh index from `factory`. Throws
// whatever FAISS throws.
std::unique_ptr<faiss::IndexIDMap> NewIdMap(int dim, const std::string& factory) {
  std::unique_ptr<faiss::Index> inner(
      faiss::index_factory(dim, factory.c_str(), faiss::METRIC_INNER_PRODUCT));
  auto id_map = std::make_unique<faiss::IndexIDMap>(inner.get());
  id_map->own_fields = true;
  inner.release();
  return id_map;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Shard>> Shard::Create(int dim, const std::string& factory) {
  std::unique_ptr<faiss::Index> inner;
  try {
    inner.reset(faiss::index_factory(dim, factory.c_str(), faiss::METRIC_INNER_PRODUCT));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("factory '", factory, "' is not an index FAISS can build: ", e.what()));
  }
  // An IDMap inside would make our add_with_ids fail; we map ids ourselves.
  if (dynamic_cast<const faiss::IndexIDMap*>(inner.get()) != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("factory '", factory,
                     "' builds its own ID map; leave out IDMap (ids are mapped by the index)"));
  }
  if (inner->metric_type != faiss::METRIC_INNER_PRODUCT) {
    return absl::InvalidArgumentError(
        absl::StrCat("factory '", factory, "' builds an index with metric ",
                     static_cast<int>(inner->metric_type), ", not inner product"));
  }
  if (!inner->is_trained) {
    return absl::InvalidArgumentError(
        absl::StrCat("factory: index '", factory,
                     "' needs training, which is not supported yet; use Flat or HNSW<M>"));
  }
  inner.reset();

  std::unique_ptr<faiss::IndexIDMap> id_map;
  bool can_remove = true;
  try {
    id_map = NewIdMap(dim, factory);
    // Probe on the empty index: types without remove_ids (HNSW) throw, whatever the selector.
    try {
      id_map->remove_ids(faiss::IDSelectorRange(0, 0));
    } catch (const std::exception&) {
      can_remove = false;
    }
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("FAISS failed to build an ID map around '", factory, "': ", e.what()));
  }
  return absl::WrapUnique(new Shard(dim, factory, std::move(id_map), can_remove));
}

Shard::Shard(int dim, std::string factory, std::unique_ptr<faiss::Index> index, bool can_remove)
    : dim_(dim), factory_(std::move(factory)), index_(std::move(index)), can_remove_(can_remove) {}

Shard::~Shard() = default;

absl::Status Shard::Upsert(const std::vector<std::string>& ids, const float* vectors,
                           const std::vector<size_t>& rows) {
  if (rows.empty()) return absl::OkStatus();
  std::vector<int64_t> previous;
  for (size_t r : rows) {
    auto it = label_of_.find(ids[r]);
    if (it != label_of_.end()) previous.push_back(it->second);
  }
  RETRACE_RETURN_IF_ERROR(DropLabels(previous));

  const size_t n = rows.size();
  const size_t row_floats = static_cast<size_t>(dim_);
  std::vector<float> packed(n * row_floats);
  std::vector<Label> labels(n);
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(packed.data() + i * row_floats, vectors + rows[i] * row_floats,
                row_floats * sizeof(float));
    labels[i] = next_label_ + static_cast<Label>(i);
  }
  // Labels are spent even if the add fails, so a half-added vector can never alias a later item.
  next_label_ += static_cast<int64_t>(n);
  try {
    index_->add_with_ids(static_cast<Label>(n), packed.data(), labels.data());
  } catch (const std::exception& e) {
    // FAISS may have added a prefix before throwing: hide whatever made it in.
    tombstones_.insert(labels.begin(), labels.end());
    return absl::InternalError(absl::StrCat("FAISS failed to add ", n, " vectors to a '", factory_,
                                            "' shard: ", e.what()));
  }
  for (size_t i = 0; i < n; ++i) {
    label_of_[ids[rows[i]]] = labels[i];
    id_of_.emplace(labels[i], ids[rows[i]]);
  }
  MaybeCompact();
  return absl::OkStatus();
}

absl::StatusOr<size_t> Shard::Remove(const std::vector<std::string>& ids,
                                     const std::vector<size_t>& rows) {
  std::vector<int64_t> labels;
  for (size_t r : rows) {
    auto it = label_of_.find(ids[r]);
    if (it != label_of_.end()) labels.push_back(it->second);
  }
  // Remove does not require distinct ids.
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  RETRACE_RETURN_IF_ERROR(DropLabels(labels));
  MaybeCompact();
  return labels.size();
}

absl::Status Shard::DropLabels(const std::vector<int64_t>& labels) {
  if (labels.empty()) return absl::OkStatus();
  if (can_remove_) {
    try {
      faiss::IDSelectorBatch selector(labels.size(), labels.data());
      index_->remove_ids(selector);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("FAISS failed to remove ", labels.size(),
                                              " vectors from a '", factory_,
                                              "' shard: ", e.what()));
    }
  } else {
    tombstones_.insert(labels.begin(), labels.end());
  }
  for (int64_t label : labels) {
    auto it = id_of_.find(label);
    label_of_.erase(it->second);
    id_of_.erase(it);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<ShardHit>>> Shard::Search(const float* queries, size_t n,
                                                                 int k) const {
  std::vector<std::vector<ShardHit>> hits(n);
  const Label ntotal = index_->ntotal;
  if (ntotal == 0 || n == 0) return hits;
  // Tombstones may take up to tombstones_.size() of the places; fetch that many more.
  const Label fetch =
      std::min<Label>(static_cast<Label>(k) + static_cast<Label>(tombstones_.size()), ntotal);
  // Search the wrapped index directly: FAISS 1.7.3's IndexIDMap refuses search parameters, and
  // HNSW needs them: it stops after efSearch good candidates whatever k is, so efSearch is raised
  // to the fetch size (the default efSearch still applies when it is larger).
  const auto* id_map = static_cast<const faiss::IndexIDMap*>(index_.get());
  faiss::SearchParametersHNSW hnsw_params;
  const faiss::SearchParameters* params = nullptr;
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(id_map->index)) {
    hnsw_params.efSearch = static_cast<int>(std::min<Label>(
        std::max<Label>(hnsw->hnsw.efSearch, fetch), std::numeric_limits<int>::max()));
    params = &hnsw_params;
  }
  // Cut the batch into blocks of queries only when k plus tombstones is large, so the buffers
  // stay bounded.
  const size_t width = static_cast<size_t>(fetch);
  const size_t block = std::min(n, std::max<size_t>(1, kSearchBufferEntries / width));
  std::vector<float> scores(block * width);
  std::vector<Label> positions(block * width);
  for (size_t first = 0; first < n; first += block) {
    const size_t count = std::min(block, n - first);
    try {
      id_map->index->search(static_cast<Label>(count), queries + first * static_cast<size_t>(dim_),
                            fetch, scores.data(), positions.data(), params);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("FAISS failed to search ", count, " queries for ",
                                              fetch, " hits in a '", factory_,
                                              "' shard: ", e.what()));
    }
    for (size_t q = 0; q < count; ++q) {
      std::vector<ShardHit>& out = hits[first + q];
      out.reserve(std::min(static_cast<size_t>(k), width));
      for (size_t j = 0; j < width && out.size() < static_cast<size_t>(k); ++j) {
        const size_t at = q * width + j;
        if (positions[at] < 0) continue;  // fewer results than asked
        // Only live labels are in id_of_: this drops tombstones and a failed add's leftovers.
        auto it = id_of_.find(id_map->id_map[static_cast<size_t>(positions[at])]);
        if (it == id_of_.end()) continue;
        out.push_back(ShardHit{scores[at], &it->second});
      }
    }
  }
  return hits;
}

bool Shard::Contains(std::string_view id) const { return label_of_.contains(AsAbsl(id)); }

void Shard::MaybeCompact() {
  if (tombstones_.size() <= std::max(kCompactMinTombstones, label_of_.size())) return;
  const auto* old = static_cast<const faiss::IndexIDMap*>(index_.get());
  const size_t row_floats = static_cast<size_t>(dim_);
  const Label chunk =
      static_cast<Label>(std::max<size_t>(1, kCompactChunkBytes / (row_floats * sizeof(float))));
  try {
    std::unique_ptr<faiss::IndexIDMap> fresh = NewIdMap(dim_, factory_);
    std::vector<float> rows(static_cast<size_t>(chunk) * row_floats);
    std::vector<float> live;
    std::vector<Label> labels;
    for (Label begin = 0; begin < old->ntotal; begin += chunk) {
      const Label count = std::min(chunk, old->ntotal - begin);
      old->index->reconstruct_n(begin, count, rows.data());
      live.clear();
      labels.clear();
      for (Label i = 0; i < count; ++i) {
        const Label label = old->id_map[static_cast<size_t>(begin + i)];
        if (!id_of_.contains(label)) continue;  // dead
        const float* row = rows.data() + static_cast<size_t>(i) * row_floats;
        live.insert(live.end(), row, row + row_floats);
        labels.push_back(label);
      }
      if (!labels.empty()) {
        fresh->add_with_ids(static_cast<Label>(labels.size()), live.data(), labels.data());
      }
    }
    index_ = std::move(fresh);
    tombstones_.clear();
  } catch (const std::exception&) {
    // Keep the old index: tombstones still filter correctly; the next change retries.
  }
}

}  // namespace retrace::index::internal
