// ShardedIndex::ReadVectors: the stored vectors of given ids, read back from memory (what
// PROVENANCE re-ranks with, core/engine/space_search.h).
// - Flat and HNSW (flat storage) give back the very floats added, bit for bit, across shards;
//   absent ids say so and leave their rows alone.
// - After removals (Flat compacts its positions; HNSW tombstones, then rebuilds) and upserts,
//   reads give the current vector of each live id and nothing for the removed ones.
// - Types that keep no exact copy say UNIMPLEMENTED and read nothing: SQ8 and IVF once trained
//   (an untrained one still holds its exact stand-in, and reads), and types not known to be
//   exact (IndexRefineFlat).
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/index/sharded_index.h"
#include "gtest/gtest.h"
#include "tests/unit/index/index_test_util.h"

namespace retrace::index {
namespace {

using ::retrace::index::testing::Ids;
using ::retrace::index::testing::RandomUnitVectors;

constexpr int kDim = 12;
constexpr float kUntouched = -7.f;  // what a row ReadVectors must not write holds

std::unique_ptr<ShardedIndex> MustCreate(const IndexOptions& options) {
  absl::StatusOr<std::unique_ptr<ShardedIndex>> index = ShardedIndex::Create(options);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? *std::move(index) : nullptr;
}

// ExpectRows: ReadVectors of `ids` gives row `rows[i]` of `data` for each id, bit for bit, and
// found false with the row untouched where rows[i] < 0.
// RowsOf: a row pointer per kDim floats of `out`.
std::vector<float*> RowsOf(std::vector<float>& out) {
  std::vector<float*> rows;
  for (size_t at = 0; at < out.size(); at += kDim) rows.push_back(out.data() + at);
  return rows;
}

void ExpectRows(const ShardedIndex& index, const std::vector<std::string>& ids,
                const std::vector<float>& data, const std::vector<int>& rows) {
  std::vector<float> out(ids.size() * kDim, kUntouched);
  absl::StatusOr<std::vector<bool>> found = index.ReadVectors(ids, RowsOf(out));
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const float* got = out.data() + i * kDim;
    if (rows[i] < 0) {
      EXPECT_FALSE((*found)[i]) << ids[i];
      for (int d = 0; d < kDim; ++d) EXPECT_EQ(got[d], kUntouched) << ids[i];
      continue;
    }
    EXPECT_TRUE((*found)[i]) << ids[i];
    EXPECT_EQ(std::memcmp(got, data.data() + rows[i] * kDim, kDim * sizeof(float)), 0) << ids[i];
  }
}

class ExactReadTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExactReadTest, GivesBackTheAddedFloatsAcrossShards) {
  auto index = MustCreate(IndexOptions{kDim, 3, GetParam()});
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> ids = Ids(200);
  const std::vector<float> data = RandomUnitVectors(200, kDim, 5);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  ExpectRows(*index, {"item-17", "absent", "item-0", "item-199", "item-17"}, data,
             {17, -1, 0, 199, 17});
  ExpectRows(*index, {}, data, {});
}

TEST_P(ExactReadTest, ReadsTheCurrentVectorAfterRemovalsAndUpserts) {
  auto index = MustCreate(IndexOptions{kDim, 2, GetParam()});
  ASSERT_NE(index, nullptr);
  // Removals beyond Shard::kCompactMinTombstones and the live count per shard, so that HNSW
  // rebuilds its shards too (Flat compacts its positions at once).
  constexpr size_t kItems = 6000;
  const std::vector<std::string> ids = Ids(kItems);
  std::vector<float> data = RandomUnitVectors(kItems, kDim, 9);
  ASSERT_TRUE(index->Add(ids, data.data(), kItems).ok());
  std::vector<std::string> removed;
  for (size_t i = 0; i < kItems; ++i) {
    if (i % 3 != 0) removed.push_back(ids[i]);  // two thirds
  }
  ASSERT_TRUE(index->Remove(removed).ok());
  // New vectors for items 3 and 5997 (live) and 4 (removed: back again).
  const std::vector<float> fresh = RandomUnitVectors(3, kDim, 10);
  ASSERT_TRUE(index->Add({"item-3", "item-5997", "item-4"}, fresh.data(), 3).ok());
  std::copy(fresh.begin(), fresh.begin() + kDim, data.begin() + 3 * kDim);
  std::copy(fresh.begin() + kDim, fresh.begin() + 2 * kDim, data.begin() + 5997 * kDim);
  std::copy(fresh.begin() + 2 * kDim, fresh.end(), data.begin() + 4 * kDim);
  ExpectRows(*index,
             {"item-0", "item-1", "item-2", "item-3", "item-4", "item-5997", "item-5998", "item-6"},
             data, {0, -1, -1, 3, 4, 5997, -1, 6});
}

INSTANTIATE_TEST_SUITE_P(Types, ExactReadTest, ::testing::Values("Flat", "HNSW16"));

TEST(ReadVectorsTest, LossyOrUnmappedTypesSayUnimplementedOnceTrained) {
  for (const std::string factory : {"SQ8", "IVF4,Flat"}) {
    SCOPED_TRACE(factory);
    IndexOptions options{kDim, 2, factory};
    options.train_min_vectors = 300;
    auto index = MustCreate(options);
    ASSERT_NE(index, nullptr);
    const std::vector<std::string> ids = Ids(400);
    const std::vector<float> data = RandomUnitVectors(400, kDim, 3);
    // Untrained, the shards hold the floats in their exact stand-in.
    ASSERT_TRUE(index->Add({ids.begin(), ids.begin() + 100}, data.data(), 100).ok());
    ASSERT_FALSE(index->trained());
    ExpectRows(*index, {"item-5", "item-300"}, data, {5, -1});
    ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
    ASSERT_TRUE(index->trained());
    std::vector<float> out(kDim, kUntouched);
    absl::StatusOr<std::vector<bool>> found = index->ReadVectors({"item-5"}, RowsOf(out));
    EXPECT_EQ(found.status().code(), absl::StatusCode::kUnimplemented) << found.status();
    for (float x : out) EXPECT_EQ(x, kUntouched);
  }
}

// An exact index that keeps its floats elsewhere than an IndexFlat (IndexRefineFlat) is not
// read either: only the types known to be exact are.
TEST(ReadVectorsTest, OtherTypesSayUnimplemented) {
  auto index = MustCreate(IndexOptions{kDim, 2, "Flat,RFlat"});
  ASSERT_NE(index, nullptr);
  const std::vector<float> data = RandomUnitVectors(10, kDim, 4);
  ASSERT_TRUE(index->Add(Ids(10), data.data(), 10).ok());
  std::vector<float> out(kDim);
  EXPECT_EQ(index->ReadVectors({"item-1"}, RowsOf(out)).status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST(ReadVectorsTest, RowsMustMatchTheIds) {
  auto index = MustCreate(IndexOptions{kDim, 1, "Flat"});
  ASSERT_NE(index, nullptr);
  std::vector<float> out(kDim);
  EXPECT_EQ(index->ReadVectors({"a", "b"}, RowsOf(out)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index->ReadVectors({"a"}, {nullptr}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace retrace::index
