// startup_bench — how long a replica takes to serve a collection when it starts (or joins a
// cluster): from a snapshot, then following the store's feed for the changes since, against
// building the indexes from every stored item. Both run the code the server runs at start:
// RecoverIndexes, then the follower's CatchUp. A benchmark, not a test.
//
//   build/bench/startup_bench --dir /tmp/startup --items 1000000 --dim 1024 --shards 4
//   build/bench/startup_bench --store postgresql://retrace@127.0.0.1:5432/bench ...
//
// The first run fills the store (SQLite in --dir, or the PostgreSQL database --store; reused by
// later runs with the same shape) with random unit vectors as caption embeddings; items carry
// no image embedding, which makes the store smaller than a real one and so favours the build
// from items. It then takes one snapshot, adds --changes upserts and deletions after it, and
// times both starts side by side.
//
// With --collection it only fills: random items into an existing collection (one a server
// created, so the items fit its models' identities and dimensions), for benchmarks that load a
// running cluster (bench/cluster.sh).
//   build/bench/startup_bench --store postgresql://... --collection big --items 1000000
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/random_items.h"
#include "core/engine/collection_index.h"
#include "core/engine/follower.h"
#include "core/engine/live_collection.h"
#include "core/store/postgres_item_store.h"
#include "core/store/sqlite_item_store.h"

ABSL_FLAG(std::string, dir, "/tmp/retrace-startup-bench",
          "data directory: the SQLite store (without --store) and the snapshots");
ABSL_FLAG(std::string, store, "", "a PostgreSQL URI: the store a joining replica follows");
ABSL_FLAG(int64_t, items, 1'000'000, "items in the collection");
ABSL_FLAG(int, dim, 1024, "embedding dimension");
ABSL_FLAG(int, shards, 4, "shards");
ABSL_FLAG(std::string, index, "Flat", "FAISS factory string of the caption space");
ABSL_FLAG(int, changes, 1000, "upserts (and as many deletions) after the snapshot");
ABSL_FLAG(std::string, collection, "",
          "fill this existing collection with --items random items and stop (no start-up timing)");

namespace retrace {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Check(const absl::Status& s, const char* what) {
  if (s.ok()) return 0;
  std::fprintf(stderr, "startup_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// Fill writes items "item-0".."item-<items-1>" with random unit embeddings of the collection's
// dimensions, 1,024 per PutItems (one transaction each), and prints the rate.
void Fill(store::ItemStore& store, const store::CollectionRecord& record, int64_t items,
          std::mt19937& rng) {
  const size_t clip_dim = static_cast<size_t>(record.caption_dim);
  const size_t encoder_dim = static_cast<size_t>(record.image_dim) - clip_dim;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t begin = 0; begin < items; begin += 1024) {
    std::vector<store::StoredItem> batch;
    for (int64_t i = begin; i < std::min(items, begin + 1024); ++i) {
      batch.push_back(bench::RandomItem(rng, i, clip_dim, encoder_dim));
    }
    Check(store.PutItems(record.name, std::move(batch)).status(), "put");
    if ((begin / 1024) % 100 == 0) {
      std::fprintf(stderr, "\rfilling the store: %lld / %lld", static_cast<long long>(begin),
                   static_cast<long long>(items));
    }
  }
  const double seconds = Seconds(start);
  std::fprintf(stderr, "\rfilled the store with %lld items in %.1f s (%.0f items/s)\n",
               static_cast<long long>(items), seconds, items / seconds);
}

int Run() {
  const std::string dir = absl::GetFlag(FLAGS_dir);
  const int64_t items = absl::GetFlag(FLAGS_items);
  const int dim = absl::GetFlag(FLAGS_dim);
  const std::string name = absl::StrCat("bench_", items, "x", dim, "_", absl::GetFlag(FLAGS_shards),
                                        "_", absl::GetFlag(FLAGS_index));
  std::unique_ptr<store::ItemStore> opened;
  if (absl::GetFlag(FLAGS_store).empty()) {
    auto sqlite = store::SqliteItemStore::Open(dir);
    Check(sqlite.status(), "open store");
    opened = std::move(*sqlite);
  } else {
    store::PostgresItemStore::Options options;
    options.conninfo = absl::GetFlag(FLAGS_store);
    auto postgres = store::PostgresItemStore::Open(options);
    Check(postgres.status(), "open store");
    opened = std::move(*postgres);
  }
  store::ItemStore& store = *opened;
  std::printf("store: %s\n", store.Describe().c_str());
  const std::string snapshots = dir + "/snapshots";

  auto find = [&](const std::string& wanted) -> std::optional<store::CollectionRecord> {
    auto all = store.ReadState();
    Check(all.status(), "list");
    for (auto& r : all->collections) if (r.name == wanted) return r;
    return std::nullopt;
  };
  std::mt19937 rng(7);
  if (const std::string given = absl::GetFlag(FLAGS_collection); !given.empty()) {
    const std::optional<store::CollectionRecord> existing = find(given);
    if (!existing.has_value()) {
      std::fprintf(stderr, "startup_bench: no collection '%s' in the store\n", given.c_str());
      return 1;
    }
    Fill(store, *existing, items, rng);
    return 0;
  }
  std::optional<store::CollectionRecord> record = find(name);
  // A store filled by an earlier run holds items minus the deletions made after its snapshot.
  const int64_t at_least = items - absl::GetFlag(FLAGS_changes);
  if (!record.has_value() || store.CountItems(name).value_or(0) < at_least) {
    if (record.has_value()) Check(store.DropCollection(name).status(), "drop partial collection");
    store::CollectionRecord r;
    r.name = name;
    r.shards = absl::GetFlag(FLAGS_shards);
    r.caption_index = absl::GetFlag(FLAGS_index);
    r.caption_dim = dim;
    r.image_index = r.caption_index;
    r.image_dim = dim;  // no image encoder: the image space is the CLIP image embedding
    r.clip_model = r.captioner_model = "random";
    Check(store.CreateCollection(r).status(), "create");
    Fill(store, r, items, rng);
    record = find(name);
    auto built = engine::RecoverIndexes(store, *record, "");
    Check(built.status(), "build");
    const auto save = std::chrono::steady_clock::now();
    Check(engine::SaveSnapshots(built->indexes, *record, built->applied, snapshots), "snapshot");
    std::fprintf(stderr, "snapshot written in %.1f s\n", Seconds(save));
    // Changes after the snapshot: the start-up must replay them.
    std::vector<store::StoredItem> upserts;
    std::vector<std::string> deletions;
    const int changes = absl::GetFlag(FLAGS_changes);
    for (int i = 0; i < changes; ++i) {
      store::StoredItem item;
      item.id = absl::StrCat("item-", (i * 7919) % items);
      item.caption_text = bench::RandomUnit(rng, dim);
      item.clip_image = bench::RandomUnit(rng, dim);
      upserts.push_back(std::move(item));
      deletions.push_back(absl::StrCat("item-", (i * 104729 + 1) % items));
    }
    Check(store.PutItems(name, std::move(upserts)).status(), "upserts");
    Check(store.DeleteItems(name, deletions).status(), "deletions");
  }

  std::printf("collection: %lld items x %d dims in two spaces (caption, image), %d shards, index "
              "'%s'; %d upserts and up to %d "
              "deletions after the snapshot\n",
              static_cast<long long>(items), dim, record->shards, record->caption_index.c_str(),
              absl::GetFlag(FLAGS_changes), absl::GetFlag(FLAGS_changes));
  // What a starting replica does before it reports SERVING: recover, then follow the feed.
  auto time = [&](const std::string& root, const char* label) {
    const auto start = std::chrono::steady_clock::now();
    auto recovered = engine::RecoverIndexes(store, *record, root);
    Check(recovered.status(), label);
    const std::string how = recovered->how;
    engine::LiveCollection collection(*record, std::move(*recovered));
    const auto follow = std::chrono::steady_clock::now();
    Check(engine::CatchUp(collection, store, engine::FollowOptions{}), label);
    const double seconds = Seconds(start);
    std::printf("%-22s %8.2f s  %zu items  (%s; then %lld changes followed in %.2f s)\n", label,
                seconds, collection.Indexes()->captions->size(), how.c_str(),
                static_cast<long long>(collection.changes_applied.load()), Seconds(follow));
    return seconds;
  };
  const double from_snapshot = time(snapshots, "from snapshot:");
  const double rebuild = time("", "from the items:");
  std::printf("a start from the snapshot is %.1fx faster than from the items (%.2f s vs %.2f s)\n",
              rebuild / from_snapshot, from_snapshot, rebuild);
  return 0;
}

}  // namespace
}  // namespace retrace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return retrace::Run();
}
