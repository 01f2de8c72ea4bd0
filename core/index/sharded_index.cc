#include "core/index/sharded_index.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"
#include "core/common/thread_pool.h"
#include "core/index/internal/faiss_index.h"
#include "core/index/internal/shard.h"

namespace retrace::index {
namespace {

using internal::Shard;
using internal::ShardHit;

// kTrainingSeed makes the training sample, and so the trained index, the same on every run.
constexpr uint64_t kTrainingSeed = 0x5eed1dec0de5;

// kMaxQuotedIdBytes keeps error messages short when a caller sends a huge id.
constexpr size_t kMaxQuotedIdBytes = 64;

std::string Quote(const std::string& id) {
  const bool cut = id.size() > kMaxQuotedIdBytes;
  return absl::StrCat("'", absl::CHexEscape(absl::string_view(id).substr(0, kMaxQuotedIdBytes)),
                      cut ? "'..." : "'");
}

// FirstNonFinite returns the index of the first non-finite value among `count`, or -1.
int64_t FirstNonFinite(const float* values, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

// QueryHits holds, for each query of a batch, its hits so far.
using QueryHits = std::vector<std::vector<ShardHit>>;

// MergeInto adds `more` to `best` query by query, keeping each query's k best, best first: by
// score, then by id, so the result does not depend on the order shards are merged in.
void MergeInto(QueryHits& best, const QueryHits& more, int k) {
  auto better = [](const ShardHit& a, const ShardHit& b) {
    if (a.score != b.score) return a.score > b.score;
    return *a.id < *b.id;
  };
  for (size_t q = 0; q < best.size(); ++q) {
    std::vector<ShardHit>& into = best[q];
    into.insert(into.end(), more[q].begin(), more[q].end());
    const size_t keep = std::min(into.size(), static_cast<size_t>(k));
    std::partial_sort(into.begin(), into.begin() + static_cast<ptrdiff_t>(keep), into.end(),
                      better);
    into.resize(keep);
  }
}

absl::Status WithShard(const absl::Status& status, size_t shard) {
  return absl::Status(status.code(), absl::StrCat("shard ", shard, ": ", status.message()));
}

// ShardSearchPool holds the process's shard-search threads (banner: Parallelism), one fewer than
// the cores since the searching thread takes shards too, each with one OpenMP thread. Started by
// the first search over several shards; its idle threads are joined when the process exits.
ThreadPool& ShardSearchPool() {
  static ThreadPool pool(static_cast<int>(std::max(2u, std::thread::hardware_concurrency())) - 1,
                         [] { omp_set_num_threads(1); });
  return pool;
}

// OneOpenMpThread gives the calling thread's FAISS calls one OpenMP thread while it lives, then
// gives the thread back its own setting (a per-thread value, so other threads are unaffected).
class OneOpenMpThread {
 public:
  OneOpenMpThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneOpenMpThread() { omp_set_num_threads(saved_); }
  OneOpenMpThread(const OneOpenMpThread&) = delete;
  OneOpenMpThread& operator=(const OneOpenMpThread&) = delete;

 private:
  const int saved_;
};

}  // namespace

uint32_t ShardedIndex::ShardOf(std::string_view id, int shards) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a 64 offset basis
  for (unsigned char byte : id) {
    hash ^= byte;
    hash *= 1099511628211ull;  // FNV-1a 64 prime
  }
  return static_cast<uint32_t>(hash % static_cast<uint64_t>(std::max(shards, 1)));
}

absl::StatusOr<std::unique_ptr<ShardedIndex>> ShardedIndex::Create(const IndexOptions& options) {
  if (options.dim < 1 || options.dim > kMaxDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("IndexOptions.dim must be in 1..", kMaxDim, "; got ", options.dim));
  }
  if (options.shards < 1 || options.shards > kMaxShards) {
    return absl::InvalidArgumentError(
        absl::StrCat("IndexOptions.shards must be in 1..", kMaxShards, "; got ", options.shards));
  }
  if (options.train_min_vectors < 0 || options.nprobe < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("IndexOptions.train_min_vectors and IndexOptions.nprobe must not be "
                     "negative; got ",
                     options.train_min_vectors, " and ", options.nprobe));
  }
  absl::StatusOr<internal::FactoryInfo> info =
      internal::InspectFactory(options.dim, options.factory);
  if (!info.ok()) {
    return absl::Status(info.status().code(),
                        absl::StrCat("IndexOptions.", info.status().message()));
  }
  Training training;
  training.needed = info->needs_training;
  if (training.needed) {
    const size_t wanted = static_cast<size_t>(options.train_min_vectors);
    if (wanted > 0 && wanted < info->min_training_vectors) {
      return absl::InvalidArgumentError(absl::StrCat(
          "IndexOptions.train_min_vectors must be at least ", info->min_training_vectors,
          " for factory '", options.factory, "' (FAISS cannot train it on fewer); got ", wanted));
    }
    training.threshold = wanted > 0 ? wanted : info->recommended_training_vectors;
    training.max_sample = info->max_training_vectors;
    training.nprobe = options.nprobe > 0 ? options.nprobe : internal::DefaultNprobe(info->nlist);
  }
  std::vector<std::unique_ptr<Shard>> shards;
  shards.reserve(static_cast<size_t>(options.shards));
  for (int s = 0; s < options.shards; ++s) {
    absl::StatusOr<std::unique_ptr<Shard>> shard = Shard::Create(options.dim, options.factory);
    if (!shard.ok()) return shard.status();
    shards.push_back(*std::move(shard));
  }
  return std::unique_ptr<ShardedIndex>(new ShardedIndex(options, training, std::move(shards)));
}

ShardedIndex::ShardedIndex(IndexOptions options, Training training,
                           std::vector<std::unique_ptr<Shard>> shards)
    : options_(std::move(options)), training_(training), shards_(std::move(shards)) {}

ShardedIndex::~ShardedIndex() = default;

absl::Status ShardedIndex::Add(const std::vector<std::string>& ids, const float* vectors,
                               size_t n) {
  if (ids.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("ids has ", ids.size(), " entries but n is ", n));
  }
  if (n == 0) return absl::OkStatus();
  if (vectors == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("vectors is null but n is ", n));
  }
  // Validate everything before touching a shard, so a bad item changes nothing.
  const size_t dim = static_cast<size_t>(options_.dim);
  absl::flat_hash_map<absl::string_view, size_t> first_at;
  first_at.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (ids[i].empty()) return absl::InvalidArgumentError(absl::StrCat("ids[", i, "] is empty"));
    auto [it, inserted] = first_at.emplace(ids[i], i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("ids[", i, "] ", Quote(ids[i]),
                                                     " repeats ids[", it->second,
                                                     "]; one Add call names each id once"));
    }
    const int64_t bad = FirstNonFinite(vectors + i * dim, dim);
    if (bad >= 0) {
      return absl::InvalidArgumentError(absl::StrCat("vectors row ", i, " (id ", Quote(ids[i]),
                                                     ") has a non-finite value at component ",
                                                     bad));
    }
  }
  std::vector<std::vector<size_t>> rows(static_cast<size_t>(options_.shards));
  for (size_t i = 0; i < n; ++i) rows[ShardOf(ids[i], options_.shards)].push_back(i);

  absl::MutexLock lock(&mu_);
  size_t live = 0;
  bool pending = false;
  for (size_t s = 0; s < rows.size(); ++s) {
    absl::Status status = shards_[s]->Upsert(ids, vectors, rows[s]);
    if (!status.ok()) return WithShard(status, s);
    live += shards_[s]->size();
    pending = pending || shards_[s]->state() == Shard::State::kPending;
  }
  if (!pending || live < training_.threshold) return absl::OkStatus();
  absl::Status trained = TrainLocked();
  if (trained.ok()) return trained;
  return absl::Status(trained.code(), absl::StrCat("the ", n,
                                                   " items were added, but training failed (search "
                                                   "stays exact; the next Add retries): ",
                                                   trained.message()));
}

absl::Status ShardedIndex::TrainLocked() {
  std::shared_ptr<const faiss::Index> prototype;
  size_t total = 0;
  for (const std::unique_ptr<Shard>& shard : shards_) {
    if (shard->prototype() != nullptr) prototype = shard->prototype();
    if (shard->state() == Shard::State::kPending) total += shard->size();
  }
  if (prototype == nullptr) {
    // A uniform sample without replacement of the live vectors, numbered shard by shard in
    // storage order; a partial Fisher-Yates shuffle with a fixed seed, then sorted.
    const size_t count = std::min(total, training_.max_sample);
    std::vector<size_t> picks(total);
    std::iota(picks.begin(), picks.end(), size_t{0});
    if (count < total) {
      std::mt19937_64 rng(kTrainingSeed);
      for (size_t i = 0; i < count; ++i) {
        std::uniform_int_distribution<size_t> pick(i, total - 1);
        std::swap(picks[i], picks[pick(rng)]);
      }
      picks.resize(count);
    }
    std::sort(picks.begin(), picks.end());
    const size_t dim = static_cast<size_t>(options_.dim);
    std::vector<float> sample(count * dim);
    size_t done = 0;   // picks copied so far
    size_t first = 0;  // the ordinal of this shard's first live vector
    for (const std::unique_ptr<Shard>& shard : shards_) {
      const auto begin = picks.begin() + static_cast<ptrdiff_t>(done);
      std::vector<size_t> local(begin, std::lower_bound(begin, picks.end(), first + shard->size()));
      for (size_t& pick : local) pick -= first;
      RETRACE_RETURN_IF_ERROR(shard->CopyLiveVectors(local, sample.data() + done * dim));
      done += local.size();
      first += shard->size();
    }
    RETRACE_ASSIGN_OR_RETURN(
        prototype, internal::TrainPrototype(options_.dim, options_.factory, sample.data(), count,
                                            training_.nprobe));
  }
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (shards_[s]->state() != Shard::State::kPending) continue;
    absl::Status status = shards_[s]->Train(prototype);
    if (!status.ok()) return WithShard(status, s);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> ShardedIndex::Remove(const std::vector<std::string>& ids) {
  std::vector<std::vector<size_t>> rows(static_cast<size_t>(options_.shards));
  for (size_t i = 0; i < ids.size(); ++i) rows[ShardOf(ids[i], options_.shards)].push_back(i);

  absl::MutexLock lock(&mu_);
  size_t removed = 0;
  for (size_t s = 0; s < rows.size(); ++s) {
    if (rows[s].empty()) continue;
    absl::StatusOr<size_t> count = shards_[s]->Remove(ids, rows[s]);
    if (!count.ok()) return WithShard(count.status(), s);
    removed += *count;
  }
  return removed;
}

absl::StatusOr<std::vector<std::vector<IndexHit>>> ShardedIndex::Search(
    const float* queries, size_t n, int k, const SearchFilter* filter) const {
  if (filter != nullptr && filter->allowed == nullptr) {
    return absl::InvalidArgumentError("filter: its set of allowed ids is null");
  }
  if (k < 1 || k > kMaxK) {
    return absl::InvalidArgumentError(absl::StrCat("k must be in 1..", kMaxK, "; got ", k));
  }
  if (n > kMaxQueries) {
    return absl::InvalidArgumentError(
        absl::StrCat("n must be at most ", kMaxQueries, " queries per Search; got ", n));
  }
  if (n * static_cast<size_t>(k) > kMaxHitsPerSearch) {
    return absl::InvalidArgumentError(
        absl::StrCat("n * k must be at most ", kMaxHitsPerSearch, "; got ", n, " * ", k));
  }
  if (n > 0 && queries == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("queries is null but n is ", n));
  }
  const size_t dim = static_cast<size_t>(options_.dim);
  for (size_t q = 0; q < n; ++q) {
    const int64_t bad = FirstNonFinite(queries + q * dim, dim);
    if (bad >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("queries row ", q, " has a non-finite value at component ", bad));
    }
  }

  // The reader lock is held until the ids are copied out: ShardHit points into the shards.
  absl::ReaderMutexLock lock(&mu_);
  // Shards with something to search, as plain pointers so the workers need not name shards_.
  std::vector<size_t> busy;
  std::vector<const Shard*> busy_shards;
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (shards_[s]->size() == 0) continue;
    busy.push_back(s);
    busy_shards.push_back(shards_[s].get());
  }
  // Each shard's hits are merged into `best` as soon as they are found, so memory stays at
  // (searching threads + 1) * n * k hits whatever the shard count.
  absl::Mutex merge_mu;
  QueryHits best(n);
  absl::Status failed;             // the failure of the first failing shard, by number
  size_t failed_at = busy.size();  // its position in busy
  auto search = [&](size_t i) {
    absl::Status status;
    try {
      absl::StatusOr<QueryHits> found = busy_shards[i]->Search(queries, n, k, filter);
      if (found.ok()) {
        absl::MutexLock merge(&merge_mu);
        MergeInto(best, *found, k);
        return;
      }
      status = found.status();
    } catch (const std::exception& e) {  // e.g. std::bad_alloc for the result buffers
      status = absl::InternalError(e.what());
    }
    absl::MutexLock merge(&merge_mu);
    if (i < failed_at) {
      failed_at = i;
      failed = WithShard(status, busy[i]);
    }
  };
  if (busy.size() == 1) {
    search(0);  // on this thread, with its own OpenMP setting
  } else if (busy.size() > 1) {
    OneOpenMpThread one_thread;
    ShardSearchPool().ParallelFor(busy.size(), busy.size() - 1, search);
  }
  if (!failed.ok()) return failed;

  std::vector<std::vector<IndexHit>> results(n);
  for (size_t q = 0; q < n; ++q) {
    results[q].reserve(best[q].size());
    for (const ShardHit& hit : best[q]) results[q].push_back(IndexHit{*hit.id, hit.score});
  }
  return results;
}

bool ShardedIndex::Contains(std::string_view id) const {
  absl::ReaderMutexLock lock(&mu_);
  return shards_[ShardOf(id, options_.shards)]->Contains(id);
}

absl::StatusOr<std::vector<bool>> ShardedIndex::ReadVectors(const std::vector<std::string>& ids,
                                                            const std::vector<float*>& rows) const {
  if (rows.size() != ids.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rows: ", rows.size(), " for ", ids.size(), " ids"));
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] == nullptr) return absl::InvalidArgumentError(absl::StrCat("rows[", i, "] is null"));
  }
  std::vector<std::vector<size_t>> by_shard(static_cast<size_t>(options_.shards));
  for (size_t i = 0; i < ids.size(); ++i) by_shard[ShardOf(ids[i], options_.shards)].push_back(i);
  std::vector<uint8_t> found(ids.size(), 0);
  absl::ReaderMutexLock lock(&mu_);
  // Every shard, not only those asked: the answer should not depend on which ids were asked.
  for (const std::unique_ptr<Shard>& shard : shards_) {
    if (!shard->exact_vectors()) {
      return absl::UnimplementedError(absl::StrCat("index '", options_.factory,
                                                   "' keeps no exact copy of its vectors"));
    }
  }
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (by_shard[s].empty()) continue;
    absl::Status status = shards_[s]->ReadVectors(ids, by_shard[s], rows, found);
    if (!status.ok()) return WithShard(status, s);
  }
  return std::vector<bool>(found.begin(), found.end());
}

bool ShardedIndex::trained() const {
  absl::ReaderMutexLock lock(&mu_);
  for (const std::unique_ptr<Shard>& shard : shards_) {
    if (shard->state() == Shard::State::kPending) return false;
  }
  return true;
}

int ShardedIndex::mapped_shards() const {
  absl::ReaderMutexLock lock(&mu_);
  int mapped = 0;
  for (const std::unique_ptr<Shard>& shard : shards_) mapped += shard->mapped() ? 1 : 0;
  return mapped;
}

size_t ShardedIndex::size() const {
  absl::ReaderMutexLock lock(&mu_);
  size_t total = 0;
  for (const std::unique_ptr<Shard>& shard : shards_) total += shard->size();
  return total;
}

}  // namespace retrace::index
