#include "core/index/internal/shard.h"

#include <faiss/IVFlib.h>
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"
#include "core/index/internal/byte_codec.h"
#include "core/index/internal/faiss_index.h"
#include "core/index/sharded_index.h"

namespace retrace::index::internal {
namespace {

using Label = faiss::Index::idx_t;
static_assert(std::is_same_v<Label, int64_t>, "FAISS labels are int64");

// kIdsMagic opens a shard's id map image (see Shard::Image); the digits are the format version.
constexpr std::string_view kIdsMagic = "RTXIDS01";

// kCompactChunkBytes bounds the scratch buffer used to copy vectors out during a rebuild.
constexpr size_t kCompactChunkBytes = size_t{16} << 20;

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// CanRemove probes `index` by removing nothing: types without remove_ids (HNSW) throw, whatever
// the selector; the others scan and keep everything.
// An IVF inside an IndexIDMap removes without renumbering the positions the map relies on, so it
// counts as unable (an IVF that takes labels itself is not wrapped).
bool CanRemove(faiss::Index& index) {
  if (const auto* id_map = dynamic_cast<const faiss::IndexIDMap*>(&index)) {
    if (faiss::ivflib::try_extract_index_ivf(id_map->index) != nullptr) return false;
  }
  try {
    index.remove_ids(faiss::IDSelectorRange(0, 0));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// NewIndex builds an empty index for a shard in `state`: the factory's index (kPlain), an
// IndexFlatIP (kPending) or a clone of `prototype` (kTrained); wrapped in an IndexIDMap unless it
// takes labels itself. Throws what FAISS throws.
std::unique_ptr<faiss::Index> NewIndex(int dim, const std::string& factory, Shard::State state,
                                       const faiss::Index* prototype) {
  std::unique_ptr<faiss::Index> inner;
  switch (state) {
    case Shard::State::kPlain:
      inner.reset(faiss::index_factory(dim, factory.c_str(), faiss::METRIC_INNER_PRODUCT));
      break;
    case Shard::State::kPending:
      inner = std::make_unique<faiss::IndexFlatIP>(dim);
      break;
    case Shard::State::kTrained:
      inner = CloneIndex(*prototype);
      if (TakesLabels(*inner)) return inner;
      break;
  }
  auto id_map = std::make_unique<faiss::IndexIDMap>(inner.get());
  id_map->own_fields = true;
  inner.release();
  return id_map;
}

// LabelSelector lets a FAISS search see only the labels set in a bitmap. FAISS asks about the
// ids of the index it searches: positions in id_map when the shard wraps its index in an
// IndexIDMap (`positions` non-null), the labels themselves otherwise.
class LabelSelector : public faiss::IDSelector {
 public:
  LabelSelector(const std::vector<Label>* positions, const std::vector<bool>* selected)
      : positions_(positions), selected_(selected) {}
  bool is_member(idx_t id) const override {
    if (id < 0) return false;
    Label label = id;
    if (positions_ != nullptr) {
      if (static_cast<size_t>(id) >= positions_->size()) return false;
      label = (*positions_)[static_cast<size_t>(id)];
    }
    return label >= 0 && static_cast<size_t>(label) < selected_->size() &&
           (*selected_)[static_cast<size_t>(label)];
  }

 private:
  const std::vector<Label>* const positions_;
  const std::vector<bool>* const selected_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Shard>> Shard::Create(int dim, const std::string& factory) {
  RETRACE_ASSIGN_OR_RETURN(const FactoryInfo info, InspectFactory(dim, factory));
  const State state = info.needs_training ? State::kPending : State::kPlain;
  auto shard = absl::WrapUnique(new Shard(dim, factory, state, nullptr, nullptr, true));
  try {
    shard->index_ = NewIndex(dim, factory, state, nullptr);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("FAISS failed to build an ID map around '", factory, "': ", e.what()));
  }
  shard->can_remove_ = CanRemove(*shard->index_);
  return shard;
}

Shard::Shard(int dim, std::string factory, State state, std::unique_ptr<faiss::Index> index,
             std::shared_ptr<const faiss::Index> prototype, bool can_remove)
    : dim_(dim),
      factory_(std::move(factory)),
      state_(state),
      index_(std::move(index)),
      prototype_(std::move(prototype)),
      can_remove_(can_remove) {}

Shard::~Shard() = default;

absl::Status Shard::Upsert(const std::vector<std::string>& ids, const float* vectors,
                           const std::vector<size_t>& rows) {
  if (rows.empty()) return absl::OkStatus();
  RETRACE_RETURN_IF_ERROR(CopyMappedListsIntoMemory(*index_));
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
  RETRACE_RETURN_IF_ERROR(CopyMappedListsIntoMemory(*index_));
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

absl::StatusOr<std::vector<std::vector<ShardHit>>> Shard::Search(
    const float* queries, size_t n, int k, const SearchFilter* filter) const {
  if (filter != nullptr) return SearchFiltered(queries, n, k, *filter);
  std::vector<std::vector<ShardHit>> hits(n);
  const Label ntotal = index_->ntotal;
  if (ntotal == 0 || n == 0) return hits;
  // Tombstones may take up to tombstones_.size() of the places; fetch that many more.
  const Label fetch =
      std::min<Label>(static_cast<Label>(k) + static_cast<Label>(tombstones_.size()), ntotal);
  // Search the wrapped index directly: FAISS 1.7.3's IndexIDMap refuses search parameters, and
  // HNSW needs them: it stops after efSearch good candidates whatever k is, so efSearch is raised
  // to the fetch size (the default efSearch still applies when it is larger). An index that takes
  // labels answers with them; under an IndexIDMap the answer is a position in id_map.
  const auto* id_map = dynamic_cast<const faiss::IndexIDMap*>(index_.get());
  const faiss::Index* target = id_map != nullptr ? id_map->index : index_.get();
  faiss::SearchParametersHNSW hnsw_params;
  const faiss::SearchParameters* params = nullptr;
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(target)) {
    hnsw_params.efSearch = static_cast<int>(std::min<Label>(
        std::max<Label>(hnsw->hnsw.efSearch, fetch), std::numeric_limits<int>::max()));
    params = &hnsw_params;
  }
  // Cut the batch into blocks of queries only when k plus tombstones is large, so the buffers
  // stay bounded.
  const size_t width = static_cast<size_t>(fetch);
  const size_t block = std::min(n, std::max<size_t>(1, kSearchBufferEntries / width));
  std::vector<float> scores(block * width);
  std::vector<Label> found(block * width);
  for (size_t first = 0; first < n; first += block) {
    const size_t count = std::min(block, n - first);
    try {
      target->search(static_cast<Label>(count), queries + first * static_cast<size_t>(dim_), fetch,
                     scores.data(), found.data(), params);
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
        if (found[at] < 0) continue;  // fewer results than asked
        const Label label =
            id_map != nullptr ? id_map->id_map[static_cast<size_t>(found[at])] : found[at];
        // Only live labels are in id_of_: this drops tombstones and a failed add's leftovers.
        auto it = id_of_.find(label);
        if (it == id_of_.end()) continue;
        out.push_back(ShardHit{scores[at], &it->second});
      }
    }
  }
  return hits;
}

absl::StatusOr<std::vector<std::vector<ShardHit>>> Shard::SearchFiltered(
    const float* queries, size_t n, int k, const SearchFilter& filter) const {
  std::vector<std::vector<ShardHit>> hits(n);
  // The passing live labels of this shard, found from the smaller side.
  std::vector<Label> labels;
  if (filter.allowed->size() < label_of_.size()) {
    for (const std::string& id : *filter.allowed) {
      auto it = label_of_.find(id);
      if (it != label_of_.end()) labels.push_back(it->second);
    }
  } else {
    for (const auto& [label, id] : id_of_) {
      if (filter.allowed->contains(id)) labels.push_back(label);
    }
  }
  if (labels.empty() || n == 0) return hits;
  std::vector<bool> selected(static_cast<size_t>(next_label_), false);
  for (Label label : labels) selected[static_cast<size_t>(label)] = true;
  const double fraction = static_cast<double>(labels.size()) / static_cast<double>(size());
  const auto* id_map = dynamic_cast<const faiss::IndexIDMap*>(index_.get());
  const size_t width = std::min(static_cast<size_t>(k), labels.size());
  const size_t row_floats = static_cast<size_t>(dim_);
  auto better = [](const ShardHit& a, const ShardHit& b) {
    if (a.score != b.score) return a.score > b.score;
    return *a.id < *b.id;
  };

  // Few pass: score each of them. Their vectors are read back from the index (exact for Flat and
  // HNSW's flat storage; the codes' reconstruction for PQ and SQ). Only under an IndexIDMap: an
  // IVF that keeps labels itself cannot reconstruct by label without a direct map.
  const bool exact = id_map != nullptr && (labels.size() <= filter.exact_max_ids ||
                                           fraction < filter.exact_fraction);
  if (exact) {
    std::vector<Label> positions;
    positions.reserve(labels.size());
    for (Label p = 0; p < id_map->ntotal; ++p) {
      const Label label = id_map->id_map[static_cast<size_t>(p)];
      if (label >= 0 && static_cast<size_t>(label) < selected.size() &&
          selected[static_cast<size_t>(label)]) {
        positions.push_back(p);
      }
    }
    std::vector<float> vectors(positions.size() * row_floats);
    try {
      for (size_t i = 0; i < positions.size(); ++i) {
        id_map->index->reconstruct(positions[i], vectors.data() + i * row_floats);
      }
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("FAISS failed to read back ", positions.size(),
                                              " vectors of a '", factory_,
                                              "' shard for a filtered search: ", e.what()));
    }
    std::vector<ShardHit> scored(positions.size());
    for (size_t q = 0; q < n; ++q) {
      const float* query = queries + q * row_floats;
      for (size_t i = 0; i < positions.size(); ++i) {
        const float* v = vectors.data() + i * row_floats;
        float dot = 0;
        for (size_t d = 0; d < row_floats; ++d) dot += query[d] * v[d];
        const Label label = id_map->id_map[static_cast<size_t>(positions[i])];
        scored[i] = ShardHit{dot, &id_of_.find(label)->second};
      }
      const size_t keep = std::min(width, scored.size());
      std::partial_sort(scored.begin(), scored.begin() + static_cast<ptrdiff_t>(keep),
                        scored.end(), better);
      hits[q].assign(scored.begin(), scored.begin() + static_cast<ptrdiff_t>(keep));
    }
    return hits;
  }

  // Many pass: the index's own search, seeing only them. A graph or IVF search stops after a
  // fixed number of candidates whether they pass or not, so it looks 1/fraction times further.
  LabelSelector selector(id_map != nullptr ? &id_map->id_map : nullptr, &selected);
  const faiss::Index* target = id_map != nullptr ? id_map->index : index_.get();
  faiss::SearchParameters plain;
  faiss::SearchParametersHNSW hnsw_params;
  faiss::SearchParametersIVF ivf_params;
  faiss::SearchParameters* params = &plain;
  const double widen = 1.0 / std::max(fraction, 1e-9);
  // HNSW: FAISS 1.7.3 ignores SearchParametersHNSW::efSearch when searching (its candidate list
  // is max(the index's efSearch, k)), so the search is widened by asking for more hits, `fetch`,
  // and keeping the best `width`. efSearch is still passed for FAISS versions that read it.
  size_t fetch = width;
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(target)) {
    double ef = std::max<double>({static_cast<double>(hnsw->hnsw.efSearch),
                                  static_cast<double>(filter.min_ef_search),
                                  static_cast<double>(width)}) *
                widen;
    if (filter.max_ef_search > 0) ef = std::min<double>(ef, filter.max_ef_search);
    fetch = std::max(width, std::min(labels.size(), static_cast<size_t>(ef)));
    hnsw_params.efSearch = static_cast<int>(fetch);
    params = &hnsw_params;
  } else if (const faiss::IndexIVF* ivf = faiss::ivflib::try_extract_index_ivf(target)) {
    ivf_params.nprobe = std::min<size_t>(
        ivf->nlist, static_cast<size_t>(std::ceil(static_cast<double>(ivf->nprobe) * widen)));
    params = &ivf_params;
  }
  params->sel = &selector;
  std::vector<float> scores(fetch);
  std::vector<Label> found(fetch);
  for (size_t q = 0; q < n; ++q) {
    try {
      target->search(1, queries + q * row_floats, static_cast<Label>(fetch), scores.data(),
                     found.data(), params);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("FAISS failed a filtered search for ", fetch,
                                              " hits in a '", factory_, "' shard: ", e.what()));
    }
    for (size_t j = 0; j < fetch; ++j) {
      // Checked again: a type that ignored the selector must not leak what did not pass.
      if (!selector.is_member(found[j])) continue;
      const Label label =
          id_map != nullptr ? id_map->id_map[static_cast<size_t>(found[j])] : found[j];
      hits[q].push_back(ShardHit{scores[j], &id_of_.find(label)->second});
    }
    const size_t keep = std::min(width, hits[q].size());
    std::partial_sort(hits[q].begin(), hits[q].begin() + static_cast<ptrdiff_t>(keep),
                      hits[q].end(), better);
    hits[q].resize(keep);
  }
  return hits;
}

bool Shard::mapped() const { return !MappedFileBytes(*index_).empty(); }

bool Shard::Contains(std::string_view id) const { return label_of_.contains(AsAbsl(id)); }

absl::Status Shard::CopyLiveVectors(const std::vector<size_t>& ordinals, float* out) const {
  if (ordinals.empty()) return absl::OkStatus();
  const auto* id_map = static_cast<const faiss::IndexIDMap*>(index_.get());
  const size_t row_floats = static_cast<size_t>(dim_);
  size_t live = 0;  // live vectors seen so far
  size_t next = 0;  // ordinals written so far
  try {
    for (Label position = 0; position < id_map->ntotal && next < ordinals.size(); ++position) {
      if (!id_of_.contains(id_map->id_map[static_cast<size_t>(position)])) continue;
      if (live++ != ordinals[next]) continue;
      id_map->index->reconstruct(position, out + next * row_floats);
      ++next;
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("FAISS failed to read vectors back from a '", factory_,
                                            "' shard: ", e.what()));
  }
  if (next != ordinals.size()) {
    return absl::InternalError(
        absl::StrCat("asked for ", ordinals.size(), " live vectors of a shard but found ", next));
  }
  return absl::OkStatus();
}

bool Shard::exact_vectors() const {
  const auto* id_map = dynamic_cast<const faiss::IndexIDMap*>(index_.get());
  if (id_map == nullptr) return false;  // an IVF that keeps labels: no direct map
  const faiss::Index* core = id_map->index;
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(core)) {
    if (hnsw->reconstruct_from_neighbors != nullptr) return false;
    core = hnsw->storage;
  }
  // IndexFlat keeps the floats as added (IndexFlatIP, and HNSW's flat storage); its siblings
  // under IndexFlatCodes (SQ, PQ, ...) keep codes.
  return dynamic_cast<const faiss::IndexFlat*>(core) != nullptr;
}

absl::Status Shard::ReadVectors(const std::vector<std::string>& ids,
                                const std::vector<size_t>& rows, const std::vector<float*>& out,
                                std::vector<uint8_t>& found) const {
  const auto* id_map = static_cast<const faiss::IndexIDMap*>(index_.get());
  const std::vector<Label>& labels = id_map->id_map;
  try {
    for (size_t r : rows) {
      auto it = label_of_.find(ids[r]);
      if (it == label_of_.end()) continue;
      // Labels ascend with the positions: Upsert appends fresh (greater) labels, removals and
      // rebuilds keep the order. Searched linearly should that ever not hold.
      auto at = std::lower_bound(labels.begin(), labels.end(), it->second);
      if (at == labels.end() || *at != it->second) {
        at = std::find(labels.begin(), labels.end(), it->second);
        if (at == labels.end()) {
          return absl::InternalError(absl::StrCat("a live label of a '", factory_,
                                                  "' shard is missing from its FAISS index"));
        }
      }
      id_map->index->reconstruct(at - labels.begin(), out[r]);
      found[r] = 1;
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("FAISS failed to read vectors back from a '", factory_,
                                            "' shard: ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status Shard::Train(std::shared_ptr<const faiss::Index> prototype) {
  std::unique_ptr<faiss::Index> trained;
  bool can_remove = false;
  try {
    trained = NewIndex(dim_, factory_, State::kTrained, prototype.get());
    can_remove = CanRemove(*trained);
    CopyLiveInto(*trained);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("FAISS failed to move ", size(),
                                            " vectors into a trained '", factory_,
                                            "' index: ", e.what()));
  }
  state_ = State::kTrained;
  prototype_ = std::move(prototype);
  index_ = std::move(trained);
  can_remove_ = can_remove;
  tombstones_.clear();  // only live vectors moved
  return absl::OkStatus();
}

void Shard::CopyLiveInto(faiss::Index& to) const {
  const auto* from = static_cast<const faiss::IndexIDMap*>(index_.get());
  const size_t row_floats = static_cast<size_t>(dim_);
  const Label chunk =
      static_cast<Label>(std::max<size_t>(1, kCompactChunkBytes / (row_floats * sizeof(float))));
  std::vector<float> rows(static_cast<size_t>(chunk) * row_floats);
  std::vector<float> live;
  std::vector<Label> labels;
  for (Label begin = 0; begin < from->ntotal; begin += chunk) {
    const Label count = std::min(chunk, from->ntotal - begin);
    from->index->reconstruct_n(begin, count, rows.data());
    live.clear();
    labels.clear();
    for (Label i = 0; i < count; ++i) {
      const Label label = from->id_map[static_cast<size_t>(begin + i)];
      if (!id_of_.contains(label)) continue;  // dead
      const float* row = rows.data() + static_cast<size_t>(i) * row_floats;
      live.insert(live.end(), row, row + row_floats);
      labels.push_back(label);
    }
    if (!labels.empty()) {
      to.add_with_ids(static_cast<Label>(labels.size()), live.data(), labels.data());
    }
  }
}

void Shard::MaybeCompact() {
  if (tombstones_.size() <= std::max(kCompactMinTombstones, label_of_.size())) return;
  if (can_remove_) {  // only a failed add's leftovers: remove them
    try {
      const std::vector<Label> dead(tombstones_.begin(), tombstones_.end());
      index_->remove_ids(faiss::IDSelectorBatch(dead.size(), dead.data()));
      tombstones_.clear();
    } catch (const std::exception&) {
      // Keep them: they are still filtered out; the next change retries.
    }
    return;
  }
  // Removal is impossible only under an IndexIDMap (an index that takes labels is an IVF).
  try {
    std::unique_ptr<faiss::Index> fresh = NewIndex(dim_, factory_, state_, prototype_.get());
    CopyLiveInto(*fresh);
    index_ = std::move(fresh);
    tombstones_.clear();
  } catch (const std::exception&) {
    // Keep the old index: tombstones still filter correctly; the next change retries.
  }
}

absl::StatusOr<Shard::Image> Shard::Serialize() const {
  Image image;
  // A mapped shard is unchanged since Restore (mutations unmap it first), so its file is its state.
  if (const std::string_view file = MappedFileBytes(*index_); !file.empty()) {
    image.index.assign(file.begin(), file.end());
  } else {
    RETRACE_ASSIGN_OR_RETURN(image.index, IndexToBytes(*index_));
  }
  // Sorted by label, so one state always gives the same bytes.
  std::vector<std::pair<int64_t, const std::string*>> live;
  live.reserve(id_of_.size());
  for (const auto& [label, id] : id_of_) live.emplace_back(label, &id);
  std::sort(live.begin(), live.end());
  std::vector<int64_t> dead(tombstones_.begin(), tombstones_.end());
  std::sort(dead.begin(), dead.end());
  ByteWriter out;
  out.Raw(kIdsMagic);
  out.U8(static_cast<uint8_t>(state_));
  out.I64(next_label_);
  out.U64(live.size());
  for (const auto& [label, id] : live) {
    out.I64(label);
    out.Bytes(*id);
  }
  out.U64(dead.size());
  for (int64_t label : dead) out.I64(label);
  image.ids = out.Release();
  return image;
}

absl::StatusOr<std::unique_ptr<Shard>> Shard::Restore(int dim, const std::string& factory,
                                                      Image image,
                                                      std::shared_ptr<const faiss::Index> prototype,
                                                      int nprobe) {
  ByteReader in(image.ids);
  std::string_view magic;
  uint8_t state_byte = 0;
  int64_t next_label = 0;
  uint64_t live = 0;
  if (!in.Raw(kIdsMagic.size(), &magic) || magic != kIdsMagic) {
    return absl::DataLossError("id map: does not start with the magic " + std::string(kIdsMagic));
  }
  if (!in.U8(&state_byte) || state_byte > static_cast<uint8_t>(State::kTrained)) {
    return absl::DataLossError("id map: missing or unknown shard state");
  }
  // Each live entry takes at least 17 bytes: a bigger count is a lie, not a reason to allocate.
  if (!in.I64(&next_label) || next_label < 0 || !in.U64(&live) || live > in.remaining() / 17) {
    return absl::DataLossError("id map: truncated or bad header");
  }
  const auto state = static_cast<State>(state_byte);
  auto shard = absl::WrapUnique(new Shard(dim, factory, state, nullptr, nullptr, true));
  shard->next_label_ = next_label;
  shard->label_of_.reserve(live);
  shard->id_of_.reserve(live);
  for (uint64_t i = 0; i < live; ++i) {
    int64_t label = 0;
    std::string_view id;
    if (!in.I64(&label) || !in.Bytes(&id)) {
      return absl::DataLossError(absl::StrCat("id map: truncated in live item ", i));
    }
    if (label < 0 || label >= next_label || id.empty() ||
        !shard->label_of_.emplace(std::string(id), label).second ||
        !shard->id_of_.emplace(label, std::string(id)).second) {
      return absl::DataLossError(absl::StrCat(
          "id map: live item ", i, " has a label out of range, an empty id or a duplicate"));
    }
  }
  uint64_t dead = 0;
  if (!in.U64(&dead) || dead > in.remaining() / 8) {
    return absl::DataLossError("id map: truncated tombstone list");
  }
  for (uint64_t i = 0; i < dead; ++i) {
    int64_t label = 0;
    if (!in.I64(&label) || label < 0 || label >= next_label || shard->id_of_.contains(label) ||
        !shard->tombstones_.insert(label).second) {
      return absl::DataLossError(absl::StrCat("id map: tombstone ", i,
                                              " is out of range, live "
                                              "or repeated"));
    }
  }
  if (in.remaining() != 0) {
    return absl::DataLossError(absl::StrCat("id map: ", in.remaining(), " bytes after the end"));
  }

  absl::StatusOr<FactoryInfo> info = InspectFactory(dim, factory);
  if (!info.ok()) return absl::InvalidArgumentError(info.status().message());
  if (info->needs_training == (state == State::kPlain)) {
    return absl::DataLossError(
        absl::StrCat("id map: shard state ", state_byte, " does not fit factory '", factory, "'"));
  }
  if (state == State::kTrained && prototype == nullptr) {
    return absl::DataLossError("a trained shard needs the trained prototype, which is missing");
  }
  RETRACE_ASSIGN_OR_RETURN(std::unique_ptr<faiss::Index> index,
                           image.index_file.empty()
                               ? IndexFromBytes(std::move(image.index))
                               : IndexFromFile(image.index_file, /*map_lists=*/true));
  try {
    if (index->d != dim || index->metric_type != faiss::METRIC_INNER_PRODUCT) {
      return absl::DataLossError(absl::StrCat("index: dimension ", index->d, ", metric ",
                                              static_cast<int>(index->metric_type), "; expected ",
                                              dim, ", inner product"));
    }
    // The index must be of the type this state of the factory builds, wrapped the same way.
    const auto* id_map = dynamic_cast<const faiss::IndexIDMap*>(index.get());
    const faiss::Index& core = id_map != nullptr ? *id_map->index : *index;
    bool fits = false;
    if (state == State::kTrained) {
      fits = (id_map == nullptr) == TakesLabels(*prototype) && typeid(core) == typeid(*prototype);
    } else {
      // Compare with what read_index makes of an empty one ("Flat" comes back as IndexFlatIP).
      RETRACE_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                               IndexToBytes(*NewIndex(dim, factory, state, nullptr)));
      RETRACE_ASSIGN_OR_RETURN(std::unique_ptr<faiss::Index> empty,
                               IndexFromBytes(std::move(bytes)));
      const auto& want = static_cast<const faiss::IndexIDMap&>(*empty);
      fits = id_map != nullptr && typeid(core) == typeid(*want.index);
    }
    if (!fits) {
      return absl::DataLossError(absl::StrCat("index: its type does not fit a shard of '", factory,
                                              "' in state ", state_byte));
    }
    const size_t total = static_cast<size_t>(index->ntotal);
    size_t live_in_index = 0;
    if (id_map != nullptr) {
      for (Label label : id_map->id_map) live_in_index += shard->id_of_.contains(label) ? 1 : 0;
    }
    if (total < live || total > live + dead || (id_map != nullptr && live_in_index != live)) {
      return absl::DataLossError(absl::StrCat("index holds ", total, " vectors (", live_in_index,
                                              " of them live) but the id map names ", live,
                                              " live and ", dead, " dead"));
    }
    shard->can_remove_ = CanRemove(*index);
    if (state == State::kTrained) SetNprobe(*index, nprobe);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("FAISS failed while checking the index: ", e.what()));
  }
  shard->index_ = std::move(index);
  shard->prototype_ = state == State::kTrained ? std::move(prototype) : nullptr;
  return shard;
}

}  // namespace retrace::index::internal
