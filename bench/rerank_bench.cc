// rerank_bench — what the provenance re-ranking (CS-SLIP's S' = S + w1·e^(−βP) + w2·e^(−βP'))
// costs a Search, for N = 100 and N = 1000 candidates. A benchmark, not a test (issue 7, d).
//
//   make_models.py --kind demo --clip-dim 512 --out build/bench-models-512
//   taskset -c 0 build/bench/rerank_bench --models build/bench-models-512
//
// Per N, run side by side over two collections of the same items, so that one run gives the
// figure before and after the candidates were read from memory (issue 20, part 2):
//   .../indexes  collection "bench", image index Flat: the candidates' embeddings are read from
//                the indexes (space_search.h, EmbeddedHitsFromIndexes), as the server does;
//   .../store    collection "bench_store", image index "Flat,RFlat" (the same exact search,
//                but an index that keeps no plain copy of its vectors): read from the SQLite
//                store, as every collection was before.
// The benchmarks:
//   BM_RerankStage   the re-ranking stage inside a real PROVENANCE Search by embedding, from
//                    the end of the index search (the engine's `search` stage) to the end of
//                    its `rerank` stage (stage_observer.h): reading the N candidates with their
//                    embeddings, building their image-space vectors, the three inner products
//                    per candidate (S, the query against T_i for P, Q_t against I_i for P'),
//                    search::Rerank, and the hits. The index search and Q_t's CLIP text
//                    embedding come before the stage and are not in it.
//   BM_Rerank        search::Rerank alone on N precomputed score triples: the part
//                    core/search/rerank.cc owns.
//   BM_ProvenanceSearch  the whole Search call, for the stage's share of it.
// BM_RerankStage's time is the stage's wall time; its counters give the stage's CPU time on the
// thread (robust to neighbours on the core), how much of it is the store read (a timing
// decorator over the store; 0 from the indexes) and the rest, and the engine's `rerank` stage
// alone (wall), so they say where it goes.
// The collections (--items random unit vectors: CLIP's size from the models, 512 with the
// command above, and the demo image encoder's 48) are written to a temporary store once per run
// (or kept in --dir); the models only embed Q_t.
// Single-threaded: batching is off (the index search runs on the calling thread, not a batcher
// thread, so thread CPU times subtract), FAISS's OpenMP and LibTorch get one thread, shards are
// 1, so pinning with taskset -c 0 measures one core.
#include <benchmark/benchmark.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "core/engine/engine.h"
#include "core/models/torch/torchscript_module.h"
#include "core/search/rerank.h"
#include "bench/random_items.h"
#include "core/store/sqlite_item_store.h"
#include "server/model_folder.h"
#include "spdlog/sinks/null_sink.h"

ABSL_FLAG(std::string, models, "build/bench-models-512",
          "model folder (make_models.py --kind demo --clip-dim 512)");
ABSL_FLAG(int64_t, items, 20000, "items in the collection (at least the largest N)");
ABSL_FLAG(std::string, dir, "", "store directory (default: a new temporary one, removed at exit)");

namespace retrace {
namespace {

void Check(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "rerank_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// ThreadCpuSeconds: CPU time of the calling thread, user and system. Other processes sharing
// the core stretch wall times, not this.
double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + t.tv_nsec * 1e-9;
}

// Keeps the wall and CPU time of the last re-ranking stage: from the end of the index search to
// the end of the `rerank` stage, both reported from the calling thread with batching off; and
// the `rerank` stage's own wall time.
class RerankTimer : public engine::StageObserver {
 public:
  void Observe(engine::Stage stage, double seconds, int batch_size) override {
    if (stage == engine::Stage::kSearch) {
      search_end_ = std::chrono::steady_clock::now();
      search_end_cpu_ = ThreadCpuSeconds();
    }
    if (stage == engine::Stage::kRerank) {
      last_rerank_seconds_ = seconds;
      last_seconds_ =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - search_end_).count();
      last_cpu_seconds_ = ThreadCpuSeconds() - search_end_cpu_;
    }
  }
  double last_seconds() const { return last_seconds_; }
  double last_cpu_seconds() const { return last_cpu_seconds_; }
  double last_rerank_seconds() const { return last_rerank_seconds_; }

 private:
  std::chrono::steady_clock::time_point search_end_;
  double last_seconds_ = 0;
  double last_cpu_seconds_ = 0;
  double last_rerank_seconds_ = 0;
  double search_end_cpu_ = 0;
};

// Forwards to a store and takes the CPU time of GetItems: within a PROVENANCE Search by
// embedding the only GetItems is the rerank stage's read of the N candidates, so its share of
// the stage comes from the same calls.
class GetItemsTimer : public store::ItemStore {
 public:
  explicit GetItemsTimer(std::unique_ptr<store::ItemStore> store) : store_(std::move(store)) {}
  double last_cpu_seconds() const { return last_cpu_seconds_; }
  void Reset() { last_cpu_seconds_ = 0; }  // before a Search: one that reads nothing reads 0

  absl::StatusOr<std::vector<std::optional<store::StoredItem>>> GetItems(
      const std::string& collection, const std::vector<std::string>& ids) const override {
    const double start = ThreadCpuSeconds();
    auto items = store_->GetItems(collection, ids);
    last_cpu_seconds_ = ThreadCpuSeconds() - start;
    return items;
  }
  absl::StatusOr<std::vector<std::optional<store::StoredItem>>> GetItemsWithoutEmbeddings(
      const std::string& collection, const std::vector<std::string>& ids) const override {
    return store_->GetItemsWithoutEmbeddings(collection, ids);
  }
  std::string Describe() const override { return store_->Describe(); }
  absl::StatusOr<int64_t> CreateCollection(const store::CollectionRecord& record) override {
    return store_->CreateCollection(record);
  }
  absl::StatusOr<int64_t> DropCollection(const std::string& name) override {
    return store_->DropCollection(name);
  }
  absl::StatusOr<store::StoreState> ReadState() const override { return store_->ReadState(); }
  absl::StatusOr<int64_t> PutItems(const std::string& collection,
                                   std::vector<store::StoredItem> items) override {
    return store_->PutItems(collection, std::move(items));
  }
  absl::StatusOr<store::PutResult> PutItemsChecked(
      const std::string& collection, std::vector<store::StoredItem> items,
      const store::ReplaceCheck& may_replace) override {
    return store_->PutItemsChecked(collection, std::move(items), may_replace);
  }
  absl::StatusOr<std::vector<std::optional<store::ItemVersion>>> GetItemVersions(
      const std::string& collection, const std::vector<std::string>& ids) const override {
    return store_->GetItemVersions(collection, ids);
  }
  absl::StatusOr<std::vector<store::StoredItem>> ListItems(const std::string& collection,
                                                           const std::string& after, int limit,
                                                           bool embeddings) const override {
    return store_->ListItems(collection, after, limit, embeddings);
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> GetThumbnails(
      const std::string& collection, const std::vector<std::string>& ids) const override {
    return store_->GetThumbnails(collection, ids);
  }
  absl::StatusOr<store::DeleteResult> DeleteItems(const std::string& collection,
                                                  const std::vector<std::string>& ids) override {
    return store_->DeleteItems(collection, ids);
  }
  absl::StatusOr<int64_t> CountItems(const std::string& collection) const override {
    return store_->CountItems(collection);
  }
  absl::Status ForEachItem(
      const std::string& collection,
      const std::function<absl::Status(const store::StoredItem&)>& visit) const override {
    return store_->ForEachItem(collection, visit);
  }
  absl::StatusOr<int64_t> LastPosition() const override { return store_->LastPosition(); }
  absl::StatusOr<store::ChangePage> ReadChanges(const std::string& collection,
                                                int64_t created_position,
                                                const store::ChangeCursor& cursor,
                                                int limit) const override {
    return store_->ReadChanges(collection, created_position, cursor, limit);
  }
  absl::StatusOr<int64_t> WaitForChange(int64_t after, absl::Duration timeout) const override {
    return store_->WaitForChange(after, timeout);
  }
  absl::Status CompactDeletions(const std::string& collection, int64_t up_to) override {
    return store_->CompactDeletions(collection, up_to);
  }
  absl::StatusOr<std::vector<store::CaptionMatch>> SearchCaptions(
      const std::string& collection, const std::vector<std::string>& terms,
      int limit) const override {
    return store_->SearchCaptions(collection, terms, limit);
  }
  absl::Status ReportReplica(const store::ReplicaRecord& replica) override {
    return store_->ReportReplica(replica);
  }
  absl::StatusOr<std::vector<store::ReplicaRecord>> ListReplicas() const override {
    return store_->ListReplicas();
  }
  absl::Status ForgetReplica(const std::string& replica) override {
    return store_->ForgetReplica(replica);
  }

 private:
  const std::unique_ptr<store::ItemStore> store_;
  mutable double last_cpu_seconds_ = 0;  // one benchmark thread
};

// One engine over one collection in a store of random items, shared by the engine benchmarks.
struct Fixture {
  std::string dir;
  bool remove_dir = false;
  RerankTimer timer;
  GetItemsTimer* store = nullptr;  // owned by the engine
  std::unique_ptr<engine::Engine> engine;
  int image_dim = 0;

  ~Fixture() {
    engine.reset();  // closes the store before its files go
    if (remove_dir) std::filesystem::remove_all(dir);
  }
};

void FillStore(const std::string& dir, const store::CollectionRecord& record, int64_t items) {
  auto store = store::SqliteItemStore::Open(dir);
  Check(store.status(), "opening the store");
  auto existing = (*store)->CountItems(record.name);
  if (existing.ok() && *existing >= items) return;  // --dir of an earlier run
  if (existing.ok()) Check((*store)->DropCollection(record.name).status(), "dropping");
  Check((*store)->CreateCollection(record).status(), "creating the collection");
  std::mt19937 rng(7);
  const size_t encoder_dim = record.image_dim - record.caption_dim;
  for (int64_t begin = 0; begin < items; begin += 1000) {
    std::vector<store::StoredItem> batch;
    for (int64_t i = begin; i < std::min(items, begin + 1000); ++i) {
      store::StoredItem item = bench::RandomItem(rng, i, record.caption_dim, encoder_dim);
      item.caption = absl::StrCat("a caption of item ", i);  // read back into every hit
      batch.push_back(std::move(item));
    }
    Check((*store)->PutItems(record.name, std::move(batch)).status(), "filling the store");
  }
}

// The two collections: their names and image indexes (see the banner).
constexpr char kFromIndexes[] = "bench";
constexpr char kFromStore[] = "bench_store";
constexpr char kStoreOnlyIndex[] = "Flat,RFlat";

void SetUp(Fixture& f) {
  f.dir = absl::GetFlag(FLAGS_dir);
  if (f.dir.empty()) {
    f.dir = (std::filesystem::temp_directory_path() / absl::StrCat("rerank_bench.", getpid()))
                .string();
    f.remove_dir = true;
  }
  auto models = server::LoadModelSet(absl::GetFlag(FLAGS_models));
  Check(models.status(), "loading models");
  // The record Engine::CreateCollection writes for these models; Engine::Open refuses a
  // collection whose identities or sizes do not match, so a drift stops the run.
  store::CollectionRecord record;
  record.name = kFromIndexes;
  record.caption_index = record.image_index = "Flat";
  record.caption_dim = models->clip->dim();
  record.clip_model = models->clip->manifest().Identity();
  record.captioner_model = models->captioner->manifest().Identity();
  record.image_dim = record.caption_dim;
  if (models->image_encoder) {
    record.image_encoder_model = models->image_encoder->manifest().Identity();
    record.image_dim += models->image_encoder->dim();
  }
  f.image_dim = record.image_dim;
  FillStore(f.dir, record, absl::GetFlag(FLAGS_items));
  store::CollectionRecord store_only = record;
  store_only.name = kFromStore;
  store_only.image_index = kStoreOnlyIndex;
  FillStore(f.dir, store_only, absl::GetFlag(FLAGS_items));
  auto store = store::SqliteItemStore::Open(f.dir);
  Check(store.status(), "reopening the store");
  engine::EngineOptions options;
  options.stage_observer = &f.timer;
  options.batching.enabled = false;
  options.replication.replica_id = "rerank_bench";
  auto log = std::make_shared<spdlog::logger>("bench",
                                              std::make_shared<spdlog::sinks::null_sink_mt>());
  auto timed_store = std::make_unique<GetItemsTimer>(std::move(*store));
  f.store = timed_store.get();
  auto engine = engine::Engine::Open(options, std::move(*models), std::move(timed_store), log);
  Check(engine.status(), "opening the engine");
  f.engine = std::move(*engine);
  std::printf("collections: %lld random items each, CLIP dim %d, image space dim %d, 1 shard; "
              "'%s' (Flat: from the indexes), '%s' (%s: from the store)\n",
              static_cast<long long>(absl::GetFlag(FLAGS_items)), record.caption_dim,
              record.image_dim, kFromIndexes, kFromStore, kStoreOnlyIndex);
}

engine::SearchQuery ProvenanceQuery(int candidates, int image_dim) {
  std::mt19937 rng(11);
  engine::SearchQuery query;
  query.kind = engine::SearchQuery::Kind::kEmbedding;
  query.embedding = bench::RandomUnit(rng, image_dim);
  query.mode = engine::SearchMode::kProvenance;
  query.query_caption = "a photo of a dog on a beach";  // Q_t: w2 > 0 needs one
  query.provenance.candidates = candidates;
  query.top_k = 10;
  return query;
}

void RerankStage(benchmark::State& state, Fixture* f, const char* collection) {
  const int n = static_cast<int>(state.range(0));
  const engine::SearchQuery query = ProvenanceQuery(n, f->image_dim);
  double stage_cpu_seconds = 0, read_cpu_seconds = 0, rerank_seconds = 0;
  for (auto _ : state) {
    f->store->Reset();
    auto result = f->engine->Search(collection, query);
    if (!result.ok()) {
      state.SkipWithError(result.status().ToString().c_str());
      break;
    }
    state.SetIterationTime(f->timer.last_seconds());
    stage_cpu_seconds += f->timer.last_cpu_seconds();
    read_cpu_seconds += f->store->last_cpu_seconds();
    rerank_seconds += f->timer.last_rerank_seconds();
  }
  state.SetItemsProcessed(state.iterations() * n);  // candidates per second
  // CPU time per stage, and where it goes: the store read of the candidates, and the rest
  // (image-space vectors, the three inner products per candidate, search::Rerank, the hits).
  const double iterations = static_cast<double>(std::max<int64_t>(1, state.iterations()));
  state.counters["stage_cpu_us"] = stage_cpu_seconds * 1e6 / iterations;
  state.counters["read_cpu_us"] = read_cpu_seconds * 1e6 / iterations;
  state.counters["rest_cpu_us"] = (stage_cpu_seconds - read_cpu_seconds) * 1e6 / iterations;
  state.counters["rerank_stage_us"] = rerank_seconds * 1e6 / iterations;  // the engine's, wall
}

void ProvenanceSearch(benchmark::State& state, Fixture* f, const char* collection) {
  const int n = static_cast<int>(state.range(0));
  const engine::SearchQuery query = ProvenanceQuery(n, f->image_dim);
  for (auto _ : state) {
    auto result = f->engine->Search(collection, query);
    if (!result.ok()) {
      state.SkipWithError(result.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(result->hits.data());
  }
}

void RerankScores(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> score(-0.2f, 1.0f);
  std::vector<float> base(n), caption_scores(n), image_scores(n);
  for (size_t i = 0; i < n; ++i) {
    base[i] = score(rng);
    caption_scores[i] = score(rng);
    image_scores[i] = score(rng);
  }
  const search::RerankParams params;
  for (auto _ : state) {
    std::vector<search::Reranked> order = search::Rerank(base, caption_scores, image_scores, params);
    benchmark::DoNotOptimize(order.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}

}  // namespace
}  // namespace retrace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags, leaves ours
  absl::ParseCommandLine(argc, argv);
  // One thread everywhere: the figure is for one core.
  omp_set_num_threads(1);
  retrace::models::ConfigureTorchThreads(1);
  retrace::Fixture fixture;
  retrace::SetUp(fixture);
  for (int n : {100, 1000}) {
    for (const char* collection : {retrace::kFromIndexes, retrace::kFromStore}) {
      const std::string from = collection == retrace::kFromIndexes ? "/indexes" : "/store";
      benchmark::RegisterBenchmark(("BM_RerankStage" + from).c_str(), retrace::RerankStage,
                                   &fixture, collection)
          ->Arg(n)->UseManualTime()->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark("BM_Rerank", retrace::RerankScores)
        ->Arg(n)->Unit(benchmark::kMicrosecond);
    for (const char* collection : {retrace::kFromIndexes, retrace::kFromStore}) {
      const std::string from = collection == retrace::kFromIndexes ? "/indexes" : "/store";
      benchmark::RegisterBenchmark(("BM_ProvenanceSearch" + from).c_str(),
                                   retrace::ProvenanceSearch, &fixture, collection)
          ->Arg(n)->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
