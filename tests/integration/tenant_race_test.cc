// A tenant's Index checks, before running the models, that no other tenant holds its ids; the
// models take time, and another tenant may create one of those ids meanwhile. The engine, in
// process with the demo models and a real SQLite store: a stage observer writes tenant b's item
// under the id tenant a is indexing, while a's images are being embedded. a's write must then
// answer ALREADY_EXISTS for that id (and store its other items), and b's item must stay b's —
// before the store checked ownership in the write's own transaction, a replaced b's item
// silently.
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/engine/engine.h"
#include "core/filter/filter.h"
#include "core/store/sqlite_item_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/logging.h"
#include "server/model_folder.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// TakeIdWhileEmbedding writes `item` to `store` the first time an image batch is embedded after
// Arm(): between the Index call's ownership check and its store write.
class TakeIdWhileEmbedding : public engine::StageObserver {
 public:
  void Arm(store::ItemStore* store, store::StoredItem item) {
    store_ = store;
    item_ = std::move(item);
    armed_ = true;
  }
  void Observe(engine::Stage stage, double, int) override {
    if (stage != engine::Stage::kEmbedImage || !armed_.exchange(false)) return;
    written_ = store_->PutItems("c", {item_});
  }
  const absl::StatusOr<int64_t>& written() const { return written_; }

 private:
  std::atomic<bool> armed_{false};
  store::ItemStore* store_ = nullptr;
  store::StoredItem item_;
  absl::StatusOr<int64_t> written_ = absl::UnknownError("not written");
};

engine::IndexItem Item(const std::string& id, int seed) {
  engine::IndexItem item;
  item.id = id;
  item.image = testing::NoiseImage(32, 32, seed, ".png");
  item.caption = absl::StrCat("caption of ", id);
  return item;
}

engine::CallOptions TenantCall(const std::string& tenant) {
  engine::CallOptions call;
  call.scope = std::make_shared<filter::Filter>(filter::Filter::Equals("tenant", tenant));
  return call;
}

TEST(TenantRaceTest, AnIdTakenByAnotherTenantDuringInferenceIsNotOverwritten) {
  if (!fs::exists(testing::FixtureDir() + "/demo/clip/model.pt")) {
    GTEST_SKIP() << "demo models not found in " << testing::FixtureDir();
  }
  const std::string dir = testing::NewTempDir("tenant-race");
  auto models = server::LoadModelSet(testing::FixtureDir() + "/demo");
  ASSERT_TRUE(models.ok()) << models.status();
  auto sqlite = store::SqliteItemStore::Open(dir + "/data");
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  store::ItemStore* store = sqlite->get();
  TakeIdWhileEmbedding observer;
  engine::EngineOptions options;
  options.snapshot_dir = dir + "/snapshots";
  options.snapshot_interval_seconds = -1;
  options.replication.replica_id = "r1";
  options.stage_observer = &observer;
  auto engine = engine::Engine::Open(
      std::move(options), std::move(*models), std::move(*sqlite),
      server::MakeServerLoggers(server::LogFormat::kText, spdlog::level::warn).events);
  ASSERT_TRUE(engine.ok()) << engine.status();
  ASSERT_TRUE((*engine)->CreateCollection({"c"}).ok());

  // Tenant b's item under "shared", written straight to the store while a's batch is embedded.
  auto b_item = (*engine)->Index("c", {Item("b-own", 7)}, TenantCall("b"));
  ASSERT_TRUE(b_item.ok() && b_item->items[0].status.ok());
  auto b_stored = (*engine)->Get("c", {"b-own"}, engine::GetFields{/*embeddings=*/true});
  ASSERT_TRUE(b_stored.ok() && (*b_stored)[0].status.ok());
  store::StoredItem taken;
  taken.id = "shared";
  taken.caption = "tenant b's item";
  taken.attributes = {{"tenant", "b"}};
  taken.clip_image = (*b_stored)[0].item.clip_image;
  taken.caption_text = (*b_stored)[0].item.caption_text;
  taken.image_features = (*b_stored)[0].item.image_features;
  observer.Arm(store, taken);

  auto written = (*engine)->Index("c", {Item("a-1", 1), Item("shared", 2)}, TenantCall("a"));
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_TRUE(observer.written().ok()) << observer.written().status();  // the race happened
  EXPECT_TRUE(written->items[0].status.ok()) << written->items[0].status;
  const absl::Status& shared = written->items[1].status;
  EXPECT_EQ(shared.code(), absl::StatusCode::kAlreadyExists) << shared;
  EXPECT_THAT(std::string(shared.message()), HasSubstr("items[1] 'shared'"));
  EXPECT_THAT(std::string(shared.message()), HasSubstr("outside this token's filter"));

  // What the store holds: a's other item, and b's item under "shared", untouched.
  auto stored = store->GetItemsWithoutEmbeddings("c", {"a-1", "shared"});
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_TRUE((*stored)[0].has_value());
  EXPECT_EQ((*stored)[0]->attributes.at("tenant"), "a");
  ASSERT_TRUE((*stored)[1].has_value());
  EXPECT_EQ((*stored)[1]->attributes.at("tenant"), "b");
  EXPECT_EQ((*stored)[1]->caption, "tenant b's item");
  // And tenant a cannot see it, nor b lose it through a's view.
  auto a_view = (*engine)->Get("c", {"shared"}, engine::GetFields{}, TenantCall("a"));
  ASSERT_TRUE(a_view.ok()) << a_view.status();
  EXPECT_EQ((*a_view)[0].status.code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace retrace
