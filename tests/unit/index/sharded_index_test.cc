// Tests for retrace::index::ShardedIndex: exact merging across shards, stable placement,
// upsert/remove (Flat removes, HNSW tombstones), batching, input errors and concurrent use (the
// shard-search pool: serial answers under concurrency, no thread per call, a clean exit).
#include "core/index/sharded_index.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/thread_ids.h"
#include "tests/unit/index/index_test_util.h"

namespace retrace::index {
namespace {

using ::retrace::index::testing::BruteForce;
using ::retrace::index::testing::Dot;
using ::retrace::index::testing::Ids;
using ::retrace::index::testing::RandomUnitVectors;
using ::retrace::testing::ThreadIds;
using ::testing::HasSubstr;

std::unique_ptr<ShardedIndex> MustCreate(int dim, int shards, const std::string& factory) {
  absl::StatusOr<std::unique_ptr<ShardedIndex>> index =
      ShardedIndex::Create(IndexOptions{dim, shards, factory});
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? *std::move(index) : nullptr;
}

// Fnv1a64 is the test's own FNV-1a, written from the specification.
uint64_t Fnv1a64(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : bytes) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

class ExactnessTest : public ::testing::TestWithParam<int> {};

// 1,000 random unit vectors, dim 32: a Flat index with this many shards returns brute force's
// top k, for k small, typical and deeper than one shard's share.
TEST_P(ExactnessTest, FlatMatchesBruteForce) {
  constexpr int kDim = 32;
  constexpr size_t kItems = 1000;
  constexpr size_t kQueries = 50;
  const std::vector<std::string> ids = Ids(kItems);
  const std::vector<float> data = RandomUnitVectors(kItems, kDim, 7);
  const std::vector<float> queries = RandomUnitVectors(kQueries, kDim, 8);
  auto index = MustCreate(kDim, GetParam(), "Flat");
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->Add(ids, data.data(), kItems).ok());
  ASSERT_EQ(index->size(), kItems);

  for (int k : {1, 10, 300}) {
    auto results = index->Search(queries.data(), kQueries, k);
    ASSERT_TRUE(results.ok()) << results.status();
    ASSERT_EQ(results->size(), kQueries);
    for (size_t q = 0; q < kQueries; ++q) {
      const std::vector<IndexHit> expected = BruteForce(ids, data, &queries[q * kDim], kDim, k);
      const std::vector<IndexHit>& got = (*results)[q];
      ASSERT_EQ(got.size(), expected.size()) << "k " << k << " query " << q;
      for (size_t j = 0; j < expected.size(); ++j) {
        ASSERT_EQ(got[j].id, expected[j].id) << "k " << k << " query " << q << " rank " << j;
        ASSERT_NEAR(got[j].score, expected[j].score, 1e-5) << "k " << k << " query " << q;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shards, ExactnessTest, ::testing::Values(1, 4, 7));

TEST(ShardedIndexTest, EqualScoresRankByIdAcrossShards) {
  constexpr int kDim = 8;
  const std::vector<float> same = RandomUnitVectors(1, kDim, 9);
  const std::vector<std::string> tied = {"t5", "t3", "t1", "t4", "t2", "t0"};
  std::vector<float> data;
  for (size_t i = 0; i < tied.size(); ++i) data.insert(data.end(), same.begin(), same.end());
  auto index = MustCreate(kDim, 4, "Flat");
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->Add(tied, data.data(), tied.size()).ok());
  const std::vector<float> others = RandomUnitVectors(50, kDim, 10);
  ASSERT_TRUE(index->Add(Ids(50), others.data(), 50).ok());

  auto results = index->Search(same.data(), 1, 6);
  ASSERT_TRUE(results.ok()) << results.status();
  std::vector<std::string> got;
  for (const IndexHit& hit : (*results)[0]) got.push_back(hit.id);
  EXPECT_THAT(got, ::testing::ElementsAre("t0", "t1", "t2", "t3", "t4", "t5"));
}

TEST(ShardedIndexTest, ShardOfIsFnv1aModShards) {
  // Published FNV-1a 64 test vectors pin the test's own hash...
  ASSERT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  ASSERT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  ASSERT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ull);
  // ...and the literal values pin the placement rule.
  EXPECT_EQ(ShardedIndex::ShardOf("a", 7), 0xaf63dc4c8601ec8cull % 7);
  EXPECT_EQ(ShardedIndex::ShardOf("foobar", 256), 0x85944171f73967e8ull % 256);
  EXPECT_EQ(ShardedIndex::ShardOf("foobar", 3), 0x85944171f73967e8ull % 3);
  EXPECT_EQ(ShardedIndex::ShardOf("", 5), 0xcbf29ce484222325ull % 5);
  EXPECT_EQ(ShardedIndex::ShardOf("anything", 1), 0u);
  for (const std::string& id : Ids(500, "img/")) {
    for (int shards : {2, 3, 8, 13, 256}) {
      ASSERT_EQ(ShardedIndex::ShardOf(id, shards), Fnv1a64(id) % shards) << id << " " << shards;
    }
  }
}

TEST(ShardedIndexTest, ShardOfSpreadsOverAllShards) {
  constexpr int kShards = 8;
  std::vector<int> counts(kShards, 0);
  for (const std::string& id : Ids(1000)) ++counts[ShardedIndex::ShardOf(id, kShards)];
  for (int s = 0; s < kShards; ++s) {
    EXPECT_GT(counts[s], 1000 / kShards / 2) << "shard " << s;
    EXPECT_LT(counts[s], 1000 / kShards * 2) << "shard " << s;
  }
}

class FactoryTest : public ::testing::TestWithParam<const char*> {
 protected:
  static constexpr int kDim = 16;
  std::unique_ptr<ShardedIndex> Make(int shards = 3) {
    return MustCreate(kDim, shards, GetParam());
  }
};

TEST_P(FactoryTest, UpsertReplacesVector) {
  auto index = Make();
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> ids = Ids(200);
  const std::vector<float> data = RandomUnitVectors(200, kDim, 11);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());

  const std::vector<float> fresh = RandomUnitVectors(1, kDim, 12);
  ASSERT_TRUE(index->Add({"item-7"}, fresh.data(), 1).ok());
  EXPECT_EQ(index->size(), 200u);

  auto top = index->Search(fresh.data(), 1, 1);
  ASSERT_TRUE(top.ok()) << top.status();
  ASSERT_EQ((*top)[0].size(), 1u);
  EXPECT_EQ((*top)[0][0].id, "item-7");
  EXPECT_NEAR((*top)[0][0].score, 1.0f, 1e-5);

  // Searched with its old vector, item-7 now scores as the new vector does, once.
  auto all = index->Search(&data[7 * kDim], 1, 200);
  ASSERT_TRUE(all.ok()) << all.status();
  int seen = 0;
  for (const IndexHit& hit : (*all)[0]) {
    if (hit.id != "item-7") continue;
    ++seen;
    EXPECT_NEAR(hit.score, Dot(&data[7 * kDim], fresh.data(), kDim), 1e-5);
  }
  EXPECT_EQ(seen, 1);
}

TEST_P(FactoryTest, RemovedIdsNeverAppear) {
  auto index = Make();
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> ids = Ids(300);
  const std::vector<float> data = RandomUnitVectors(300, kDim, 21);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());

  std::vector<std::string> doomed = {"absent-1"};
  for (size_t i = 0; i < ids.size(); i += 2) doomed.push_back(ids[i]);
  doomed.push_back("item-0");  // repeated: counted once
  auto removed = index->Remove(doomed);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 150u);
  EXPECT_EQ(index->size(), 150u);
  EXPECT_FALSE(index->Contains("item-0"));
  EXPECT_TRUE(index->Contains("item-1"));
  auto again = index->Remove({"item-0"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);

  const absl::flat_hash_set<std::string> gone(doomed.begin(), doomed.end());
  const int k = static_cast<int>(index->size());
  auto results = index->Search(data.data(), 20, k);  // the removed items' own vectors among them
  ASSERT_TRUE(results.ok()) << results.status();
  for (const std::vector<IndexHit>& hits : *results) {
    if (std::string(GetParam()) == "Flat") {
      EXPECT_EQ(hits.size(), index->size());
    } else {  // HNSW's graph search may not reach every node, even with k = size
      EXPECT_LE(hits.size(), index->size());
      EXPECT_GE(hits.size(), index->size() * 9 / 10);
    }
    absl::flat_hash_set<std::string> distinct;
    for (const IndexHit& hit : hits) {
      EXPECT_FALSE(gone.contains(hit.id)) << hit.id;
      EXPECT_TRUE(distinct.insert(hit.id).second) << "twice: " << hit.id;
    }
  }
}

// With k = 1 the best FAISS hit for an old vector is its own tombstone (in HNSW): the shard must
// fetch past it rather than return nothing.
TEST_P(FactoryTest, TombstonesDoNotCrowdOutHits) {
  auto index = Make(2);
  ASSERT_NE(index, nullptr);
  std::vector<std::string> ids = Ids(100);
  std::vector<float> data = RandomUnitVectors(100, kDim, 25);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  const std::vector<float> old(data.begin(), data.begin() + 20 * kDim);
  const std::vector<float> fresh = RandomUnitVectors(10, kDim, 26);
  ASSERT_TRUE(index->Add(Ids(10), fresh.data(), 10).ok());
  std::copy(fresh.begin(), fresh.end(), data.begin());
  ASSERT_EQ(*index->Remove(std::vector<std::string>(ids.begin() + 10, ids.begin() + 20)), 10u);
  ids.erase(ids.begin() + 10, ids.begin() + 20);
  data.erase(data.begin() + 10 * kDim, data.begin() + 20 * kDim);

  for (int k : {1, 3}) {
    auto results = index->Search(old.data(), 20, k);
    ASSERT_TRUE(results.ok()) << results.status();
    for (size_t q = 0; q < 20; ++q) {
      const std::vector<IndexHit> expected = BruteForce(ids, data, &old[q * kDim], kDim, k);
      const std::vector<IndexHit>& got = (*results)[q];
      ASSERT_EQ(got.size(), static_cast<size_t>(k)) << "query " << q;
      for (int j = 0; j < k; ++j) {
        EXPECT_EQ(got[j].id, expected[j].id) << "query " << q << " rank " << j;
        EXPECT_NEAR(got[j].score, expected[j].score, 1e-5) << "query " << q << " rank " << j;
      }
    }
  }
}

TEST_P(FactoryTest, RemovedIdCanBeAddedAgain) {
  auto index = Make();
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> ids = Ids(50);
  const std::vector<float> data = RandomUnitVectors(50, kDim, 31);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  ASSERT_EQ(*index->Remove({"item-3"}), 1u);
  ASSERT_FALSE(index->Contains("item-3"));

  const std::vector<float> back = RandomUnitVectors(1, kDim, 32);
  ASSERT_TRUE(index->Add({"item-3"}, back.data(), 1).ok());
  EXPECT_TRUE(index->Contains("item-3"));
  EXPECT_EQ(index->size(), 50u);
  auto top = index->Search(back.data(), 1, 1);
  ASSERT_TRUE(top.ok());
  ASSERT_EQ((*top)[0].size(), 1u);
  EXPECT_EQ((*top)[0][0].id, "item-3");
}

TEST_P(FactoryTest, KBeyondSizeReturnsEverything) {
  auto index = Make();
  ASSERT_NE(index, nullptr);
  const std::vector<float> queries = RandomUnitVectors(2, kDim, 41);
  auto empty = index->Search(queries.data(), 2, 10);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE((*empty)[0].empty());

  const std::vector<std::string> ids = Ids(5);
  const std::vector<float> data = RandomUnitVectors(5, kDim, 42);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  auto results = index->Search(queries.data(), 2, 100);
  ASSERT_TRUE(results.ok());
  for (const std::vector<IndexHit>& hits : *results) {
    ASSERT_EQ(hits.size(), 5u);
    for (size_t j = 1; j < hits.size(); ++j) EXPECT_GE(hits[j - 1].score, hits[j].score);
  }
}

TEST_P(FactoryTest, BatchEqualsSingleQueries) {
  auto index = Make(4);
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> ids = Ids(400);
  const std::vector<float> data = RandomUnitVectors(400, kDim, 51);
  ASSERT_TRUE(index->Add(ids, data.data(), ids.size()).ok());
  constexpr size_t kQueries = 16;
  const std::vector<float> queries = RandomUnitVectors(kQueries, kDim, 52);
  auto batch = index->Search(queries.data(), kQueries, 7);
  ASSERT_TRUE(batch.ok());
  for (size_t q = 0; q < kQueries; ++q) {
    auto single = index->Search(&queries[q * kDim], 1, 7);
    ASSERT_TRUE(single.ok());
    ASSERT_EQ((*single)[0].size(), (*batch)[q].size()) << "query " << q;
    for (size_t j = 0; j < (*batch)[q].size(); ++j) {
      EXPECT_EQ((*single)[0][j].id, (*batch)[q][j].id) << "query " << q << " rank " << j;
      EXPECT_NEAR((*single)[0][j].score, (*batch)[q][j].score, 1e-6);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Factories, FactoryTest, ::testing::Values("Flat", "HNSW32", "HNSW16,Flat"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name.erase(std::remove(name.begin(), name.end(), ','), name.end());
                           return name;
                         });

void ExpectInvalid(const absl::Status& status, const std::string& needle) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(needle));
}

TEST(ShardedIndexErrorsTest, CreateRejectsBadOptions) {
  ExpectInvalid(ShardedIndex::Create(IndexOptions{0, 1, "Flat"}).status(), "dim");
  ExpectInvalid(ShardedIndex::Create(IndexOptions{65537, 1, "Flat"}).status(), "dim");
  ExpectInvalid(ShardedIndex::Create(IndexOptions{8, 0, "Flat"}).status(), "shards");
  ExpectInvalid(ShardedIndex::Create(IndexOptions{8, 1000, "Flat"}).status(), "shards");
  ExpectInvalid(ShardedIndex::Create(IndexOptions{8, 1, "NotAnIndex"}).status(),
                "factory 'NotAnIndex'");
  ExpectInvalid(ShardedIndex::Create(IndexOptions{8, 1, "Flat", -1}).status(), "train_min_vectors");
  ExpectInvalid(ShardedIndex::Create(IndexOptions{8, 1, "Flat", 0, -1}).status(), "nprobe");
  // IVF16 cannot train on fewer than 16 vectors; PQ with 8-bit codes on fewer than 256.
  ExpectInvalid(ShardedIndex::Create(IndexOptions{8, 2, "IVF16,Flat", 15}).status(),
                "train_min_vectors must be at least 16");
  ExpectInvalid(ShardedIndex::Create(IndexOptions{8, 2, "IVF16,PQ4", 100}).status(),
                "train_min_vectors must be at least 256");
  ExpectInvalid(ShardedIndex::Create(IndexOptions{8, 2, "LSH"}).status(), "factory 'LSH'");
  EXPECT_TRUE(ShardedIndex::Create(IndexOptions{8, 2, "IVF16,Flat"}).ok());
  ExpectInvalid(ShardedIndex::Create(IndexOptions{8, 2, "IDMap,Flat"}).status(), "IDMap");
  EXPECT_TRUE(ShardedIndex::Create(IndexOptions{8, 2, "HNSW32,Flat"}).ok());
  EXPECT_TRUE(ShardedIndex::Create(IndexOptions{8, 256, "Flat"}).ok());
}

TEST(ShardedIndexErrorsTest, AddRejectsBadItemsAndChangesNothing) {
  auto index = MustCreate(4, 2, "Flat");
  ASSERT_NE(index, nullptr);
  std::vector<float> data = RandomUnitVectors(3, 4, 61);

  ExpectInvalid(index->Add({"a", "b", "a"}, data.data(), 3), "'a'");
  ExpectInvalid(index->Add({"a", "b", "a"}, data.data(), 3), "ids[2]");
  ExpectInvalid(index->Add({"a", "b", "a"}, data.data(), 3), "ids[0]");
  ExpectInvalid(index->Add({"a", "b"}, data.data(), 3), "n is 3");
  ExpectInvalid(index->Add({"a", "", "c"}, data.data(), 3), "ids[1] is empty");
  ExpectInvalid(index->Add({"a"}, nullptr, 1), "vectors is null");

  data[1 * 4 + 2] = std::numeric_limits<float>::quiet_NaN();
  ExpectInvalid(index->Add({"a", "b", "c"}, data.data(), 3), "row 1 (id 'b')");
  data[1 * 4 + 2] = 0.5f;
  data[2 * 4 + 0] = std::numeric_limits<float>::infinity();
  ExpectInvalid(index->Add({"a", "b", "c"}, data.data(), 3), "id 'c'");
  EXPECT_EQ(index->size(), 0u);
  EXPECT_FALSE(index->Contains("a"));
}

TEST(ShardedIndexErrorsTest, SearchRejectsBadArguments) {
  auto index = MustCreate(4, 2, "Flat");
  ASSERT_NE(index, nullptr);
  std::vector<float> query = RandomUnitVectors(2, 4, 71);
  ExpectInvalid(index->Search(query.data(), 1, 0).status(), "k must be");
  ExpectInvalid(index->Search(query.data(), 1, ShardedIndex::kMaxK + 1).status(), "k must be");
  ExpectInvalid(index->Search(nullptr, 1, 5).status(), "queries is null");
  ExpectInvalid(index->Search(query.data(), ShardedIndex::kMaxQueries + 1, 5).status(), "n must");
  ExpectInvalid(index->Search(query.data(), 200, ShardedIndex::kMaxK).status(), "n * k");
  query[4 + 3] = std::numeric_limits<float>::quiet_NaN();
  ExpectInvalid(index->Search(query.data(), 2, 5).status(), "queries row 1");
}

// Readers search for items no writer touches while a writer churns other ids; every reader must
// find its item first, with score 1, at every moment.
TEST(ShardedIndexConcurrencyTest, SearchesWhileWriting) {
  constexpr int kDim = 16;
  constexpr size_t kStable = 64;
  auto index = MustCreate(kDim, 4, "Flat");
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> stable_ids = Ids(kStable, "stable-");
  const std::vector<float> stable = RandomUnitVectors(kStable, kDim, 81);
  ASSERT_TRUE(index->Add(stable_ids, stable.data(), kStable).ok());

  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::atomic<int> searches{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      size_t q = static_cast<size_t>(r);
      while (writing.load() || searches.load() < 300) {
        q = (q + 7) % kStable;
        auto hits = index->Search(&stable[q * kDim], 1, 5);
        if (!hits.ok() || (*hits)[0].empty() || (*hits)[0][0].id != stable_ids[q] ||
            std::fabs((*hits)[0][0].score - 1.0f) > 1e-4 || !index->Contains(stable_ids[q])) {
          failures.fetch_add(1);
        }
        searches.fetch_add(1);
      }
    });
  }
  for (uint32_t round = 0; round < 150; ++round) {
    const std::vector<std::string> churn = Ids(20, absl::StrCat("churn-", round % 10, "-"));
    const std::vector<float> vectors = RandomUnitVectors(churn.size(), kDim, 1000 + round);
    if (!index->Add(churn, vectors.data(), churn.size()).ok()) failures.fetch_add(1);
    if (!index->Remove({churn.begin(), churn.begin() + 10}).ok()) failures.fetch_add(1);
  }
  writing.store(false);
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(searches.load(), 300);
  EXPECT_EQ(index->size(), kStable + 10 * 10);
}

// OrthantVectors returns n unit rows of `dim` whose components all have `sign`'s sign, so any two
// rows of the same sign have a positive inner product and rows of opposite signs a negative one.
std::vector<float> OrthantVectors(size_t n, int dim, uint32_t seed, float sign) {
  std::vector<float> rows = RandomUnitVectors(n, dim, seed);
  for (float& x : rows) x = sign * std::fabs(x);
  return rows;
}

// SameHits reports whether two searches' answers are identical: ids, order and scores, bit for
// bit (every shard search is deterministic, and the merge does not depend on the order shards
// finish in).
bool SameHits(const std::vector<std::vector<IndexHit>>& a,
              const std::vector<std::vector<IndexHit>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t q = 0; q < a.size(); ++q) {
    if (a[q].size() != b[q].size()) return false;
    for (size_t j = 0; j < a[q].size(); ++j) {
      if (a[q][j].id != b[q][j].id || a[q][j].score != b[q][j].score) return false;
    }
  }
  return true;
}

// Four threads search an 8-shard Flat index at once, single queries and batches of 3, with and
// without a filter, while a writer adds and removes other items; every answer must equal the one
// the same search gave before, on one thread. The stable items and the queries lie in the
// positive orthant and the writer's items in the negative one, so the writer's items always score
// below every stable item and never belong in a top 10 (the filter allows some of them anyway).
TEST(ShardedIndexConcurrencyTest, ConcurrentSearchesGiveTheSerialAnswers) {
  constexpr int kDim = 16;
  constexpr size_t kStable = 2000;
  constexpr size_t kQueries = 48;
  constexpr size_t kBatch = 3;
  constexpr int kK = 10;
  auto index = MustCreate(kDim, 8, "Flat");
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> stable_ids = Ids(kStable, "stable-");
  const std::vector<float> stable = OrthantVectors(kStable, kDim, 91, 1.0f);
  ASSERT_TRUE(index->Add(stable_ids, stable.data(), kStable).ok());
  const std::vector<float> queries = OrthantVectors(kQueries, kDim, 92, 1.0f);
  absl::flat_hash_set<std::string> allowed;
  for (size_t i = 0; i < kStable; i += 3) allowed.insert(stable_ids[i]);
  for (size_t i = 0; i < 20; i += 2) allowed.insert(absl::StrCat("churn-", i % 10, "-", i));
  const SearchFilter filter{&allowed};

  // serial[f][q]: the answer to the batch starting at query q, filtered when f is 1.
  std::vector<std::vector<std::vector<std::vector<IndexHit>>>> serial(2);
  for (int f = 0; f < 2; ++f) {
    for (size_t q = 0; q + kBatch <= kQueries; ++q) {
      auto hits = index->Search(&queries[q * kDim], kBatch, kK, f == 1 ? &filter : nullptr);
      ASSERT_TRUE(hits.ok()) << hits.status();
      ASSERT_EQ((*hits)[0].size(), static_cast<size_t>(kK));
      serial[f].push_back(*std::move(hits));
    }
  }

  std::atomic<bool> writing{true};
  std::atomic<int> mismatches{0};
  std::atomic<int> searches{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&, r] {
      for (size_t round = 0; writing.load(); ++round) {
        const size_t q = (round * 7 + static_cast<size_t>(r) * 11) % serial[0].size();
        const int f = static_cast<int>((round + static_cast<size_t>(r)) % 2);
        const size_t n = round % 2 == 0 ? 1 : kBatch;
        auto hits = index->Search(&queries[q * kDim], n, kK, f == 1 ? &filter : nullptr);
        const std::vector<std::vector<IndexHit>> expected(serial[f][q].begin(),
                                                          serial[f][q].begin() + n);
        if (!hits.ok() || !SameHits(*hits, expected)) mismatches.fetch_add(1);
        searches.fetch_add(1);
      }
    });
  }
  int write_failures = 0;
  // The writer goes on until the readers have searched 400 times, all while it writes.
  for (uint32_t round = 0; round < 100 || searches.load() < 400; ++round) {
    const std::vector<std::string> churn = Ids(20, absl::StrCat("churn-", round % 10, "-"));
    const std::vector<float> vectors = OrthantVectors(churn.size(), kDim, 2000 + round, -1.0f);
    if (!index->Add(churn, vectors.data(), churn.size()).ok()) ++write_failures;
    if (!index->Remove({churn.begin(), churn.begin() + 10}).ok()) ++write_failures;
  }
  writing.store(false);
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(write_failures, 0);
  EXPECT_EQ(mismatches.load(), 0) << "of " << searches.load() << " searches";
  EXPECT_GE(searches.load(), 400);
  EXPECT_EQ(index->size(), kStable + 10 * 10);
}

// 1,000 searches over 4 shards, filtered and not, start no thread: a sampler that lists the
// process's threads throughout sees none outside the set alive before, and that set is the same
// after. (A thread per call, as std::async was, shows up in the sampler's lists.)
TEST(ShardedIndexConcurrencyTest, SearchesStartNoThreadPerCall) {
  constexpr int kDim = 16;
  constexpr size_t kItems = 400;
  auto index = MustCreate(kDim, 4, "Flat");
  ASSERT_NE(index, nullptr);
  const std::vector<std::string> ids = Ids(kItems);
  const std::vector<float> data = RandomUnitVectors(kItems, kDim, 95);
  ASSERT_TRUE(index->Add(ids, data.data(), kItems).ok());
  const absl::flat_hash_set<std::string> allowed(ids.begin(), ids.begin() + kItems / 2);
  const SearchFilter filter{&allowed};
  ASSERT_TRUE(index->Search(data.data(), 1, 5).ok());  // the first search starts the pool

  std::atomic<bool> searching{true};
  std::set<int> seen;
  std::atomic<bool> sampler_started{false};
  std::thread sampler([&] {
    sampler_started.store(true);
    while (searching.load()) {
      const std::set<int> now = ThreadIds();
      seen.insert(now.begin(), now.end());
    }
  });
  while (!sampler_started.load()) std::this_thread::yield();
  const std::set<int> before = ThreadIds();
  ASSERT_FALSE(before.empty());
  int failures = 0;
  for (size_t call = 0; call < 1000; ++call) {
    const float* query = &data[(call % kItems) * kDim];
    auto hits = index->Search(query, 1, 5, call % 2 == 0 ? nullptr : &filter);
    if (!hits.ok() || (*hits)[0].empty()) ++failures;
  }
  searching.store(false);
  sampler.join();
  EXPECT_EQ(failures, 0);
  std::set<int> after = ThreadIds();
  EXPECT_EQ(after.size() + 1, before.size());  // all but the sampler
  std::set<int> appeared;
  for (int id : seen) {
    if (!before.count(id)) appeared.insert(id);
  }
  EXPECT_TRUE(appeared.empty()) << appeared.size() << " threads appeared during the searches";
}

// A process that has searched several shards, so holds the idle shard-search pool, exits cleanly:
// exit() destroys the pool, which joins its threads.
TEST(ShardedIndexConcurrencyTest, ExitWithAnIdlePoolIsClean) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        auto index = MustCreate(8, 4, "Flat");
        const std::vector<float> data = RandomUnitVectors(100, 8, 96);
        if (index == nullptr || !index->Add(Ids(100), data.data(), 100).ok()) std::exit(2);
        auto hits = index->Search(data.data(), 1, 5);
        if (!hits.ok() || (*hits)[0].size() != 5) std::exit(3);
        std::fprintf(stderr, "searched 4 shards\n");
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "searched 4 shards");
}

}  // namespace
}  // namespace retrace::index
