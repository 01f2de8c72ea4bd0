// shard_search_bench.cc — search QPS of one multi-shard ShardedIndex, one query per call, with
// 1 and with several caller threads (issue 20: the shard-search pool). A figure, not a test
// (tests/unit/index/sharded_index_test.cc asserts the pool's behaviour). bench/shard_pool.sh runs
// this binary built at two commits side by side and prints their ratio.
//
// Every caller thread runs with one OpenMP thread, as the server's workers do by default
// (threads.faiss_omp); the queries are random unit vectors, unrelated to the items. Besides QPS
// it prints the process's CPU time per search, the figure neighbours on a shared machine stretch
// least.
//
//   build/bench/shard_search_bench --items 100000 --dim 512 --shards 8 --callers 1,8 --seconds 5
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/random_items.h"
#include "core/index/sharded_index.h"

ABSL_FLAG(int, items, 100000, "items in the index");
ABSL_FLAG(int, dim, 512, "vector dimension");
ABSL_FLAG(int, shards, 8, "shards");
ABSL_FLAG(std::string, factory, "Flat", "FAISS factory string");
ABSL_FLAG(std::string, callers, "1,8", "caller thread counts to measure, one after another");
ABSL_FLAG(double, seconds, 5, "seconds measured per caller count (after a 1 s warm-up)");
ABSL_FLAG(int, k, 10, "top k");

namespace {

// CpuSeconds is the CPU time (user + system) this process has used so far.
double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Run has `callers` threads search one query at a time for `seconds`; returns the searches done,
// or -1 when one failed.
long Run(const retrace::index::ShardedIndex& index, const std::vector<float>& queries, int dim,
         int k, int callers, double seconds) {
  const size_t nq = queries.size() / static_cast<size_t>(dim);
  std::atomic<bool> stop{false};
  std::atomic<long> done{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      omp_set_num_threads(1);
      for (size_t q = static_cast<size_t>(c) % nq; !stop.load(); q = (q + 1) % nq) {
        if (!index.Search(&queries[q * dim], 1, k).ok()) failed.store(true);
        done.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (std::thread& t : threads) t.join();
  return failed.load() ? -1 : done.load();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace retrace;
  const int n = absl::GetFlag(FLAGS_items), dim = absl::GetFlag(FLAGS_dim),
            shards = absl::GetFlag(FLAGS_shards), k = absl::GetFlag(FLAGS_k);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(absl::StrCat("item-", i));
  const std::vector<float> data = retrace::bench::RandomUnits(n, dim, 1);
  const std::vector<float> queries = retrace::bench::RandomUnits(256, dim, 2);
  auto index =
      index::ShardedIndex::Create(index::IndexOptions{dim, shards, absl::GetFlag(FLAGS_factory)});
  if (!index.ok()) {
    std::fprintf(stderr, "%s\n", index.status().ToString().c_str());
    return 1;
  }
  if (absl::Status added = (*index)->Add(ids, data.data(), ids.size()); !added.ok()) {
    std::fprintf(stderr, "%s\n", added.ToString().c_str());
    return 1;
  }
  for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_callers), ',')) {
    int callers = 0;
    if (!absl::SimpleAtoi(text, &callers) || callers < 1) {
      std::fprintf(stderr, "--callers: bad count '%s'\n", std::string(text).c_str());
      return 1;
    }
    if (Run(**index, queries, dim, k, callers, 1.0) < 0) return 1;  // warm-up
    const double cpu_before = CpuSeconds();
    const long searches = Run(**index, queries, dim, k, callers, seconds);
    if (searches < 0) return 1;
    const double cpu_ms = (CpuSeconds() - cpu_before) * 1e3 / std::max(1L, searches);
    std::printf("items %d dim %d %s shards %d callers %d searches %ld qps %.1f cpu_ms %.3f\n", n,
                dim, absl::GetFlag(FLAGS_factory).c_str(), shards, callers, searches,
                searches / seconds, cpu_ms);
    std::fflush(stdout);
  }
  return 0;
}
