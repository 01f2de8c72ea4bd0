// capacity_bench.cc — what one index type costs at scale (issue 20, part 4): resident memory per
// item, snapshot save and load (start-up) time, memory-mapped load where FAISS can map (trained
// IVF), recall@k against exact search and queries per second with 1 and 2 callers. N random unit
// vectors (uniform on the sphere: no clusters, the hardest case for IVF and HNSW). A figure, not
// a test (tests/unit/index/snapshot_test.cc asserts the snapshot and mapping behaviour).
//
// Each phase prints /proc/loadavg beside its figures: on a shared machine they mean little
// without it. One process per factory string, so each memory figure starts from a clean heap.
//
//   build/bench/capacity_bench --factory SQ8 --items 1000000 --dim 768 --dir /tmp/capacity
#include <faiss/utils/distances.h>
#include <faiss/utils/random.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/index/sharded_index.h"

ABSL_FLAG(std::string, factory, "Flat", "FAISS factory string");
ABSL_FLAG(int64_t, items, 1000000, "items in the index");
ABSL_FLAG(int, dim, 768, "vector dimension");
ABSL_FLAG(int, shards, 1, "shards");
ABSL_FLAG(int64_t, train_min_vectors, 0, "IndexOptions::train_min_vectors (0: FAISS's 39 per "
                                         "centroid)");
ABSL_FLAG(int, nprobe, 0, "IndexOptions::nprobe (0: nlist / 16)");
ABSL_FLAG(int, queries, 1000, "queries for recall@k (searched as one batch)");
ABSL_FLAG(int, k, 10, "top k");
ABSL_FLAG(double, qps_seconds, 10, "seconds each QPS figure runs (queries one at a time)");
ABSL_FLAG(int64_t, add_batch, 50000, "items per Add call while building");
ABSL_FLAG(std::string, dir, "/tmp/retrace_capacity_bench", "snapshot directory (replaced)");

namespace {

using retrace::index::IndexHit;
using retrace::index::IndexOptions;
using retrace::index::ShardedIndex;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string line;
  std::getline(in, line);
  return "loadavg " + line.substr(0, line.find(' ', line.find(' ', line.find(' ') + 1) + 1));
}

// Resident is VmRSS, RssAnon and RssFile of this process in bytes, after returning freed heap
// memory to the kernel (so a figure is what is held, not what malloc keeps around).
struct Resident {
  int64_t total = 0, anon = 0, file = 0;
};
Resident MeasureResident() {
  malloc_trim(0);
  Resident r;
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    int64_t* field = line.rfind("VmRSS:", 0) == 0     ? &r.total
                     : line.rfind("RssAnon:", 0) == 0 ? &r.anon
                     : line.rfind("RssFile:", 0) == 0 ? &r.file
                                                      : nullptr;
    if (field == nullptr) continue;
    int64_t kib = 0;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits += c;
    }
    if (absl::SimpleAtoi(digits, &kib)) *field = kib * 1024;
  }
  return r;
}

// EvictFromPageCache asks the kernel to drop the snapshot's cached pages (ours only; no root),
// so a load reads from the disk rather than from the copy the save left in memory.
int64_t EvictFromPageCache(const std::string& dir) {
  int64_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    bytes += static_cast<int64_t>(entry.file_size());
    const int fd = open(entry.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
  return bytes;
}

// Recall is the share of the exact top k (by inner product) that the index returns for each query.
double Recall(const ShardedIndex& index, const std::vector<float>& queries, int nq, int k,
              const std::vector<int64_t>& truth) {
  auto found = index.Search(queries.data(), static_cast<size_t>(nq), k);
  if (!found.ok()) {
    std::fprintf(stderr, "search failed: %s\n", found.status().ToString().c_str());
    std::exit(1);
  }
  int64_t hits = 0;
  for (int q = 0; q < nq; ++q) {
    absl::flat_hash_set<int64_t> want(truth.begin() + q * k, truth.begin() + (q + 1) * k);
    for (const IndexHit& hit : (*found)[q]) {
      int64_t row = -1;
      if (absl::SimpleAtoi(hit.id, &row) && want.contains(row)) ++hits;
    }
  }
  return static_cast<double>(hits) / (static_cast<double>(nq) * k);
}

// QueriesPerSecond runs `callers` threads, each searching one query at a time (cycling through
// `queries`) for `seconds`.
double QueriesPerSecond(const ShardedIndex& index, const std::vector<float>& queries, int nq,
                        int dim, int k, int callers, double seconds) {
  std::atomic<int64_t> done{0};
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      for (int64_t i = c; Seconds(start) < seconds; i += callers) {
        if (!index.Search(queries.data() + (i % nq) * dim, 1, k).ok()) std::exit(1);
        done.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return static_cast<double>(done.load()) / Seconds(start);
}

std::unique_ptr<ShardedIndex> Load(const std::string& dir, const IndexOptions& options) {
  auto loaded = ShardedIndex::LoadSnapshot(dir, options);
  if (!loaded.ok()) {
    std::fprintf(stderr, "load failed: %s\n", loaded.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(loaded->index);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each figure as it comes, into a log too
  const int64_t n = absl::GetFlag(FLAGS_items);
  const int dim = absl::GetFlag(FLAGS_dim), nq = absl::GetFlag(FLAGS_queries),
            k = absl::GetFlag(FLAGS_k);
  const double qps_seconds = absl::GetFlag(FLAGS_qps_seconds);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  IndexOptions options{dim, absl::GetFlag(FLAGS_shards), absl::GetFlag(FLAGS_factory),
                       absl::GetFlag(FLAGS_train_min_vectors), absl::GetFlag(FLAGS_nprobe)};
  std::printf("capacity_bench: %s, %lld items x dim %d, %d shard(s), %d queries, k %d; %u cores\n",
              options.factory.c_str(), static_cast<long long>(n), dim, options.shards, nq, k,
              std::thread::hardware_concurrency());

  Clock::time_point start = Clock::now();
  std::vector<float> data(static_cast<size_t>(n) * dim), queries(static_cast<size_t>(nq) * dim);
  faiss::float_randn(data.data(), data.size(), 1);
  faiss::fvec_renorm_L2(dim, n, data.data());
  faiss::float_randn(queries.data(), queries.size(), 2);
  faiss::fvec_renorm_L2(dim, nq, queries.data());
  std::vector<int64_t> truth(static_cast<size_t>(nq) * k);
  std::vector<float> truth_scores(truth.size());
  faiss::knn_inner_product(queries.data(), data.data(), dim, nq, n, k, truth_scores.data(),
                           truth.data());
  std::printf("data and exact top %d: %.1f s  [%s]\n", k, Seconds(start), LoadAverage().c_str());

  // Build: memory is measured around the index only (the input vectors are already resident).
  const Resident before = MeasureResident();
  auto created = ShardedIndex::Create(options);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<ShardedIndex> index = *std::move(created);
  start = Clock::now();
  const int64_t batch = absl::GetFlag(FLAGS_add_batch);
  for (int64_t from = 0; from < n; from += batch) {
    const int64_t count = std::min(batch, n - from);
    std::vector<std::string> ids;
    ids.reserve(count);
    for (int64_t i = from; i < from + count; ++i) ids.push_back(absl::StrCat(i));
    const absl::Status added = index->Add(ids, data.data() + from * dim, ids.size());
    if (!added.ok()) {
      std::fprintf(stderr, "add failed: %s\n", added.ToString().c_str());
      return 1;
    }
  }
  const double build_s = Seconds(start);
  const Resident built = MeasureResident();
  std::printf("build: %.1f s; resident +%.0f MiB = %.0f bytes/item (ids and maps included)  [%s]\n",
              build_s, (built.total - before.total) / 1048576.0,
              static_cast<double>(built.total - before.total) / n, LoadAverage().c_str());
  const double recall = Recall(*index, queries, nq, k, truth);
  const double qps1 = QueriesPerSecond(*index, queries, nq, dim, k, 1, qps_seconds);
  const double qps2 = QueriesPerSecond(*index, queries, nq, dim, k, 2, qps_seconds);
  std::printf("recall@%d %.3f; QPS 1 caller %.1f, 2 callers %.1f  [%s]\n", k, recall, qps1, qps2,
              LoadAverage().c_str());

  std::filesystem::remove_all(dir);
  start = Clock::now();
  if (const absl::Status saved = index->SaveSnapshot(dir, 1, ""); !saved.ok()) {
    std::fprintf(stderr, "save failed: %s\n", saved.ToString().c_str());
    return 1;
  }
  const double save_s = Seconds(start);
  index.reset();
  const int64_t snapshot_bytes = EvictFromPageCache(dir);
  std::printf("save: %.1f s; snapshot %.0f MiB = %.0f bytes/item  [%s]\n", save_s,
              snapshot_bytes / 1048576.0, static_cast<double>(snapshot_bytes) / n,
              LoadAverage().c_str());

  for (const bool mmap : {false, true}) {
    // FAISS maps IVF lists only; for the other types a mapped load is the plain one again.
    if (mmap && options.factory.find("IVF") == std::string::npos) break;
    options.mmap_snapshots = mmap;
    EvictFromPageCache(dir);
    const Resident empty = MeasureResident();
    start = Clock::now();
    index = Load(dir, options);
    const double load_s = Seconds(start);
    const Resident loaded = MeasureResident();
    std::printf("load%s: %.2f s (page cache evicted first); %d shard(s) mapped; resident +%.0f "
                "MiB (anon +%.0f, file +%.0f)  [%s]\n",
                mmap ? " mmap" : "", load_s, index->mapped_shards(),
                (loaded.total - empty.total) / 1048576.0, (loaded.anon - empty.anon) / 1048576.0,
                (loaded.file - empty.file) / 1048576.0, LoadAverage().c_str());
    // The plain load holds what was built (the round-trip tests check it): searched above.
    if (!mmap || index->mapped_shards() == 0) {
      index.reset();
      continue;
    }
    const double loaded_recall = Recall(*index, queries, nq, k, truth);
    const double loaded_qps = QueriesPerSecond(*index, queries, nq, dim, k, 1, qps_seconds);
    const Resident searched = MeasureResident();
    std::printf("  after searching: recall@%d %.3f, QPS 1 caller %.1f; resident +%.0f MiB (anon "
                "+%.0f, file +%.0f)  [%s]\n",
                k, loaded_recall, loaded_qps, (searched.total - empty.total) / 1048576.0,
                (searched.anon - empty.anon) / 1048576.0, (searched.file - empty.file) / 1048576.0,
                LoadAverage().c_str());
    index.reset();
  }
  std::filesystem::remove_all(dir);
  return 0;
}
