// Engine::List's scan budget (engine.h, List): with a filter, one call reads at most
// max(kListFilterScanPages x page_size, kListFilterMinScan) stored items, so a selective filter
// gives short or empty pages that still carry a cursor, and paging on gives every matching item
// once; only an empty next_cursor marks the end. Without a filter a page is one store read.
//
// The engine runs in process on the demo models and a real SQLite store. The tens of thousands
// of items these tests need are written straight to that store (the engine reads it; through the
// models they would take minutes), and the store is wrapped to count what List reads from it.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/engine/defaults.h"
#include "core/engine/engine.h"
#include "core/filter/filter.h"
#include "core/store/sqlite_item_store.h"
#include "gtest/gtest.h"
#include "server/logging.h"
#include "server/model_folder.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace::engine {
namespace {

// ReadCountingStore forwards every call to the store it wraps, and counts the ListItems calls
// and the items they returned.
class ReadCountingStore final : public store::ItemStore {
 public:
  explicit ReadCountingStore(std::unique_ptr<store::ItemStore> inner) : inner_(std::move(inner)) {}

  // TakeListReads: the ListItems calls and the items they returned since the last take.
  std::pair<int64_t, int64_t> TakeListReads() { return {calls_.exchange(0), items_.exchange(0)}; }

  absl::StatusOr<std::vector<store::StoredItem>> ListItems(const std::string& collection,
                                                           const std::string& after, int limit,
                                                           bool embeddings) const override {
    auto listed = inner_->ListItems(collection, after, limit, embeddings);
    ++calls_;
    if (listed.ok()) items_ += static_cast<int64_t>(listed->size());
    return listed;
  }

  std::string Describe() const override { return inner_->Describe(); }
  absl::StatusOr<int64_t> CreateCollection(const store::CollectionRecord& record) override {
    return inner_->CreateCollection(record);
  }
  absl::StatusOr<int64_t> DropCollection(const std::string& name) override {
    return inner_->DropCollection(name);
  }
  absl::StatusOr<store::StoreState> ReadState() const override { return inner_->ReadState(); }
  absl::StatusOr<int64_t> PutItems(const std::string& collection,
                                   std::vector<store::StoredItem> items) override {
    return inner_->PutItems(collection, std::move(items));
  }
  absl::StatusOr<store::PutResult> PutItemsChecked(
      const std::string& collection, std::vector<store::StoredItem> items,
      const store::ReplaceCheck& may_replace) override {
    return inner_->PutItemsChecked(collection, std::move(items), may_replace);
  }
  absl::StatusOr<std::vector<std::optional<store::StoredItem>>> GetItems(
      const std::string& collection, const std::vector<std::string>& ids) const override {
    return inner_->GetItems(collection, ids);
  }
  absl::StatusOr<std::vector<std::optional<store::StoredItem>>> GetItemsWithoutEmbeddings(
      const std::string& collection, const std::vector<std::string>& ids) const override {
    return inner_->GetItemsWithoutEmbeddings(collection, ids);
  }
  absl::StatusOr<std::vector<std::optional<store::ItemVersion>>> GetItemVersions(
      const std::string& collection, const std::vector<std::string>& ids) const override {
    return inner_->GetItemVersions(collection, ids);
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> GetThumbnails(
      const std::string& collection, const std::vector<std::string>& ids) const override {
    return inner_->GetThumbnails(collection, ids);
  }
  absl::StatusOr<store::DeleteResult> DeleteItems(const std::string& collection,
                                                  const std::vector<std::string>& ids) override {
    return inner_->DeleteItems(collection, ids);
  }
  absl::StatusOr<int64_t> CountItems(const std::string& collection) const override {
    return inner_->CountItems(collection);
  }
  absl::Status ForEachItem(
      const std::string& collection,
      const std::function<absl::Status(const store::StoredItem&)>& visit) const override {
    return inner_->ForEachItem(collection, visit);
  }
  absl::StatusOr<int64_t> LastPosition() const override { return inner_->LastPosition(); }
  absl::StatusOr<store::ChangePage> ReadChanges(const std::string& collection,
                                                int64_t created_position,
                                                const store::ChangeCursor& cursor,
                                                int limit) const override {
    return inner_->ReadChanges(collection, created_position, cursor, limit);
  }
  absl::StatusOr<int64_t> WaitForChange(int64_t after, absl::Duration timeout) const override {
    return inner_->WaitForChange(after, timeout);
  }
  absl::Status CompactDeletions(const std::string& collection, int64_t up_to) override {
    return inner_->CompactDeletions(collection, up_to);
  }
  absl::StatusOr<std::vector<store::CaptionMatch>> SearchCaptions(
      const std::string& collection, const std::vector<std::string>& terms,
      int limit) const override {
    return inner_->SearchCaptions(collection, terms, limit);
  }
  absl::Status ReportReplica(const store::ReplicaRecord& replica) override {
    return inner_->ReportReplica(replica);
  }
  absl::StatusOr<std::vector<store::ReplicaRecord>> ListReplicas() const override {
    return inner_->ListReplicas();
  }
  absl::Status ForgetReplica(const std::string& replica) override {
    return inner_->ForgetReplica(replica);
  }

 private:
  std::unique_ptr<store::ItemStore> inner_;
  mutable std::atomic<int64_t> calls_{0};
  mutable std::atomic<int64_t> items_{0};
};

// Page: what one List call gave, and what it read from the store.
struct Page {
  std::vector<std::string> ids;
  bool has_cursor = false;
  int64_t store_reads = 0;  // ListItems calls
  int64_t items_read = 0;   // stored items those returned
};

class EngineListTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RETRACE_REQUIRE_DEMO_MODELS();
    const std::string dir = testing::NewTempDir("engine-list");
    auto models = server::LoadModelSet(testing::FixtureDir() + "/demo");
    ASSERT_TRUE(models.ok()) << models.status();
    auto sqlite = store::SqliteItemStore::Open(dir + "/data");
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    auto counting = std::make_unique<ReadCountingStore>(std::move(*sqlite));
    store_ = counting.get();
    EngineOptions options;
    options.snapshot_dir = dir + "/snapshots";
    options.snapshot_interval_seconds = -1;  // only when asked
    options.replication.replica_id = "r1";
    auto engine = Engine::Open(
        std::move(options), std::move(*models), std::move(counting),
        server::MakeServerLoggers(server::LogFormat::kText, spdlog::level::warn).events);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);

    // One item through the models, in a collection of its own, for embeddings of the sizes
    // every collection of these models has.
    ASSERT_TRUE(engine_->CreateCollection({"models"}).ok());
    IndexItem item;
    item.id = "x";
    item.image = testing::NoiseImage(32, 32, 1, ".png");
    item.caption = "noise";
    auto written = engine_->Index("models", {item});
    ASSERT_TRUE(written.ok()) << written.status();
    ASSERT_TRUE(written->items[0].status.ok()) << written->items[0].status;
    auto stored = engine_->Get("models", {"x"}, GetFields{/*embeddings=*/true});
    ASSERT_TRUE(stored.ok() && (*stored)[0].status.ok());
    embedded_.clip_image = (*stored)[0].item.clip_image;
    embedded_.caption_text = (*stored)[0].item.caption_text;
    embedded_.image_features = (*stored)[0].item.image_features;
  }

  // Budget: the most stored items a filtered List of `page_size` reads in one call.
  static int Budget(int page_size) {
    return std::max(defaults::kListFilterScanPages * page_size, defaults::kListFilterMinScan);
  }

  // Id: the i-th item's id; ids sort (bytewise) as their numbers do.
  static std::string Id(int i) { return absl::StrFormat("item-%06d", i); }

  static std::vector<std::string> Ids(const std::vector<int>& numbers) {
    std::vector<std::string> ids;
    for (int i : numbers) ids.push_back(Id(i));
    return ids;
  }

  static filter::Filter Picked() { return filter::Filter::Equals("pick", "yes"); }

  // Fill creates `collection` and stores items Id(0)..Id(count - 1) straight to the store; those
  // in `picked` get the attribute pick=yes, the others pick=no.
  void Fill(const std::string& collection, int count, const std::set<int>& picked) {
    ASSERT_TRUE(engine_->CreateCollection({collection}).ok());
    constexpr int kBatch = 1000;
    for (int first = 0; first < count; first += kBatch) {
      std::vector<store::StoredItem> batch;
      for (int i = first; i < std::min(count, first + kBatch); ++i) {
        store::StoredItem item = embedded_;
        item.id = Id(i);
        item.attributes = {{"pick", picked.count(i) > 0 ? "yes" : "no"}};
        item.content_hash = static_cast<uint64_t>(i);
        batch.push_back(std::move(item));
      }
      auto written = store_->PutItems(collection, std::move(batch));
      ASSERT_TRUE(written.ok()) << written.status();
    }
  }

  // ListAll pages through `collection` from the first item until a page comes without a cursor
  // (or `max_pages`), and returns every page.
  std::vector<Page> ListAll(const std::string& collection, int page_size,
                            const std::optional<filter::Filter>& f, int max_pages = 1000) {
    std::vector<Page> pages;
    std::string cursor;
    store_->TakeListReads();
    do {
      auto listed = engine_->List(collection, cursor, page_size, GetFields{}, f);
      EXPECT_TRUE(listed.ok()) << listed.status();
      if (!listed.ok()) break;
      Page page;
      for (const ItemRecord& item : listed->items) page.ids.push_back(item.id);
      page.has_cursor = !listed->next_cursor.empty();
      std::tie(page.store_reads, page.items_read) = store_->TakeListReads();
      pages.push_back(std::move(page));
      cursor = listed->next_cursor;
    } while (!cursor.empty() && static_cast<int>(pages.size()) < max_pages);
    return pages;
  }

  std::unique_ptr<Engine> engine_;
  ReadCountingStore* store_ = nullptr;  // owned by engine_
  store::StoredItem embedded_;          // real embeddings, copied into every stored item
};

// Concatenated: every page's ids, in order.
std::vector<std::string> Concatenated(const std::vector<Page>& pages) {
  std::vector<std::string> ids;
  for (const Page& page : pages) ids.insert(ids.end(), page.ids.begin(), page.ids.end());
  return ids;
}

TEST_F(EngineListTest, ShortAndEmptyFilteredPagesCarryACursorAndPagingGivesEveryMatchOnce) {
  constexpr int kPageSize = 5;
  const int b = Budget(kPageSize);
  // Three matches within the first budget's reach (the last two at its very end), one just past
  // it, none in the whole third budget's reach, then 12 together and one at the store's end.
  std::vector<int> matches = {3, b - 2, b - 1, b};
  for (int i = 3 * b; i < 3 * b + 12; ++i) matches.push_back(i);
  const int count = 3 * b + 20;
  matches.push_back(count - 1);
  Fill("c", count, std::set<int>(matches.begin(), matches.end()));

  const std::vector<Page> pages = ListAll("c", kPageSize, Picked());
  EXPECT_EQ(Concatenated(pages), Ids(matches)) << "every match once, in id order";
  for (size_t p = 0; p < pages.size(); ++p) {
    EXPECT_LE(pages[p].ids.size(), static_cast<size_t>(kPageSize)) << "page " << p;
    EXPECT_LE(pages[p].items_read, b) << "page " << p;
  }
  // Each call reads until its page is full, the store ends or the budget is spent.
  ASSERT_EQ(pages.size(), 6u);
  // The budget is spent on the first b items: a short page, with a cursor.
  EXPECT_EQ(pages[0].ids, Ids({3, b - 2, b - 1}));
  EXPECT_TRUE(pages[0].has_cursor);
  EXPECT_EQ(pages[0].items_read, b);
  EXPECT_EQ(pages[1].ids, Ids({b}));
  EXPECT_TRUE(pages[1].has_cursor);
  EXPECT_EQ(pages[1].items_read, b);
  // Nothing matches within the third budget's reach: an empty page, with a cursor.
  EXPECT_TRUE(pages[2].ids.empty());
  EXPECT_TRUE(pages[2].has_cursor);
  EXPECT_EQ(pages[2].items_read, b);
  EXPECT_EQ(pages[3].ids, Ids({3 * b, 3 * b + 1, 3 * b + 2, 3 * b + 3, 3 * b + 4}));
  EXPECT_TRUE(pages[3].has_cursor);
  EXPECT_EQ(pages[4].ids, Ids({3 * b + 5, 3 * b + 6, 3 * b + 7, 3 * b + 8, 3 * b + 9}));
  EXPECT_TRUE(pages[4].has_cursor);
  // The store ends before the budget is spent: the last page, with no cursor.
  EXPECT_EQ(pages[5].ids, Ids({3 * b + 10, 3 * b + 11, count - 1}));
  EXPECT_FALSE(pages[5].has_cursor);
  EXPECT_EQ(pages[5].items_read, count - (3 * b + 10));
}

TEST_F(EngineListTest, WhenTheBudgetEndsAtTheStoresLastItemTheNextPageIsEmptyWithNoCursor) {
  constexpr int kPageSize = 5;
  const int b = Budget(kPageSize);
  // The store holds exactly one budget of items: the call that reads the last one cannot tell
  // that nothing follows, so it gives a cursor, and the page after it is empty with none.
  Fill("short", b, {0, b - 1});
  std::vector<Page> pages = ListAll("short", kPageSize, Picked());
  ASSERT_EQ(pages.size(), 2u);
  EXPECT_EQ(pages[0].ids, Ids({0, b - 1}));
  EXPECT_TRUE(pages[0].has_cursor);
  EXPECT_EQ(pages[0].items_read, b);
  EXPECT_TRUE(pages[1].ids.empty());
  EXPECT_FALSE(pages[1].has_cursor);
  EXPECT_EQ(pages[1].items_read, 0);

  // The same when the last stored item fills the page.
  const int b2 = Budget(2);
  Fill("full", b2, {b2 - 2, b2 - 1});
  pages = ListAll("full", 2, Picked());
  ASSERT_EQ(pages.size(), 2u);
  EXPECT_EQ(pages[0].ids, Ids({b2 - 2, b2 - 1}));
  EXPECT_TRUE(pages[0].has_cursor);
  EXPECT_EQ(pages[0].items_read, b2);
  EXPECT_TRUE(pages[1].ids.empty());
  EXPECT_FALSE(pages[1].has_cursor);
}

TEST_F(EngineListTest, WithoutAFilterEachPageIsPageSizeItemsFromOneStoreRead) {
  constexpr int kPageSize = 1000;
  const int count = 3 * kPageSize;
  Fill("c", count, {});
  const std::vector<Page> pages = ListAll("c", kPageSize, std::nullopt);
  std::vector<int> all(count);
  for (int i = 0; i < count; ++i) all[i] = i;
  EXPECT_EQ(Concatenated(pages), Ids(all));
  ASSERT_EQ(pages.size(), 4u);
  for (int p = 0; p < 3; ++p) {
    EXPECT_EQ(pages[p].ids.size(), static_cast<size_t>(kPageSize)) << "page " << p;
    EXPECT_TRUE(pages[p].has_cursor) << "page " << p;
    EXPECT_EQ(pages[p].store_reads, 1) << "page " << p;
    EXPECT_EQ(pages[p].items_read, kPageSize) << "page " << p;
  }
  // The last item filled the third page; the page after it is empty, with no cursor.
  EXPECT_TRUE(pages[3].ids.empty());
  EXPECT_FALSE(pages[3].has_cursor);
  EXPECT_EQ(pages[3].store_reads, 1);

  // A small page reads no more than itself.
  const std::vector<Page> small = ListAll("c", 7, std::nullopt, /*max_pages=*/3);
  ASSERT_EQ(small.size(), 3u);
  for (int p = 0; p < 3; ++p) {
    EXPECT_EQ(small[p].ids, Ids({7 * p, 7 * p + 1, 7 * p + 2, 7 * p + 3, 7 * p + 4, 7 * p + 5,
                                 7 * p + 6}))
        << "page " << p;
    EXPECT_TRUE(small[p].has_cursor);
    EXPECT_EQ(small[p].store_reads, 1);
    EXPECT_EQ(small[p].items_read, 7);
  }
}

}  // namespace
}  // namespace retrace::engine
