// Tests for ShardedIndex with index types that need training: exact (flat) until the whole index
// reaches train_min_vectors, then one trained index per shard, with removals and upserts working
// before and after.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "core/index/sharded_index.h"
#include "gtest/gtest.h"
#include "tests/unit/index/index_test_util.h"

namespace retrace::index {
namespace {

using ::retrace::index::testing::BruteForce;
using ::retrace::index::testing::Ids;
using ::retrace::index::testing::RandomUnitVectors;

constexpr int kDim = 32;

std::unique_ptr<ShardedIndex> MustCreate(const IndexOptions& options) {
  absl::StatusOr<std::unique_ptr<ShardedIndex>> index = ShardedIndex::Create(options);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? *std::move(index) : nullptr;
}

// ExpectBruteForce checks `queries` against brute force over (ids, data): same ids, same scores.
void ExpectBruteForce(const ShardedIndex& index, const std::vector<std::string>& ids,
                      const std::vector<float>& data, const std::vector<float>& queries, int k) {
  const size_t n = queries.size() / kDim;
  auto results = index.Search(queries.data(), n, k);
  ASSERT_TRUE(results.ok()) << results.status();
  for (size_t q = 0; q < n; ++q) {
    const std::vector<IndexHit> expected = BruteForce(ids, data, &queries[q * kDim], kDim, k);
    ASSERT_EQ((*results)[q].size(), expected.size()) << "query " << q;
    for (size_t j = 0; j < expected.size(); ++j) {
      ASSERT_EQ((*results)[q][j].id, expected[j].id) << "query " << q << " rank " << j;
      ASSERT_NEAR((*results)[q][j].score, expected[j].score, 1e-5) << "query " << q;
    }
  }
}

// SelfHits counts the items whose own vector finds them first.
size_t SelfHits(const ShardedIndex& index, const std::vector<std::string>& ids,
                const std::vector<float>& data) {
  auto results = index.Search(data.data(), ids.size(), 1);
  EXPECT_TRUE(results.ok()) << results.status();
  if (!results.ok()) return 0;
  size_t hits = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    hits += !(*results)[i].empty() && (*results)[i][0].id == ids[i] ? 1 : 0;
  }
  return hits;
}

TEST(IndexTrainingTest, PlainTypesNeedNoTraining) {
  for (const char* factory : {"Flat", "HNSW32"}) {
    auto index = MustCreate(IndexOptions{kDim, 2, factory});
    ASSERT_NE(index, nullptr);
    EXPECT_FALSE(index->needs_training()) << factory;
    EXPECT_TRUE(index->trained()) << factory;
  }
}

TEST(IndexTrainingTest, IvfIsExactUntilTrainedThenApproximate) {
  auto index = MustCreate(IndexOptions{kDim, 3, "IVF16,Flat", /*train_min_vectors=*/500});
  ASSERT_NE(index, nullptr);
  EXPECT_TRUE(index->needs_training());
  const std::vector<std::string> ids = Ids(800);
  const std::vector<float> data = RandomUnitVectors(800, kDim, 1);
  const std::vector<float> queries = RandomUnitVectors(40, kDim, 2);

  ASSERT_TRUE(index->Add({ids.begin(), ids.begin() + 499}, data.data(), 499).ok());
  EXPECT_FALSE(index->trained());
  const std::vector<std::string> before(ids.begin(), ids.begin() + 499);
  const std::vector<float> before_data(data.begin(), data.begin() + 499 * kDim);
  for (int k : {1, 10, 200}) ExpectBruteForce(*index, before, before_data, queries, k);

  // The 500th live vector trains, inside this Add.
  ASSERT_TRUE(index->Add({ids.begin() + 499, ids.end()}, &data[499 * kDim], 301).ok());
  EXPECT_TRUE(index->trained());
  EXPECT_EQ(index->size(), 800u);
  EXPECT_TRUE(index->Contains("item-0"));
  // Default nprobe (1 of 16 lists): a vector's own list is the one its query visits first.
  EXPECT_GE(SelfHits(*index, ids, data), ids.size() * 95 / 100);
}

TEST(IndexTrainingTest, DefaultThresholdIs39TimesNlist) {
  auto index = MustCreate(IndexOptions{kDim, 2, "IVF16,Flat"});
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> ids = Ids(39 * 16);
  const std::vector<float> data = RandomUnitVectors(ids.size(), kDim, 3);
  ASSERT_TRUE(index->Add({ids.begin(), ids.end() - 1}, data.data(), ids.size() - 1).ok());
  EXPECT_FALSE(index->trained());
  ASSERT_TRUE(index->Add({ids.back()}, &data[(ids.size() - 1) * kDim], 1).ok());
  EXPECT_TRUE(index->trained());
}

// nprobe = nlist visits every list: an IVF-Flat then answers as brute force does.
TEST(IndexTrainingTest, IvfWithAllListsIsExactAfterTraining) {
  auto index = MustCreate(IndexOptions{kDim, 4, "IVF16,Flat", 300, /*nprobe=*/16});
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> ids = Ids(600);
  const std::vector<float> data = RandomUnitVectors(600, kDim, 4);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  ASSERT_TRUE(index->trained());
  EXPECT_EQ(SelfHits(*index, ids, data), ids.size());
  ExpectBruteForce(*index, ids, data, RandomUnitVectors(30, kDim, 5), 10);
}

// More live vectors than training looks at (256 per centroid): the sample path.
TEST(IndexTrainingTest, TrainsOnASampleWhenThereAreMany) {
  auto index = MustCreate(IndexOptions{kDim, 3, "IVF2,Flat", 1500, 2});
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> ids = Ids(1500);
  const std::vector<float> data = RandomUnitVectors(1500, kDim, 6);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  ASSERT_TRUE(index->trained());
  ExpectBruteForce(*index, ids, data, RandomUnitVectors(20, kDim, 7), 5);
}

TEST(IndexTrainingTest, RemovalsAndUpsertsWorkBeforeAndAfterTraining) {
  auto index = MustCreate(IndexOptions{kDim, 3, "IVF16,Flat", 400, 16});
  ASSERT_NE(index, nullptr);
  std::vector<std::string> ids = Ids(500);
  std::vector<float> data = RandomUnitVectors(500, kDim, 8);
  // Before: 300 in, 50 removed, 20 replaced.
  ASSERT_TRUE(index->Add({ids.begin(), ids.begin() + 300}, data.data(), 300).ok());
  ASSERT_EQ(*index->Remove({ids.begin(), ids.begin() + 50}), 50u);
  const std::vector<float> fresh = RandomUnitVectors(20, kDim, 9);
  ASSERT_TRUE(index->Add({ids.begin() + 50, ids.begin() + 70}, fresh.data(), 20).ok());
  std::copy(fresh.begin(), fresh.end(), data.begin() + 50 * kDim);
  EXPECT_FALSE(index->trained());
  // 250 live + 200 = 450 >= 400: trained.
  ASSERT_TRUE(index->Add({ids.begin() + 300, ids.end()}, &data[300 * kDim], 200).ok());
  ASSERT_TRUE(index->trained());
  EXPECT_EQ(index->size(), 450u);
  ids.erase(ids.begin(), ids.begin() + 50);
  data.erase(data.begin(), data.begin() + 50 * kDim);
  ExpectBruteForce(*index, ids, data, RandomUnitVectors(20, kDim, 10), 10);

  // After: remove 100 (IVF removes in place), replace 30.
  ASSERT_EQ(*index->Remove({ids.begin(), ids.begin() + 100}), 100u);
  EXPECT_FALSE(index->Contains(ids[0]));
  const std::vector<float> later = RandomUnitVectors(30, kDim, 11);
  ASSERT_TRUE(index->Add({ids.begin() + 100, ids.begin() + 130}, later.data(), 30).ok());
  std::copy(later.begin(), later.end(), data.begin() + 100 * kDim);
  ids.erase(ids.begin(), ids.begin() + 100);
  data.erase(data.begin(), data.begin() + 100 * kDim);
  EXPECT_EQ(index->size(), ids.size());
  ExpectBruteForce(*index, ids, data, RandomUnitVectors(20, kDim, 12), 10);
  // Deep searches never return a removed or replaced vector.
  ExpectBruteForce(*index, ids, data, RandomUnitVectors(3, kDim, 13), 350);
}

class IndexTrainedFactoryTest : public ::testing::TestWithParam<const char*> {};

// PQ and IVF-PQ train (on 300 vectors; PQ with 8-bit codes needs 256) and find most items;
// IVF-Flat-RFlat has no remove_ids, so its upserts leave tombstones that must stay hidden.
TEST_P(IndexTrainedFactoryTest, TrainsAndFindsItsItems) {
  constexpr int kSmallDim = 16;
  auto index = MustCreate(IndexOptions{kSmallDim, 2, GetParam(), 300, 16});
  ASSERT_NE(index, nullptr);
  EXPECT_TRUE(index->needs_training());
  std::vector<std::string> ids = Ids(400);
  std::vector<float> data = RandomUnitVectors(400, kSmallDim, 14);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  ASSERT_TRUE(index->trained());
  const std::vector<float> fresh = RandomUnitVectors(50, kSmallDim, 15);
  ASSERT_TRUE(index->Add({ids.begin(), ids.begin() + 50}, fresh.data(), 50).ok());
  std::copy(fresh.begin(), fresh.end(), data.begin());
  ASSERT_EQ(*index->Remove({ids.begin() + 50, ids.begin() + 60}), 10u);
  EXPECT_EQ(index->size(), 390u);

  const absl::flat_hash_set<std::string> removed(ids.begin() + 50, ids.begin() + 60);
  auto results = index->Search(data.data(), ids.size(), 1);
  ASSERT_TRUE(results.ok()) << results.status();
  size_t self = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if ((*results)[i].empty()) continue;
    const std::string& top = (*results)[i][0].id;
    EXPECT_FALSE(removed.contains(top)) << top;
    self += top == ids[i] ? 1 : 0;
  }
  EXPECT_GE(self, 390u * 80 / 100) << GetParam();  // PQ codes are lossy; top-1 mostly survives
}

INSTANTIATE_TEST_SUITE_P(Factories, IndexTrainedFactoryTest,
                         ::testing::Values("PQ8", "IVF16,PQ8", "IVF16,Flat,RFlat", "SQ8"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name.erase(std::remove(name.begin(), name.end(), ','), name.end());
                           return name;
                         });

}  // namespace
}  // namespace retrace::index
