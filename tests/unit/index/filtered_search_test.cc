// filtered_search_test.cc — ShardedIndex::Search with a SearchFilter: only allowed ids come back,
// exact where the index is exact, and on 20,000 random items HNSW keeps recall@10 >= 0.95 against
// the exact filtered answer at every selectivity from 50% down to 0.1%.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "core/engine/defaults.h"
#include "core/index/sharded_index.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/index/index_test_util.h"

namespace retrace::index {
namespace {

using ::retrace::index::testing::BruteForce;
using ::retrace::index::testing::Ids;
using ::retrace::index::testing::RandomUnitVectors;

constexpr int kDim = 32;

SearchFilter Defaults(const absl::flat_hash_set<std::string>* allowed) {
  return SearchFilter{allowed, engine::defaults::kFilterExactMaxIds,
                      engine::defaults::kFilterExactFraction, engine::defaults::kFilterMinEfSearch,
                      engine::defaults::kFilterMaxEfSearch};
}

// SelectorOnly never takes the exact path, to test the FAISS selector search by itself.
SearchFilter SelectorOnly(const absl::flat_hash_set<std::string>* allowed) {
  return SearchFilter{allowed, 0, 0.0, engine::defaults::kFilterMinEfSearch,
                      engine::defaults::kFilterMaxEfSearch};
}

std::unique_ptr<ShardedIndex> Build(const std::string& factory, int shards,
                                    const std::vector<std::string>& ids,
                                    const std::vector<float>& data) {
  auto index = ShardedIndex::Create(IndexOptions{kDim, shards, factory});
  EXPECT_TRUE(index.ok()) << index.status();
  EXPECT_TRUE((*index)->Add(ids, data.data(), ids.size()).ok());
  return *std::move(index);
}

// Pick keeps each id with probability `fraction` (at least one).
absl::flat_hash_set<std::string> Pick(const std::vector<std::string>& ids, double fraction,
                                      uint32_t seed) {
  std::mt19937 rng(seed);
  std::bernoulli_distribution keep(fraction);
  absl::flat_hash_set<std::string> allowed;
  for (const std::string& id : ids) {
    if (keep(rng)) allowed.insert(id);
  }
  if (allowed.empty()) allowed.insert(ids[0]);
  return allowed;
}

// ExactFiltered is the reference: brute force over the allowed rows only.
std::vector<IndexHit> ExactFiltered(const std::vector<std::string>& ids,
                                    const std::vector<float>& data,
                                    const absl::flat_hash_set<std::string>& allowed,
                                    const float* query, int k) {
  std::vector<std::string> kept_ids;
  std::vector<float> kept;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!allowed.contains(ids[i])) continue;
    kept_ids.push_back(ids[i]);
    kept.insert(kept.end(), data.begin() + i * kDim, data.begin() + (i + 1) * kDim);
  }
  return BruteForce(kept_ids, kept, query, kDim, k);
}

// Recall is the mean share of the exact filtered top k found, over the queries; it also checks
// that every hit is allowed.
double Recall(const ShardedIndex& index, const SearchFilter& filter,
              const std::vector<std::string>& ids, const std::vector<float>& data,
              const std::vector<float>& queries, size_t n, int k) {
  auto found = index.Search(queries.data(), n, k, &filter);
  EXPECT_TRUE(found.ok()) << found.status();
  if (!found.ok()) return 0;
  double sum = 0;
  for (size_t q = 0; q < n; ++q) {
    const std::vector<IndexHit> truth =
        ExactFiltered(ids, data, *filter.allowed, queries.data() + q * kDim, k);
    absl::flat_hash_set<std::string> want;
    for (const IndexHit& hit : truth) want.insert(hit.id);
    size_t got = 0;
    for (const IndexHit& hit : (*found)[q]) {
      EXPECT_TRUE(filter.allowed->contains(hit.id)) << hit.id << " does not pass the filter";
      got += want.contains(hit.id) ? 1 : 0;
    }
    sum += truth.empty() ? 1.0 : static_cast<double>(got) / static_cast<double>(truth.size());
  }
  return sum / static_cast<double>(n);
}

class FilteredRecallTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ids_ = new std::vector<std::string>(Ids(kItems));
    data_ = new std::vector<float>(RandomUnitVectors(kItems, kDim, 17));
    queries_ = new std::vector<float>(RandomUnitVectors(kQueries, kDim, 99));
    hnsw_ = Build("HNSW32", 2, *ids_, *data_).release();
  }
  static void TearDownTestSuite() {
    delete hnsw_;
    delete queries_;
    delete data_;
    delete ids_;
  }
  static constexpr size_t kItems = 20000;
  static constexpr size_t kQueries = 100;
  static std::vector<std::string>* ids_;
  static std::vector<float>* data_;
  static std::vector<float>* queries_;
  static ShardedIndex* hnsw_;
};
std::vector<std::string>* FilteredRecallTest::ids_ = nullptr;
std::vector<float>* FilteredRecallTest::data_ = nullptr;
std::vector<float>* FilteredRecallTest::queries_ = nullptr;
ShardedIndex* FilteredRecallTest::hnsw_ = nullptr;

TEST_F(FilteredRecallTest, HnswRecallAtEverySelectivity) {
  for (double fraction : {0.5, 0.1, 0.01, 0.001}) {
    const absl::flat_hash_set<std::string> allowed = Pick(*ids_, fraction, 5);
    const SearchFilter filter = Defaults(&allowed);
    const double recall = Recall(*hnsw_, filter, *ids_, *data_, *queries_, kQueries, 10);
    EXPECT_GE(recall, 0.95) << "selectivity " << fraction << " (" << allowed.size() << " items)";
    RecordProperty("recall_at_" + std::to_string(fraction), std::to_string(recall));
  }
}

TEST_F(FilteredRecallTest, HnswSelectorSearchAloneKeepsRecallWhenManyPass) {
  // The selector path by itself, where the defaults use it (>= 2% of a shard pass).
  for (double fraction : {0.5, 0.1}) {
    const absl::flat_hash_set<std::string> allowed = Pick(*ids_, fraction, 6);
    const double recall =
        Recall(*hnsw_, SelectorOnly(&allowed), *ids_, *data_, *queries_, kQueries, 10);
    EXPECT_GE(recall, 0.95) << "selectivity " << fraction;
  }
}

TEST_F(FilteredRecallTest, PostFilteringTheTopKWouldCollapse) {
  // What the filter inside the search avoids: the unfiltered top 10, filtered afterwards, holds
  // about 10 * 1% allowed hits at 1% selectivity.
  const absl::flat_hash_set<std::string> allowed = Pick(*ids_, 0.01, 7);
  auto found = hnsw_->Search(queries_->data(), kQueries, 10);
  ASSERT_TRUE(found.ok());
  size_t kept = 0;
  for (const auto& hits : *found) {
    for (const IndexHit& hit : hits) kept += allowed.contains(hit.id) ? 1 : 0;
  }
  EXPECT_LT(kept, kQueries * 10 / 5);
  const SearchFilter filter = Defaults(&allowed);
  auto filtered = hnsw_->Search(queries_->data(), kQueries, 10, &filter);
  ASSERT_TRUE(filtered.ok());
  for (const auto& hits : *filtered) EXPECT_EQ(hits.size(), 10u);
}

TEST(FilteredSearchTest, FlatIsExactOnBothPaths) {
  const std::vector<std::string> ids = Ids(3000);
  const std::vector<float> data = RandomUnitVectors(3000, kDim, 3);
  const std::vector<float> queries = RandomUnitVectors(5, kDim, 4);
  auto index = Build("Flat", 3, ids, data);
  for (double fraction : {0.3, 0.01}) {
    const absl::flat_hash_set<std::string> allowed = Pick(ids, fraction, 8);
    for (const SearchFilter& filter : {Defaults(&allowed), SelectorOnly(&allowed)}) {
      auto found = index->Search(queries.data(), 5, 20, &filter);
      ASSERT_TRUE(found.ok()) << found.status();
      for (size_t q = 0; q < 5; ++q) {
        const std::vector<IndexHit> truth =
            ExactFiltered(ids, data, allowed, queries.data() + q * kDim, 20);
        ASSERT_EQ((*found)[q].size(), truth.size());
        for (size_t i = 0; i < truth.size(); ++i) {
          EXPECT_EQ((*found)[q][i].id, truth[i].id);
          EXPECT_NEAR((*found)[q][i].score, truth[i].score, 1e-5);
        }
      }
    }
  }
}

TEST(FilteredSearchTest, RemovedAndUnknownIdsNeverComeBack) {
  const std::vector<std::string> ids = Ids(2000);
  const std::vector<float> data = RandomUnitVectors(2000, kDim, 11);
  auto index = Build("HNSW16", 2, ids, data);
  absl::flat_hash_set<std::string> allowed = Pick(ids, 0.2, 9);
  std::vector<std::string> removed;
  for (const std::string& id : allowed) {
    if (removed.size() < allowed.size() / 2) removed.push_back(id);
  }
  ASSERT_TRUE(index->Remove(removed).ok());  // HNSW keeps them as tombstones
  allowed.insert("not-in-the-index");
  const absl::flat_hash_set<std::string> gone(removed.begin(), removed.end());
  for (const SearchFilter& filter : {Defaults(&allowed), SelectorOnly(&allowed)}) {
    auto found = index->Search(data.data(), 50, 10, &filter);
    ASSERT_TRUE(found.ok()) << found.status();
    for (const auto& hits : *found) {
      EXPECT_EQ(hits.size(), 10u);
      for (const IndexHit& hit : hits) {
        EXPECT_TRUE(allowed.contains(hit.id));
        EXPECT_FALSE(gone.contains(hit.id)) << hit.id << " was removed";
      }
    }
  }
}

TEST(FilteredSearchTest, TrainedIvfHonoursTheFilter) {
  const std::vector<std::string> ids = Ids(4000);
  const std::vector<float> data = RandomUnitVectors(4000, kDim, 12);
  IndexOptions options{kDim, 2, "IVF16,Flat"};
  options.train_min_vectors = 1000;
  auto created = ShardedIndex::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  auto& index = *created;
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  ASSERT_TRUE(index->trained());
  const absl::flat_hash_set<std::string> allowed = Pick(ids, 0.05, 13);
  const SearchFilter filter = Defaults(&allowed);
  const std::vector<float> queries = RandomUnitVectors(20, kDim, 14);
  auto found = index->Search(queries.data(), 20, 10, &filter);
  ASSERT_TRUE(found.ok()) << found.status();
  for (const auto& hits : *found) {
    EXPECT_EQ(hits.size(), 10u);
    for (const IndexHit& hit : hits) EXPECT_TRUE(allowed.contains(hit.id));
  }
}

TEST(FilteredSearchTest, EmptyAndNullFilters) {
  const std::vector<std::string> ids = Ids(100);
  const std::vector<float> data = RandomUnitVectors(100, kDim, 15);
  auto index = Build("Flat", 1, ids, data);
  const absl::flat_hash_set<std::string> none;
  const SearchFilter empty = Defaults(&none);
  auto found = index->Search(data.data(), 1, 10, &empty);
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE((*found)[0].empty());
  const SearchFilter null{};
  EXPECT_EQ(index->Search(data.data(), 1, 10, &null).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace retrace::index
