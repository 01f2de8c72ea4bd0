// Tests for retrace::index::internal::Shard: tombstones in index types that cannot remove, and
// the rebuild that bounds them.
#include "core/index/internal/shard.h"

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace retrace::index::internal {
namespace {

constexpr int kDim = 8;

std::vector<float> RandomUnitVectors(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(n * kDim);
  for (size_t i = 0; i < n; ++i) {
    float norm = 0;
    for (int j = 0; j < kDim; ++j) norm += (out[i * kDim + j] = normal(rng)) * out[i * kDim + j];
    for (int j = 0; j < kDim; ++j) out[i * kDim + j] /= std::sqrt(norm);
  }
  return out;
}

TEST(ShardTest, HnswTombstonesAreFilteredThenCompacted) {
  auto created = Shard::Create(kDim, "HNSW32");
  ASSERT_TRUE(created.ok()) << created.status();
  Shard& shard = **created;
  constexpr size_t kItems = 1200;  // above kCompactMinTombstones, so live count sets the bar
  static_assert(kItems > Shard::kCompactMinTombstones);
  std::vector<std::string> ids;
  std::vector<size_t> rows;
  for (size_t i = 0; i < kItems; ++i) {
    ids.push_back(absl::StrCat("id-", i));
    rows.push_back(i);
  }
  ASSERT_TRUE(shard.Upsert(ids, RandomUnitVectors(kItems, 1).data(), rows).ok());
  const std::vector<float> second = RandomUnitVectors(kItems, 2);
  ASSERT_TRUE(shard.Upsert(ids, second.data(), rows).ok());
  EXPECT_EQ(shard.size(), kItems);
  EXPECT_EQ(shard.tombstones(), kItems);  // HNSW cannot remove; not yet over the bar

  // Old versions are hidden: no id twice, however deep the search.
  auto deep = shard.Search(second.data(), 3, static_cast<int>(kItems));
  ASSERT_TRUE(deep.ok()) << deep.status();
  for (const auto& hits : *deep) {
    absl::flat_hash_set<std::string> distinct;
    for (const ShardHit& hit : hits) EXPECT_TRUE(distinct.insert(*hit.id).second) << *hit.id;
  }

  const std::vector<float> third = RandomUnitVectors(kItems, 3);
  ASSERT_TRUE(shard.Upsert(ids, third.data(), rows).ok());
  EXPECT_EQ(shard.tombstones(), 0u);  // 2 * kItems dead > kItems live: rebuilt
  EXPECT_EQ(shard.size(), kItems);
  auto found = shard.Search(third.data(), kItems, 5);
  ASSERT_TRUE(found.ok()) << found.status();
  size_t self_first = 0;
  for (size_t i = 0; i < kItems; ++i) {
    const auto& hits = (*found)[i];
    if (!hits.empty() && *hits[0].id == ids[i] && std::fabs(hits[0].score - 1.0f) < 1e-5) {
      ++self_first;
    }
  }
  EXPECT_GE(self_first, kItems * 99 / 100);  // HNSW is approximate; the rebuild must not lose items
}

// 4,200 queries * 1,000 hits exceed one search buffer, so the batch is cut in two; every query
// must get the answer it gets alone.
TEST(ShardTest, LargeBatchesAreSearchedInBlocks) {
  auto created = Shard::Create(kDim, "Flat");
  ASSERT_TRUE(created.ok()) << created.status();
  Shard& shard = **created;
  constexpr size_t kItems = 2000;
  constexpr size_t kQueries = 4200;
  constexpr int kK = 1000;
  std::vector<std::string> ids;
  std::vector<size_t> rows;
  for (size_t i = 0; i < kItems; ++i) {
    ids.push_back(absl::StrCat("id-", i));
    rows.push_back(i);
  }
  ASSERT_TRUE(shard.Upsert(ids, RandomUnitVectors(kItems, 5).data(), rows).ok());
  const std::vector<float> queries = RandomUnitVectors(kQueries, 6);
  auto batch = shard.Search(queries.data(), kQueries, kK);
  ASSERT_TRUE(batch.ok()) << batch.status();
  for (size_t q : {size_t{0}, size_t{2000}, kQueries - 1}) {
    auto alone = shard.Search(&queries[q * kDim], 1, kK);
    ASSERT_TRUE(alone.ok());
    ASSERT_EQ((*batch)[q].size(), static_cast<size_t>(kK)) << "query " << q;
    ASSERT_EQ((*alone)[0].size(), static_cast<size_t>(kK));
    // Batches go through BLAS, single queries not: rounding differs, so near-ties may come in
    // another order (by more than one place where several are near), but the scores by rank
    // may not differ, and every hit must be the same item with the same score, except near the
    // cut-off at rank kK, where a near-tie may fall on either side.
    std::map<std::string, float> alone_scores;
    for (const auto& hit : (*alone)[0]) alone_scores[*hit.id] = hit.score;
    const float last = (*alone)[0][kK - 1].score;
    for (int j = 0; j < kK; ++j) {
      const auto& hit = (*batch)[q][j];
      ASSERT_NEAR(hit.score, (*alone)[0][j].score, 1e-5) << "query " << q << " rank " << j;
      auto it = alone_scores.find(*hit.id);
      if (it == alone_scores.end()) {
        ASSERT_NEAR(hit.score, last, 1e-5) << "query " << q << " rank " << j << ": " << *hit.id
                                           << " is not in the single query's hits";
      } else {
        ASSERT_NEAR(hit.score, it->second, 1e-5) << "query " << q << " rank " << j;
      }
    }
  }
}

TEST(ShardTest, FlatRemovesWithoutTombstones) {
  auto created = Shard::Create(kDim, "Flat");
  ASSERT_TRUE(created.ok()) << created.status();
  Shard& shard = **created;
  const std::vector<std::string> ids = {"a", "b", "c"};
  const std::vector<float> data = RandomUnitVectors(3, 4);
  ASSERT_TRUE(shard.Upsert(ids, data.data(), {0, 1, 2}).ok());
  ASSERT_TRUE(shard.Upsert(ids, data.data(), {1}).ok());
  auto removed = shard.Remove(ids, {0, 0});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1u);
  EXPECT_EQ(shard.tombstones(), 0u);
  EXPECT_EQ(shard.size(), 2u);
  EXPECT_FALSE(shard.Contains("a"));
  EXPECT_TRUE(shard.Contains("b"));
}

// Snapshot files are checksummed, so these images cannot come from disk damage; Restore still
// refuses an image whose parts disagree rather than serve wrong ids.
TEST(ShardTest, RestoreRefusesInconsistentImages) {
  auto make = [](const std::string& factory, size_t items) {
    auto shard = Shard::Create(kDim, factory);
    EXPECT_TRUE(shard.ok()) << shard.status();
    std::vector<std::string> ids;
    std::vector<size_t> rows;
    for (size_t i = 0; i < items; ++i) {
      ids.push_back(absl::StrCat("id-", i));
      rows.push_back(i);
    }
    EXPECT_TRUE((*shard)->Upsert(ids, RandomUnitVectors(items, 9).data(), rows).ok());
    auto image = (*shard)->Serialize();
    EXPECT_TRUE(image.ok()) << image.status();
    return *std::move(image);
  };
  auto restore = [](const std::string& factory, Shard::Image image) {
    return Shard::Restore(kDim, factory, std::move(image), nullptr, 1).status();
  };
  const Shard::Image three = make("Flat", 3);
  const Shard::Image four = make("Flat", 4);
  ASSERT_TRUE(restore("Flat", three).ok());

  Shard::Image mixed = three;
  mixed.ids = four.ids;  // four ids, three vectors
  EXPECT_EQ(restore("Flat", mixed).code(), absl::StatusCode::kDataLoss);
  Shard::Image truncated = three;
  truncated.ids.pop_back();
  EXPECT_EQ(restore("Flat", truncated).code(), absl::StatusCode::kDataLoss);
  Shard::Image garbage = three;
  garbage.index.assign(100, 7);
  EXPECT_EQ(restore("Flat", garbage).code(), absl::StatusCode::kDataLoss);
  // A Flat shard's image is not an HNSW shard's, nor a pending IVF shard's.
  EXPECT_EQ(restore("HNSW32", three).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(restore("IVF4,Flat", three).code(), absl::StatusCode::kDataLoss);
  // A pending IVF shard's image is a Flat one under another state: it restores as IVF only.
  const Shard::Image pending = make("IVF4,Flat", 3);
  EXPECT_TRUE(restore("IVF4,Flat", pending).ok());
  EXPECT_EQ(restore("Flat", pending).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace retrace::index::internal
