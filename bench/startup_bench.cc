// startup_bench — how long a collection's index takes to come back at start-up: from its
// snapshot (plus the store's changes since) against a rebuild from every stored item. Both use
// RecoverIndexes, the code the server runs at start. A benchmark, not a test.
//
//   build/bench/startup_bench --dir /tmp/startup --items 1000000 --dim 1024 --shards 4
//
// The first run fills a SQLite store in --dir (reused by later runs with the same shape) with
// random unit vectors as caption embeddings; items carry no image embedding, which makes the
// store smaller than a real one and so favours the rebuild. It then takes one snapshot, adds
// --changes upserts and deletions after it, and times both recoveries side by side.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/random_items.h"
#include "core/engine/collection_index.h"
#include "core/store/sqlite_item_store.h"

ABSL_FLAG(std::string, dir, "/tmp/retrace-startup-bench", "data directory (reused when filled)");
ABSL_FLAG(int64_t, items, 1'000'000, "items in the collection");
ABSL_FLAG(int, dim, 1024, "embedding dimension");
ABSL_FLAG(int, shards, 4, "shards");
ABSL_FLAG(std::string, index, "Flat", "FAISS factory string of the caption space");
ABSL_FLAG(int, changes, 1000, "upserts (and as many deletions) after the snapshot");

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

int Run() {
  const std::string dir = absl::GetFlag(FLAGS_dir);
  const int64_t items = absl::GetFlag(FLAGS_items);
  const int dim = absl::GetFlag(FLAGS_dim);
  const std::string name = absl::StrCat("bench_", items, "x", dim, "_", absl::GetFlag(FLAGS_shards),
                                        "_", absl::GetFlag(FLAGS_index));
  auto opened = store::SqliteItemStore::Open(dir);
  Check(opened.status(), "open store");
  store::ItemStore& store = **opened;
  const std::string snapshots = dir + "/snapshots";

  auto find = [&]() -> std::optional<store::CollectionRecord> {
    auto all = store.ListCollections();
    Check(all.status(), "list");
    for (auto& r : *all) if (r.name == name) return r;
    return std::nullopt;
  };
  std::optional<store::CollectionRecord> record = find();
  std::mt19937 rng(7);
  // A store filled by an earlier run holds items minus the deletions made after its snapshot.
  const int64_t at_least = items - absl::GetFlag(FLAGS_changes);
  if (!record.has_value() || store.CountItems(name).value_or(0) < at_least) {
    if (record.has_value()) Check(store.DropCollection(name), "drop partial collection");
    store::CollectionRecord r;
    r.name = name;
    r.shards = absl::GetFlag(FLAGS_shards);
    r.caption_index = absl::GetFlag(FLAGS_index);
    r.caption_dim = dim;
    r.image_index = r.caption_index;
    r.image_dim = dim;  // no image encoder: the image space is the CLIP image embedding
    r.clip_model = r.captioner_model = "random";
    Check(store.CreateCollection(r).status(), "create");
    const auto start = std::chrono::steady_clock::now();
    for (int64_t begin = 0; begin < items; begin += 1024) {
      std::vector<store::StoredItem> batch;
      for (int64_t i = begin; i < std::min(items, begin + 1024); ++i) {
        batch.push_back(bench::RandomItem(rng, i, dim, 0));
      }
      Check(store.PutItems(name, std::move(batch)).status(), "put");
      if ((begin / 1024) % 100 == 0) {
        std::fprintf(stderr, "\rfilling the store: %lld / %lld", static_cast<long long>(begin),
                     static_cast<long long>(items));
      }
    }
    std::fprintf(stderr, "\rfilled the store with %lld items in %.1f s\n",
                 static_cast<long long>(items), Seconds(start));
    record = find();
    auto built = engine::RecoverIndexes(store, *record, "");
    Check(built.status(), "build");
    const auto save = std::chrono::steady_clock::now();
    Check(engine::SaveSnapshots(built->indexes, *record, store.LastSequence(), snapshots),
          "snapshot");
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
  auto time = [&](const std::string& root, const char* label) {
    const auto start = std::chrono::steady_clock::now();
    auto recovered = engine::RecoverIndexes(store, *record, root);
    Check(recovered.status(), label);
    const double seconds = Seconds(start);
    std::printf("%-22s %8.2f s  %zu items  (%s)\n", label, seconds, recovered->indexes.captions->size(),
                recovered->how.c_str());
    return seconds;
  };
  const double from_snapshot = time(snapshots, "from snapshot:");
  const double rebuild = time("", "rebuild from store:");
  std::printf("snapshot start-up is %.1fx faster than a rebuild (%.2f s vs %.2f s)\n",
              rebuild / from_snapshot, from_snapshot, rebuild);
  return 0;
}

}  // namespace
}  // namespace retrace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return retrace::Run();
}
