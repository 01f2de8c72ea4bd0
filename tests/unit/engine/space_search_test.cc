// PROVENANCE's candidates read from memory (core/engine/space_search.h, LocalSpaces): a
// collection whose indexes hold exact vectors re-ranks from them with no store round trip, and
// answers as the store path does. In process, on a real store (SQLite, and a PostgreSQL server
// the suite starts), with indexes built from it as a server builds them; no models (queries by
// stored item run none).
// - PROVENANCE and HYBRID, with and without a filter: the same hits (ids, order, scores bit for
//   bit, provenance and hybrid parts, captions, attributes) from the indexes as from the store.
// - The embeddings themselves: captions' exactly, and the image-space vector rebuilt from the
//   recovered e_enc, e_clip equal to the store's bit for bit (each part within 1 ulp).
// - An image index of compressed codes (SQ8, trained) falls back to the store: same answers.
// - Items deleted, or changed to fail the filter, between the index search and the read are
//   left out, and an updated one shows its new embeddings, as the store path does.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/engine/batchers.h"
#include "core/engine/collection_index.h"
#include "core/engine/image_space.h"
#include "core/engine/live_collection.h"
#include "core/engine/search.h"
#include "core/engine/space_search.h"
#include "core/store/postgres_item_store.h"
#include "core/store/sqlite_item_store.h"
#include "gtest/gtest.h"
#include "tests/support/postgres_server.h"
#include "tests/unit/index/index_test_util.h"

namespace retrace::engine {
namespace {

using ::retrace::index::testing::RandomUnitVectors;

constexpr int kClipDim = 16;
constexpr int kEncoderDim = 8;
constexpr int kItems = 300;

std::vector<float> Row(const std::vector<float>& rows, int i, int dim) {
  return std::vector<float>(rows.begin() + i * dim, rows.begin() + (i + 1) * dim);
}

// Items with random unit embeddings (seeded), attribute "group" = i mod 3.
std::vector<store::StoredItem> RandomItems(int first, int count, uint32_t seed) {
  const std::vector<float> clip = RandomUnitVectors(count, kClipDim, seed);
  const std::vector<float> text = RandomUnitVectors(count, kClipDim, seed + 1);
  const std::vector<float> features = RandomUnitVectors(count, kEncoderDim, seed + 2);
  std::vector<store::StoredItem> items;
  for (int i = 0; i < count; ++i) {
    store::StoredItem& item = items.emplace_back();
    item.id = absl::StrCat("item-", first + i);
    item.caption = absl::StrCat("caption of item ", first + i);
    item.attributes = {{"group", absl::StrCat((first + i) % 3)}};
    item.clip_image = Row(clip, i, kClipDim);
    item.caption_text = Row(text, i, kClipDim);
    item.image_features = Row(features, i, kEncoderDim);
  }
  return items;
}

class SpaceSearchTest
    : public testing::SharedPostgres<::testing::TestWithParam<std::string>> {
 protected:
  // Open: a store (the parameter's kind) holding collection "c" with kItems items, its image
  // space in `image_index`, and the indexes built from it.
  void Open(const std::string& image_index) {
    if (GetParam() == "sqlite") {
      const std::string dir = ::testing::TempDir() + "space_search_" +
                              ::testing::UnitTest::GetInstance()->current_test_info()->name();
      std::filesystem::remove_all(dir);
      auto sqlite = store::SqliteItemStore::Open(dir);
      ASSERT_TRUE(sqlite.ok()) << sqlite.status();
      store_ = std::move(*sqlite);
    } else {
      ASSERT_NE(postgres(), nullptr);
      store::PostgresItemStore::Options options;
      options.conninfo = postgres()->NewDatabase("space_search");
      auto pg = store::PostgresItemStore::Open(options);
      ASSERT_TRUE(pg.ok()) << pg.status();
      store_ = std::move(*pg);
    }
    store::CollectionRecord record;
    record.name = "c";
    record.shards = 3;
    record.caption_index = "Flat";
    record.image_index = image_index;
    record.caption_dim = kClipDim;
    record.image_dim = kClipDim + kEncoderDim;
    record.clip_model = "clip";
    record.captioner_model = "captioner";
    record.image_encoder_model = "encoder";
    ASSERT_TRUE(store_->CreateCollection(record).ok());
    auto state = store_->ReadState();
    ASSERT_TRUE(state.ok()) << state.status();
    record_ = state->collections.at(0);
    ASSERT_TRUE(store_->PutItems("c", RandomItems(0, kItems, 1)).ok());
    auto recovered = RecoverIndexes(*store_, record_, "");
    ASSERT_TRUE(recovered.ok()) << recovered.status();
    applied_ = recovered->applied;
    collection_ = std::make_unique<LiveCollection>(record_, std::move(*recovered));
    BatchingOptions batching;
    batching.enabled = false;  // no models: searches run on the caller's thread
    batchers_ = std::make_unique<Batchers>(nullptr, nullptr, nullptr, batching, nullptr);
    from_indexes_ = std::make_unique<LocalSpaces>(batchers_.get(), store_.get());
    from_store_ = std::make_unique<LocalSpaces>(batchers_.get(), store_.get(),
                                                LocalSpaces::EmbeddingSource::kStore);
  }

  absl::StatusOr<SearchResult> Search(SpaceSearcher* spaces, const SearchQuery& query) {
    Searcher searcher(Searcher::Options{}, batchers_.get(), spaces, store_.get());
    return searcher.Search(*collection_, query, CallOptions{});
  }

  // Apply: the store's changes since the indexes were built, applied to them.
  void Apply() {
    auto page = store_->ReadChanges("c", record_.created_position, {applied_, std::nullopt}, 1000);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_TRUE(ApplyChanges(*collection_->Indexes(), record_, page->changes).ok());
  }

  // Query: the stored item `id` as the query (its CLIP image embedding, image-space vector and
  // caption, so Q_t too), N = 60.
  static SearchQuery Query(SearchMode mode, const std::string& id) {
    SearchQuery query;
    query.kind = SearchQuery::Kind::kItem;
    query.item_id = id;
    query.mode = mode;
    query.top_k = 25;
    query.provenance.candidates = 60;
    return query;
  }

  std::unique_ptr<store::ItemStore> store_;
  store::CollectionRecord record_;
  int64_t applied_ = 0;
  std::unique_ptr<LiveCollection> collection_;
  std::unique_ptr<Batchers> batchers_;
  std::unique_ptr<LocalSpaces> from_indexes_, from_store_;
};

void ExpectSameHits(const SearchResult& got, const SearchResult& want) {
  ASSERT_EQ(got.hits.size(), want.hits.size());
  for (size_t i = 0; i < got.hits.size(); ++i) {
    const SearchHit& a = got.hits[i];
    const SearchHit& b = want.hits[i];
    SCOPED_TRACE(absl::StrCat("hit ", i, " ", b.id));
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.score, b.score);  // bit for bit: see EmbeddedHitsFromIndexes
    EXPECT_EQ(a.caption, b.caption);
    EXPECT_EQ(a.attributes, b.attributes);
    ASSERT_EQ(a.provenance.has_value(), b.provenance.has_value());
    if (a.provenance.has_value()) {
      EXPECT_EQ(a.provenance->base_score, b.provenance->base_score);
      EXPECT_EQ(a.provenance->caption_rank, b.provenance->caption_rank);
      EXPECT_EQ(a.provenance->image_rank, b.provenance->image_rank);
      EXPECT_EQ(a.provenance->score, b.provenance->score);
    }
    ASSERT_EQ(a.hybrid.has_value(), b.hybrid.has_value());
    if (a.hybrid.has_value()) {
      EXPECT_EQ(a.hybrid->caption_match_rank, b.hybrid->caption_match_rank);
      EXPECT_EQ(a.hybrid->caption_match_score, b.hybrid->caption_match_score);
      EXPECT_EQ(a.hybrid->provenance_rank, b.hybrid->provenance_rank);
    }
  }
}

TEST_P(SpaceSearchTest, ProvenanceAndHybridFromTheIndexesAnswerAsFromTheStore) {
  Open("Flat");
  // Flat indexes are read from memory (else both searchers below would read the store).
  auto some = collection_->Indexes()->images->Search(RandomUnitVectors(1, kClipDim + kEncoderDim, 5).data(), 1, 5);
  ASSERT_TRUE(some.ok()) << some.status();
  auto read = EmbeddedHitsFromIndexes(record_, *collection_->Indexes(), (*some)[0], std::nullopt);
  ASSERT_TRUE(read.ok() && read->has_value());
  for (SearchMode mode : {SearchMode::kProvenance, SearchMode::kHybrid}) {
    for (const char* id : {"item-0", "item-7", "item-123", "item-299"}) {
      for (bool filtered : {false, true}) {
        SCOPED_TRACE(absl::StrCat(static_cast<int>(mode), " ", id, filtered ? " filtered" : ""));
        SearchQuery query = Query(mode, id);
        if (filtered) query.filter = filter::Filter::Equals("group", "1");
        auto memory = Search(from_indexes_.get(), query);
        auto stored = Search(from_store_.get(), query);
        ASSERT_TRUE(memory.ok()) << memory.status();
        ASSERT_TRUE(stored.ok()) << stored.status();
        ASSERT_EQ(memory->hits.size(), 25u);
        ExpectSameHits(*memory, *stored);
        // Both re-ranking directions ran (Q_t is the query item's caption).
        if (mode == SearchMode::kProvenance) {
          ASSERT_TRUE(memory->hits[0].provenance.has_value());
          EXPECT_GE(memory->hits[0].provenance->caption_rank, 0);
          EXPECT_GE(memory->hits[0].provenance->image_rank, 0);
        }
      }
    }
  }
}

TEST_P(SpaceSearchTest, RecoveredEmbeddingsRebuildTheStoredImageSpaceVector) {
  Open("HNSW16");  // HNSW over flat storage reads back exactly too
  const std::vector<float> probe = RandomUnitVectors(1, kClipDim + kEncoderDim, 77);
  auto found = collection_->Indexes()->images->Search(probe.data(), 1, 100);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ((*found)[0].size(), 100u);
  auto memory = EmbeddedHitsFromIndexes(record_, *collection_->Indexes(), (*found)[0],
                                        std::nullopt);
  ASSERT_TRUE(memory.ok()) << memory.status();
  ASSERT_TRUE(memory->has_value()) << "HNSW16 should read from memory";
  auto stored = EmbeddedHitsFromStore(*store_, "c", (*found)[0], std::nullopt);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ((*memory)->size(), stored->size());
  int recovered_off_by_an_ulp = 0;  // components whose rounding lost their last bit
  for (size_t i = 0; i < stored->size(); ++i) {
    const ItemRecord& a = (**memory)[i].item;
    const ItemRecord& b = (*stored)[i].item;
    SCOPED_TRACE(b.id);
    for (size_t d = 0; d < b.clip_image.size(); ++d) {
      recovered_off_by_an_ulp += a.clip_image[d] != b.clip_image[d] ? 1 : 0;
    }
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ((**memory)[i].score, (*stored)[i].score);
    EXPECT_EQ(a.caption, b.caption);
    EXPECT_EQ(a.attributes, b.attributes);
    EXPECT_EQ(a.created_ms, b.created_ms);
    EXPECT_EQ(a.updated_ms, b.updated_ms);
    EXPECT_EQ(a.caption_text, b.caption_text);
    auto va = ImageSpaceVector(record_, a.image_features, a.clip_image);
    auto vb = ImageSpaceVector(record_, b.image_features, b.clip_image);
    ASSERT_TRUE(va.ok() && vb.ok());
    EXPECT_EQ(std::memcmp(va->data(), vb->data(), va->size() * sizeof(float)), 0);
    for (size_t d = 0; d < b.clip_image.size(); ++d) {
      EXPECT_LE(std::fabs(a.clip_image[d] - b.clip_image[d]),
                std::fabs(std::nextafter(b.clip_image[d], 2.f) - b.clip_image[d]));
    }
    for (size_t d = 0; d < b.image_features.size(); ++d) {
      EXPECT_LE(std::fabs(a.image_features[d] - b.image_features[d]),
                std::fabs(std::nextafter(b.image_features[d], 2.f) - b.image_features[d]));
    }
  }
  // The data exercises the lossy case: some components come back 1 ulp off, and yet the
  // image-space vectors above are the same bits.
  EXPECT_GT(recovered_off_by_an_ulp, 0);
}

TEST_P(SpaceSearchTest, CompressedImageIndexFallsBackToTheStore) {
  Open("Flat");
  // The image index replaced by a trained SQ8 one over the same vectors (a collection's own
  // trains at 9,984 items; 200 suffice to train one here).
  index::IndexOptions options = IndexOptionsFor(record_, Space::kImage);
  options.factory = "SQ8";
  options.train_min_vectors = 200;
  auto sq8 = index::ShardedIndex::Create(options);
  ASSERT_TRUE(sq8.ok()) << sq8.status();
  std::vector<std::string> ids;
  std::vector<float> vectors;
  for (const store::StoredItem& item : RandomItems(0, kItems, 1)) {
    ids.push_back(item.id);
    auto v = ImageSpaceVector(record_, item.image_features, item.clip_image);
    ASSERT_TRUE(v.ok());
    vectors.insert(vectors.end(), v->begin(), v->end());
  }
  ASSERT_TRUE((*sq8)->Add(ids, vectors.data(), ids.size()).ok());
  ASSERT_TRUE((*sq8)->trained());
  collection_->Indexes()->images = std::move(*sq8);

  const std::vector<float> probe = RandomUnitVectors(1, kClipDim + kEncoderDim, 78);
  auto found = collection_->Indexes()->images->Search(probe.data(), 1, 50);
  ASSERT_TRUE(found.ok()) << found.status();
  auto memory = EmbeddedHitsFromIndexes(record_, *collection_->Indexes(), (*found)[0],
                                        std::nullopt);
  ASSERT_TRUE(memory.ok()) << memory.status();
  EXPECT_FALSE(memory->has_value()) << "SQ8 must not be read back as if exact";
  for (SearchMode mode : {SearchMode::kProvenance, SearchMode::kHybrid}) {
    SCOPED_TRACE(static_cast<int>(mode));
    auto a = Search(from_indexes_.get(), Query(mode, "item-42"));
    auto b = Search(from_store_.get(), Query(mode, "item-42"));
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_FALSE(a->hits.empty());
    ExpectSameHits(*a, *b);
  }
}

TEST_P(SpaceSearchTest, ChangesBetweenTheSearchAndTheReadAreSeenAsByTheStorePath) {
  Open("Flat");
  const filter::Filter group1 = filter::Filter::Equals("group", "1");
  const std::vector<float> probe = RandomUnitVectors(1, kClipDim + kEncoderDim, 79);
  ItemTable::Matched matched = collection_->Indexes()->items->Match(group1);
  index::SearchFilter passing;
  passing.allowed = &matched.ids;
  auto searched = collection_->Indexes()->images->Search(probe.data(), 1, 40, &passing);
  ASSERT_TRUE(searched.ok()) << searched.status();
  const std::vector<index::IndexHit> found = (*searched)[0];
  ASSERT_EQ(found.size(), 40u);
  const std::string deleted = found[0].id, refiltered = found[1].id, updated = found[2].id;

  // Between the search and the read: one hit deleted, one moved out of group 1, one given new
  // embeddings; in the store, then applied to the indexes (as the follower would).
  ASSERT_TRUE(store_->DeleteItems("c", {deleted}).ok());
  const int refiltered_n = std::stoi(refiltered.substr(5));
  const int updated_n = std::stoi(updated.substr(5));
  std::vector<store::StoredItem> puts = {RandomItems(refiltered_n, 1, 1)[0],
                                         RandomItems(updated_n, 1, 500)[0]};
  puts[0].attributes["group"] = "2";
  const std::vector<float> new_caption_text = puts[1].caption_text;
  ASSERT_TRUE(store_->PutItems("c", puts).ok());
  Apply();

  auto memory = EmbeddedHitsFromIndexes(record_, *collection_->Indexes(), found, group1);
  ASSERT_TRUE(memory.ok()) << memory.status();
  ASSERT_TRUE(memory->has_value());
  auto stored = EmbeddedHitsFromStore(*store_, "c", found, group1);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ((*memory)->size(), found.size() - 2);
  ASSERT_EQ(stored->size(), found.size() - 2);
  for (size_t i = 0; i < stored->size(); ++i) {
    const ItemRecord& a = (**memory)[i].item;
    const ItemRecord& b = (*stored)[i].item;
    EXPECT_EQ(a.id, b.id);
    EXPECT_NE(a.id, deleted);
    EXPECT_NE(a.id, refiltered);
    EXPECT_EQ(a.caption_text, b.caption_text) << a.id;
    if (a.id == updated) {
      EXPECT_EQ(a.caption_text, new_caption_text);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, SpaceSearchTest, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace retrace::engine
