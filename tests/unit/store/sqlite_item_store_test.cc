// SqliteItemStore beyond the shared contract (item_store_contract_test.cc): what it writes in
// its own tables (timestamps, recorded deletions), and the data directory's lock. Failure paths
// (damaged files, a full disk, old schemas) are in sqlite_item_store_failure_test.cc; crashes in
// crash_durability_test.cc.
#include "core/store/sqlite_item_store.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/store/store_test_util.h"

namespace retrace::store {
namespace {

using ::retrace::store::testing::MakeItem;
using ::retrace::store::testing::ScratchDir;
using ::retrace::store::testing::TestCollection;
using ::testing::HasSubstr;

std::unique_ptr<SqliteItemStore> OpenOrDie(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<SqliteItemStore>> store = SqliteItemStore::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(store).value() : nullptr;
}

TEST(SqliteItemStoreTest, AnUpsertKeepsCreatedAtAndStampsUpdatedAtAndThePosition) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store->PutItems("art", {MakeItem("x", 8, 1)}).ok());
  const std::string where_x = " FROM items WHERE id = CAST('x' AS BLOB)";
  const int64_t created_at = testing::QueryInt64(dir.db(), "SELECT created_at" + where_x);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto second = store->PutItems("art", {MakeItem("x", 16, 2)});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(testing::QueryInt64(dir.db(), "SELECT created_at" + where_x), created_at);
  EXPECT_GT(testing::QueryInt64(dir.db(), "SELECT updated_at" + where_x), created_at);
  EXPECT_EQ(testing::QueryInt64(dir.db(), "SELECT seq" + where_x), *second);
}

TEST(SqliteItemStoreTest, AnIdIsInItemsOrInDeletionsNeverBoth) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store->PutItems("art", {MakeItem("a"), MakeItem("b"), MakeItem("c")}).ok());
  const std::string deletion_rows = "SELECT count(*) FROM deletions";
  ASSERT_TRUE(store->DeleteItems("art", {"a", "b", "zz"}).ok());
  EXPECT_EQ(testing::QueryInt64(dir.db(), deletion_rows), 2);  // not "zz": it was absent
  ASSERT_TRUE(store->PutItems("art", {MakeItem("a", 8, 5)}).ok());
  EXPECT_EQ(testing::QueryInt64(dir.db(), deletion_rows), 1);
  ASSERT_TRUE(store->DropCollection("art").ok());
  EXPECT_EQ(testing::QueryInt64(dir.db(), deletion_rows), 0);
  EXPECT_EQ(testing::QueryInt64(dir.db(), "SELECT count(*) FROM items"), 0);
}

TEST(SqliteItemStoreTest, SecondOpenOfTheSameDirectoryFailsUntilTheFirstCloses) {
  ScratchDir dir;
  auto first = OpenOrDie(dir.path());
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<SqliteItemStore>> second = SqliteItemStore::Open(dir.path());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("is in use by another process (LOCK held)"));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(dir.path()));
  // The failed Open must not have disturbed the first store.
  ASSERT_TRUE(first->CreateCollection(TestCollection("art")).ok());

  first.reset();
  auto third = OpenOrDie(dir.path());
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->ReadState()->collections.size(), 1u);
  EXPECT_EQ(third->Describe(), absl::StrCat("sqlite ", dir.db()));
}

}  // namespace
}  // namespace retrace::store
