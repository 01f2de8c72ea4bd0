// search_overhead_bench — the in-process half of bench/search_overhead.sh (issue 7, a): what a
// search by embedding costs when FAISS is called directly, to set beside the same searches made
// through retrace-server. A benchmark, not a test.
//
//   search_overhead_bench fill --data_dir D --collection bench --items 1000000
//   search_overhead_bench search --data_dir D --collection bench --dim 1024 --index Flat
//       --concurrency 8 --duration 20 --warmup 3
//
// fill: the collection must exist in D's store already, created by the server (so its model
// identities are the server's). Writes --items random unit vectors into every embedding the
// collection holds, builds both indexes with RecoverIndexes (the server's start-up code; the
// time it takes is the index build rate), saves them as the snapshots the server loads at start,
// and writes D/bench-queries.f32: the CLIP image embeddings of 32 stored items, the same kind
// of vector `retrace bench --mix search-embedding=1` sends in caption-match mode.
//
// search: loads the caption space's snapshot with ShardedIndex::LoadSnapshot (the server's code
// path; it reads no store, so the server may hold D's lock meanwhile) and searches it in a
// closed loop from --concurrency threads, counting as `retrace bench` does (calls started in
// the --duration after --warmup; p50 by nearest rank). Prints one JSON object, with the
// process's CPU time per search (warm-up included): a figure neighbours do not stretch.
// Each search thread gets --omp_threads OpenMP threads, as the server's workers get
// threads.faiss_omp (default 1).
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "core/engine/collection_index.h"
#include "core/engine/image_space.h"
#include "core/index/sharded_index.h"
#include "bench/random_items.h"
#include "core/store/sqlite_item_store.h"

ABSL_FLAG(std::string, data_dir, "", "the server's data folder");
ABSL_FLAG(std::string, collection, "bench", "collection name");
ABSL_FLAG(int64_t, items, 1'000'000, "fill: items to write");
ABSL_FLAG(int, dim, 1024, "search: the caption space's dimension (the CLIP model's)");
ABSL_FLAG(int, shards, 1, "search: the collection's shard count");
ABSL_FLAG(std::string, index, "Flat", "search: the caption space's FAISS factory string");
ABSL_FLAG(int, concurrency, 1, "search: threads searching in a closed loop");
ABSL_FLAG(double, duration, 20, "search: seconds counted");
ABSL_FLAG(double, warmup, 3, "search: seconds before, not counted");
ABSL_FLAG(int, top_k, 10, "search: k (retrace bench's default --top-k)");
ABSL_FLAG(int, omp_threads, 1, "search: OpenMP threads per search (server: threads.faiss_omp)");

namespace retrace {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kQueries = 32;  // as retrace bench's pool of embedding queries
constexpr char kQueryFile[] = "bench-queries.f32";

// ProcessCpuSeconds: user + system time of the whole process. CPU per call does not stretch
// when neighbours take the cores, as latency and QPS do.
double ProcessCpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Check(const absl::Status& s, const std::string& what) {
  if (s.ok()) return;
  std::fprintf(stderr, "search_overhead_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

int Fill(const std::string& data_dir, const std::string& name) {
  auto opened = store::SqliteItemStore::Open(data_dir);
  Check(opened.status(), "opening the store (is a server running on it?)");
  store::ItemStore& store = **opened;
  auto all = store.ReadState();
  Check(all.status(), "listing collections");
  std::optional<store::CollectionRecord> record;
  for (auto& r : all->collections) {
    if (r.name == name) record = r;
  }
  if (!record.has_value()) {
    Check(absl::NotFoundError(absl::StrCat("no collection '", name, "': create it with the "
                                           "server first (retrace collections create)")),
          "fill");
  }
  const int64_t items = absl::GetFlag(FLAGS_items);
  auto count = store.CountItems(name);
  Check(count.status(), "counting");
  if (*count != 0) {
    // Start again from an empty collection with the same record: a half-filled one is of no use.
    Check(store.DropCollection(name).status(), "dropping the old items");
    Check(store.CreateCollection(*record).status(), "re-creating");
  }
  const size_t clip_dim = record->caption_dim;
  const size_t encoder_dim = record->image_dim - record->caption_dim;
  std::mt19937 rng(7);
  const auto fill_start = Clock::now();
  for (int64_t begin = 0; begin < items; begin += 1024) {
    std::vector<store::StoredItem> batch;
    for (int64_t i = begin; i < std::min(items, begin + 1024); ++i) {
      batch.push_back(bench::RandomItem(rng, i, clip_dim, encoder_dim));
    }
    Check(store.PutItems(name, std::move(batch)).status(), "writing items");
    if ((begin / 1024) % 50 == 0) {
      std::fprintf(stderr, "\rfilling the store: %lld / %lld", static_cast<long long>(begin),
                   static_cast<long long>(items));
    }
  }
  std::fprintf(stderr, "\rfilled the store with %lld items in %.1f s\n",
               static_cast<long long>(items), Seconds(fill_start));

  all = store.ReadState();  // created_position of the re-created collection
  for (auto& r : all->collections) {
    if (r.name == name) record = r;
  }
  const auto build_start = Clock::now();
  auto built = engine::RecoverIndexes(store, *record, "");
  Check(built.status(), "building the indexes");
  const double build_seconds = Seconds(build_start);
  std::printf("built both indexes (caption '%s', image '%s') of %lld items in %.1f s: %.0f "
              "items/s\n",
              record->caption_index.c_str(), record->image_index.c_str(),
              static_cast<long long>(items), build_seconds, items / build_seconds);
  const auto save_start = Clock::now();
  Check(engine::SaveSnapshots(built->indexes, *record, built->applied,
                              data_dir + "/snapshots"),
        "saving snapshots");
  std::printf("snapshots saved in %.1f s\n", Seconds(save_start));

  std::vector<std::string> ids;
  for (int q = 0; q < kQueries; ++q) ids.push_back(absl::StrCat("item-", q * (items / kQueries)));
  auto stored = store.GetItems(name, ids);
  Check(stored.status(), "reading query items");
  std::ofstream out(data_dir + "/" + kQueryFile, std::ios::binary);
  for (const auto& item : *stored) {
    out.write(reinterpret_cast<const char*>(item->clip_image.data()),
              static_cast<std::streamsize>(item->clip_image.size() * sizeof(float)));
  }
  return out.good() ? 0 : 1;
}

int Search(const std::string& data_dir, const std::string& name) {
  const int dim = absl::GetFlag(FLAGS_dim);
  std::vector<float> queries(static_cast<size_t>(kQueries) * dim);
  std::ifstream in(data_dir + "/" + kQueryFile, std::ios::binary);
  in.read(reinterpret_cast<char*>(queries.data()),
          static_cast<std::streamsize>(queries.size() * sizeof(float)));
  if (!in) {
    Check(absl::NotFoundError(absl::StrCat(data_dir, "/", kQueryFile, ": missing or shorter than ",
                                           kQueries, " queries of ", dim, " floats")),
          "queries");
  }
  // The server's options for this space (engine::IndexOptionsFor), from what the script knows.
  store::CollectionRecord record;
  record.name = name;
  record.shards = absl::GetFlag(FLAGS_shards);
  record.caption_index = absl::GetFlag(FLAGS_index);
  record.caption_dim = dim;
  const auto load_start = Clock::now();
  auto loaded = index::ShardedIndex::LoadSnapshot(
      engine::SnapshotDir(data_dir + "/snapshots", name, engine::Space::kCaption),
      engine::IndexOptionsFor(record, engine::Space::kCaption));
  Check(loaded.status(), "loading the caption space's snapshot");
  const index::ShardedIndex& index = *loaded->index;
  std::fprintf(stderr, "loaded %zu vectors in %.1f s\n", index.size(), Seconds(load_start));

  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const int top_k = absl::GetFlag(FLAGS_top_k);
  const int omp_threads = absl::GetFlag(FLAGS_omp_threads);
  const auto to_duration = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const Clock::time_point start = Clock::now();
  const Clock::time_point counted_from = start + to_duration(absl::GetFlag(FLAGS_warmup));
  const Clock::time_point end = counted_from + to_duration(absl::GetFlag(FLAGS_duration));
  std::vector<std::vector<double>> latencies_ms(concurrency);
  std::atomic<int> errors{0};
  std::atomic<int64_t> all_calls{0};  // warm-up included: the CPU time covers them too
  const double cpu_start = ProcessCpuSeconds();
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      omp_set_num_threads(omp_threads);  // per thread, as the server's worker pool does
      std::mt19937 rng(t + 1);
      for (;;) {
        const Clock::time_point started = Clock::now();
        if (started >= end) return;
        const float* q = &queries[static_cast<size_t>(rng() % kQueries) * dim];
        if (!index.Search(q, 1, top_k).ok()) ++errors;
        const Clock::time_point finished = Clock::now();
        ++all_calls;
        if (started >= counted_from) {
          latencies_ms[t].push_back(
              std::chrono::duration<double, std::milli>(finished - started).count());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const double cpu_ms_per_call =
      (ProcessCpuSeconds() - cpu_start) * 1e3 / std::max<int64_t>(1, all_calls.load());
  std::vector<double> all;
  for (const auto& l : latencies_ms) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  // Nearest rank, as client/bench/latency_recorder.cc.
  const auto percentile = [&](double p) {
    if (all.empty()) return 0.0;
    const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * all.size()));
    return all[std::max<size_t>(rank, 1) - 1];
  };
  const double seconds = absl::GetFlag(FLAGS_duration);
  double sum = 0;
  for (double ms : all) sum += ms;
  std::printf("{\"concurrency\": %d, \"calls\": %zu, \"errors\": %d, \"qps\": %.3f, "
              "\"mean_ms\": %.3f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
              "\"cpu_ms_per_call\": %.3f, \"index\": \"%s\", \"vectors\": %zu}\n",
              concurrency, all.size(), errors.load(), all.size() / seconds,
              all.empty() ? 0.0 : sum / all.size(), percentile(50), percentile(99),
              cpu_ms_per_call, record.caption_index.c_str(), index.size());
  return errors.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace retrace

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const std::string command = args.size() == 2 ? args[1] : "";
  if (data_dir.empty() || (command != "fill" && command != "search")) {
    std::fprintf(stderr, "usage: search_overhead_bench fill|search --data_dir DIR [flags]; "
                         "--helpfull lists them\n");
    return 2;
  }
  if (command == "fill") return retrace::Fill(data_dir, absl::GetFlag(FLAGS_collection));
  return retrace::Search(data_dir, absl::GetFlag(FLAGS_collection));
}
