// Tests for ShardedIndex::SaveSnapshot and LoadSnapshot: identical answers after a round trip
// (Flat, HNSW with tombstones, IVF before and after training), the errors for missing, corrupt
// and mismatched snapshots, file replacement, and crash leftovers.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "core/index/sharded_index.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/index/index_test_util.h"

namespace retrace::index {
namespace {

using ::retrace::index::testing::Ids;
using ::retrace::index::testing::RandomUnitVectors;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

namespace fs = std::filesystem;

constexpr int kDim = 16;

std::unique_ptr<ShardedIndex> MustCreate(const IndexOptions& options) {
  absl::StatusOr<std::unique_ptr<ShardedIndex>> index = ShardedIndex::Create(options);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? *std::move(index) : nullptr;
}

std::vector<std::string> FileNames(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// ExpectSameAnswers checks that both indexes give the same hits, scores bit for bit.
void ExpectSameAnswers(const ShardedIndex& a, const ShardedIndex& b) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a.trained(), b.trained());
  const std::vector<float> queries = RandomUnitVectors(25, kDim, 99);
  for (int k : {1, 10, 100}) {
    auto want = a.Search(queries.data(), 25, k);
    auto got = b.Search(queries.data(), 25, k);
    ASSERT_TRUE(want.ok() && got.ok());
    for (size_t q = 0; q < 25; ++q) {
      ASSERT_EQ((*got)[q].size(), (*want)[q].size()) << "k " << k << " query " << q;
      for (size_t j = 0; j < (*want)[q].size(); ++j) {
        EXPECT_EQ((*got)[q][j].id, (*want)[q][j].id) << "k " << k << " query " << q;
        EXPECT_EQ((*got)[q][j].score, (*want)[q][j].score) << "k " << k << " query " << q;
      }
    }
  }
}

class IndexSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    std::replace(name.begin(), name.end(), '/', '_');  // parameterised names have slashes
    dir_ = ::testing::TempDir() + "retrace_snapshot_" + name;
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Filled makes a 3-shard index of `factory` with 300 items, some replaced and removed.
  std::unique_ptr<ShardedIndex> Filled(const IndexOptions& options) {
    auto index = MustCreate(options);
    if (index == nullptr) return nullptr;
    const std::vector<std::string> ids = Ids(300);
    EXPECT_TRUE(index->Add(ids, RandomUnitVectors(300, kDim, 1).data(), 300).ok());
    EXPECT_TRUE(index->Add(Ids(40), RandomUnitVectors(40, kDim, 2).data(), 40).ok());
    EXPECT_EQ(*index->Remove({ids.begin() + 100, ids.begin() + 130}), 30u);
    return index;
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

}  // namespace
// PrintTo keeps CTest's test names short (gtest would print the options' bytes). It must live in
// IndexOptions' namespace for gtest to find it.
void PrintTo(const IndexOptions& o, std::ostream* os) {
  *os << o.factory << " x" << o.shards << " train_min_vectors=" << o.train_min_vectors
      << (o.mmap_snapshots ? " mmap" : "");
}
namespace {

class IndexSnapshotRoundTripTest : public IndexSnapshotTest,
                                   public ::testing::WithParamInterface<IndexOptions> {};

TEST_P(IndexSnapshotRoundTripTest, LoadAnswersAsTheSavedIndexDid) {
  const IndexOptions options = GetParam();
  auto index = Filled(options);
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->SaveSnapshot(dir_, 1234, "created-at-7").ok());
  auto loaded = ShardedIndex::LoadSnapshot(dir_, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->sequence, 1234);
  EXPECT_EQ(loaded->tag, "created-at-7");
  // FAISS maps the lists of a trained IVF only.
  const bool maps = options.mmap_snapshots && index->trained() &&
                    options.factory.compare(0, 3, "IVF") == 0;
  EXPECT_EQ(loaded->index->mapped_shards(), maps ? options.shards : 0);
  ExpectSameAnswers(*index, *loaded->index);
  EXPECT_TRUE(loaded->index->Contains("item-0"));
  EXPECT_FALSE(loaded->index->Contains("item-100"));

  // Both go on the same way: labels, tombstones and training state came back (and mapped lists
  // were copied into memory to take the changes).
  for (ShardedIndex* each : {index.get(), loaded->index.get()}) {
    ASSERT_TRUE(each->Add(Ids(200, "more-"), RandomUnitVectors(200, kDim, 3).data(), 200).ok());
    ASSERT_TRUE(each->Add(Ids(20), RandomUnitVectors(20, kDim, 4).data(), 20).ok());
    ASSERT_EQ(*each->Remove(Ids(10, "more-")), 10u);
  }
  EXPECT_EQ(loaded->index->mapped_shards(), 0);
  ExpectSameAnswers(*index, *loaded->index);
}

INSTANTIATE_TEST_SUITE_P(Factories, IndexSnapshotRoundTripTest,
                         ::testing::Values(IndexOptions{kDim, 3, "Flat"},
                                           IndexOptions{kDim, 3, "HNSW32"},
                                           // Untrained when saved; the Adds after loading train it.
                                           IndexOptions{kDim, 3, "IVF8,Flat", 400},
                                           IndexOptions{kDim, 3, "IVF8,Flat", 200, 2},
                                           IndexOptions{kDim, 2, "IVF8,PQ4", 256},
                                           // The compressed types of README's capacity table.
                                           IndexOptions{kDim, 3, "SQfp16"},
                                           IndexOptions{kDim, 3, "SQ8", 256},
                                           IndexOptions{kDim, 2, "IVF8,SQ8", 256},
                                           // Memory-mapped: trained IVFs map, the others load.
                                           IndexOptions{kDim, 3, "IVF8,Flat", 200, 2, true},
                                           IndexOptions{kDim, 2, "IVF8,PQ4", 256, 0, true},
                                           IndexOptions{kDim, 3, "IVF8,Flat", 400, 0, true},
                                           IndexOptions{kDim, 3, "HNSW32", 0, 0, true},
                                           IndexOptions{kDim, 3, "SQ8", 256, 0, true}),
                         [](const auto& info) {
                           std::string name = info.param.factory + "_" +
                                              std::to_string(info.param.train_min_vectors) +
                                              (info.param.mmap_snapshots ? "_mmap" : "");
                           for (char& c : name)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST_F(IndexSnapshotTest, HnswTombstonesSurvive) {
  auto index = Filled(IndexOptions{kDim, 2, "HNSW32"});
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->SaveSnapshot(dir_, 1, "").ok());
  auto loaded = ShardedIndex::LoadSnapshot(dir_, IndexOptions{kDim, 2, "HNSW32"});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  // The replaced items' old vectors are still in the graph: asking for everything shows each id
  // once, and none of the removed.
  auto all = loaded->index->Search(RandomUnitVectors(1, kDim, 5).data(), 1, 300);
  ASSERT_TRUE(all.ok());
  const std::vector<std::string> removed = Ids(130);
  absl::flat_hash_set<std::string> seen;
  for (const IndexHit& hit : (*all)[0]) {
    EXPECT_TRUE(seen.insert(hit.id).second) << "twice: " << hit.id;
    EXPECT_EQ(std::find(removed.begin() + 100, removed.end(), hit.id), removed.end()) << hit.id;
  }
  EXPECT_GE(seen.size(), 270u * 9 / 10);
}

// A mapped index saved before any change writes the files it maps; saving over them unlinks the
// mapped files, which stay readable; a removal, then an add, copy the lists of the shards they
// touch into memory first. Throughout, it answers as the index it was saved from (nprobe = nlist:
// exact, so removals cannot reorder approximate hits).
TEST_F(IndexSnapshotTest, MappedIvfSavesRemovesAndAddsLikeTheOriginal) {
  const IndexOptions options{kDim, 2, "IVF8,Flat", 200, 8, true};
  auto index = Filled(options);
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->trained());
  ASSERT_TRUE(index->SaveSnapshot(dir_, 1, "").ok());
  auto mapped = ShardedIndex::LoadSnapshot(dir_, options);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_EQ(mapped->index->mapped_shards(), 2);
  const std::string copy_dir = dir_ + "/copy";
  ASSERT_TRUE(mapped->index->SaveSnapshot(copy_dir, 2, "").ok());
  ASSERT_TRUE(mapped->index->SaveSnapshot(dir_, 3, "").ok());  // unlinks the mapped files
  EXPECT_FALSE(fs::exists(Path("index-00000001-shard-000.faiss")));
  EXPECT_EQ(ReadFile(Path("index-00000002-shard-000.faiss")),
            ReadFile(copy_dir + "/index-00000001-shard-000.faiss"));
  EXPECT_EQ(mapped->index->mapped_shards(), 2);
  ExpectSameAnswers(*index, *mapped->index);
  for (const std::string& dir : {copy_dir, dir_}) {
    auto again = ShardedIndex::LoadSnapshot(dir, options);
    ASSERT_TRUE(again.ok()) << again.status();
    ExpectSameAnswers(*index, *again->index);
  }

  // One removal touches one shard; the other stays mapped.
  ASSERT_EQ(*mapped->index->Remove({"item-0"}), 1u);
  ASSERT_EQ(*index->Remove({"item-0"}), 1u);
  EXPECT_EQ(mapped->index->mapped_shards(), 1);
  ExpectSameAnswers(*index, *mapped->index);
  const std::vector<std::string> ids = Ids(60, "new-");
  const std::vector<float> data = RandomUnitVectors(60, kDim, 8);
  ASSERT_TRUE(mapped->index->Add(ids, data.data(), ids.size()).ok());
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  EXPECT_EQ(mapped->index->mapped_shards(), 0);
  ExpectSameAnswers(*index, *mapped->index);
  auto top = mapped->index->Search(data.data(), 1, 1);
  ASSERT_TRUE(top.ok());
  EXPECT_EQ((*top)[0][0].id, "new-0");

  // Saved from memory now, and loaded without mapping.
  ASSERT_TRUE(mapped->index->SaveSnapshot(dir_, 4, "").ok());
  IndexOptions in_memory = options;
  in_memory.mmap_snapshots = false;
  auto reloaded = ShardedIndex::LoadSnapshot(dir_, in_memory);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(reloaded->index->mapped_shards(), 0);
  ExpectSameAnswers(*index, *reloaded->index);
}

TEST_F(IndexSnapshotTest, OddIdsAndTagSurvive) {
  const std::vector<std::string> ids = {std::string("a\0b", 3), std::string("\0", 1),
                                        "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac", "\xff\xfe\x80",
                                        std::string(3000, 'x')};
  auto index = MustCreate(IndexOptions{kDim, 4, "Flat"});
  ASSERT_NE(index, nullptr);
  const std::vector<float> data = RandomUnitVectors(ids.size(), kDim, 6);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  const std::string tag("tag\0\xff", 5);
  ASSERT_TRUE(index->SaveSnapshot(dir_, -1, tag).ok());
  auto loaded = ShardedIndex::LoadSnapshot(dir_, IndexOptions{kDim, 4, "Flat"});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->tag, tag);
  EXPECT_EQ(loaded->sequence, -1);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_TRUE(loaded->index->Contains(ids[i])) << i;
    auto top = loaded->index->Search(&data[i * kDim], 1, 1);
    ASSERT_TRUE(top.ok());
    EXPECT_EQ((*top)[0][0].id, ids[i]) << i;
  }
}

TEST_F(IndexSnapshotTest, NoSnapshotIsNotFound) {
  EXPECT_EQ(ShardedIndex::LoadSnapshot(dir_, IndexOptions{kDim}).status().code(),
            absl::StatusCode::kNotFound);
  fs::create_directories(dir_);
  EXPECT_EQ(ShardedIndex::LoadSnapshot(dir_, IndexOptions{kDim}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(IndexSnapshotTest, DifferentOptionsAreAFailedPrecondition) {
  auto index = Filled(IndexOptions{kDim, 3, "Flat"});
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->SaveSnapshot(dir_, 1, "").ok());
  for (const IndexOptions& other :
       {IndexOptions{kDim * 2, 3, "Flat"}, IndexOptions{kDim, 2, "Flat"},
        IndexOptions{kDim, 3, "HNSW32"}}) {
    const absl::Status status = ShardedIndex::LoadSnapshot(dir_, other).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("rebuild the index from the store"));
  }
  // Tuning options are not part of the match.
  EXPECT_TRUE(ShardedIndex::LoadSnapshot(dir_, IndexOptions{kDim, 3, "Flat", 5, 3}).ok());
}

TEST_F(IndexSnapshotTest, DamageIsDataLossNamingTheFile) {
  const IndexOptions options{kDim, 3, "Flat"};
  auto index = Filled(options);
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->SaveSnapshot(dir_, 1, "").ok());
  const std::string faiss = "index-00000001-shard-001.faiss";
  const std::string ids = "index-00000002-shard-002.ids";  // after the second save below
  IndexOptions mmap_options = options;
  mmap_options.mmap_snapshots = true;
  auto expect_data_loss = [&](const std::string& needle) {
    // A file to be mapped is checked by streaming it, the others once read: the same verdicts.
    for (const IndexOptions& each : {options, mmap_options}) {
      const absl::Status status = ShardedIndex::LoadSnapshot(dir_, each).status();
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
      EXPECT_THAT(std::string(status.message()), HasSubstr(needle));
    }
  };

  const std::string good = ReadFile(Path(faiss));
  std::string bad = good;
  bad[bad.size() / 2] ^= 0x01;
  WriteFile(Path(faiss), bad);
  expect_data_loss(faiss + ": checksum mismatch");
  WriteFile(Path(faiss), good.substr(0, good.size() - 10));
  expect_data_loss(faiss + ": " + std::to_string(good.size() - 10) + " bytes");
  fs::remove(Path(faiss));
  expect_data_loss(faiss + ": missing");

  ASSERT_TRUE(index->SaveSnapshot(dir_, 2, "").ok());
  const std::string ids_good = ReadFile(Path(ids));
  WriteFile(Path(ids), ids_good.substr(0, 4) + "\x7f" + ids_good.substr(5));
  expect_data_loss(ids + ": checksum mismatch");
  WriteFile(Path(ids), ids_good);
  ASSERT_TRUE(ShardedIndex::LoadSnapshot(dir_, options).ok());

  const std::string manifest = ReadFile(Path("MANIFEST"));
  for (size_t keep : {manifest.size() - 1, manifest.size() / 2, size_t{3}, size_t{0}}) {
    WriteFile(Path("MANIFEST"), manifest.substr(0, keep));
    expect_data_loss("MANIFEST");
  }
  std::string flipped = manifest;
  flipped[20] ^= 0x40;
  WriteFile(Path("MANIFEST"), flipped);
  expect_data_loss("MANIFEST: checksum mismatch");
}

TEST_F(IndexSnapshotTest, SavingAgainReplacesTheFiles) {
  const IndexOptions options{kDim, 2, "Flat"};
  auto index = Filled(options);
  ASSERT_NE(index, nullptr);
  fs::create_directories(dir_);
  WriteFile(Path("notes.txt"), "not ours");
  ASSERT_TRUE(index->SaveSnapshot(dir_, 1, "first").ok());
  EXPECT_THAT(FileNames(dir_),
              UnorderedElementsAre("MANIFEST", "notes.txt", "index-00000001-shard-000.faiss",
                                   "index-00000001-shard-000.ids", "index-00000001-shard-001.faiss",
                                   "index-00000001-shard-001.ids"));
  ASSERT_TRUE(index->Remove({"item-0"}).ok());
  ASSERT_TRUE(index->SaveSnapshot(dir_, 2, "second").ok());
  EXPECT_THAT(FileNames(dir_),
              UnorderedElementsAre("MANIFEST", "notes.txt", "index-00000002-shard-000.faiss",
                                   "index-00000002-shard-000.ids", "index-00000002-shard-001.faiss",
                                   "index-00000002-shard-001.ids"));
  auto loaded = ShardedIndex::LoadSnapshot(dir_, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->sequence, 2);
  EXPECT_EQ(loaded->tag, "second");
  EXPECT_FALSE(loaded->index->Contains("item-0"));
}

// A save that crashed before its manifest leaves temporary and finished files of a newer
// generation: loading reads the last complete snapshot, and the next save clears them away.
TEST_F(IndexSnapshotTest, CrashLeftoversAreIgnoredThenRemoved) {
  const IndexOptions options{kDim, 2, "IVF8,Flat", 100};
  auto index = Filled(options);
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->trained());
  ASSERT_TRUE(index->SaveSnapshot(dir_, 5, "").ok());
  EXPECT_TRUE(fs::exists(Path("index-00000001-prototype.faiss")));
  WriteFile(Path("index-00000002-shard-000.faiss"), "half a snapshot");
  WriteFile(Path("index-00000002-shard-001.faiss.tmp"), "torn");
  WriteFile(Path("MANIFEST.tmp"), "torn manifest");
  auto loaded = ShardedIndex::LoadSnapshot(dir_, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->sequence, 5);
  ExpectSameAnswers(*index, *loaded->index);

  ASSERT_TRUE(loaded->index->SaveSnapshot(dir_, 6, "").ok());
  std::vector<std::string> names = FileNames(dir_);
  std::sort(names.begin(), names.end());
  EXPECT_THAT(names, ::testing::ElementsAre(
                         "MANIFEST", "index-00000003-prototype.faiss",
                         "index-00000003-shard-000.faiss", "index-00000003-shard-000.ids",
                         "index-00000003-shard-001.faiss", "index-00000003-shard-001.ids"));
  auto again = ShardedIndex::LoadSnapshot(dir_, options);
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSameAnswers(*index, *again->index);
}

// Saves copy the state under the reader lock, so each snapshot holds whole Add calls: a writer
// adding batches of 50 is seen after some number of batches, never part of one.
TEST_F(IndexSnapshotTest, SavesWhileWritingHoldWholeAdds) {
  const IndexOptions options{kDim, 4, "Flat"};
  auto index = MustCreate(options);
  ASSERT_NE(index, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    for (uint32_t batch = 0; !stop.load() && batch < 400; ++batch) {
      const std::vector<float> data = RandomUnitVectors(50, kDim, batch);
      if (!index->Add(Ids(50, "b" + std::to_string(batch) + "-"), data.data(), 50).ok()) {
        failures.fetch_add(1);
      }
    }
  });
  for (int save = 0; save < 5; ++save) {
    ASSERT_TRUE(index->SaveSnapshot(dir_, save, "").ok());
    auto loaded = ShardedIndex::LoadSnapshot(dir_, options);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    const size_t size = loaded->index->size();
    EXPECT_EQ(size % 50, 0u) << size;
    const size_t batches = size / 50;
    if (batches > 0) {
      EXPECT_TRUE(loaded->index->Contains("b" + std::to_string(batches - 1) + "-49"));
    }
    EXPECT_FALSE(loaded->index->Contains("b" + std::to_string(batches) + "-0"));
  }
  stop.store(true);
  writer.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace retrace::index
