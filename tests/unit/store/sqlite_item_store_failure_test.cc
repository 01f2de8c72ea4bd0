// SqliteItemStore on bad days: files it did not write or that were damaged, a newer schema,
// and a full disk. Each failure must be a status with the right code, never a crash, and must
// leave the store as it was.
#include <signal.h>
#include <sqlite3.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/store/internal/sqlite_connection.h"
#include "core/store/sqlite_item_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/store/store_test_util.h"

namespace retrace::store {
namespace {

using ::retrace::store::testing::MakeItem;
using ::retrace::store::testing::ScratchDir;
using ::retrace::store::testing::TestCollection;
using ::testing::HasSubstr;

TEST(SqliteItemStoreFailureTest, NewerSchemaVersionIsRefused) {
  ScratchDir dir;
  {
    auto store = SqliteItemStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
  }
  testing::ExecSql(dir.db(), "PRAGMA user_version = 7");
  auto store = SqliteItemStore::Open(dir.path());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("schema version 7"));

  // The refused Open released the lock and left the file alone.
  testing::ExecSql(dir.db(),
                   absl::StrCat("PRAGMA user_version = ", SqliteItemStore::kSchemaVersion));
  EXPECT_TRUE(SqliteItemStore::Open(dir.path()).ok());
}

TEST(SqliteItemStoreFailureTest, SchemaVersionOneIsRefusedNotMigrated) {
  ScratchDir dir;
  {
    auto store = SqliteItemStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
  }
  testing::ExecSql(dir.db(), "PRAGMA user_version = 1");
  auto store = SqliteItemStore::Open(dir.path());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("schema version 1"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("index the items again"));
}

// The schema version 2 wrote (before the image space), as a fixture of the old format.
constexpr char kSchemaV2[] = R"sql(
CREATE TABLE collections (
  name BLOB PRIMARY KEY NOT NULL, shards INTEGER NOT NULL, caption_index BLOB NOT NULL,
  caption_dim INTEGER NOT NULL, clip_model BLOB NOT NULL, captioner_model BLOB NOT NULL,
  created_at INTEGER NOT NULL, created_seq INTEGER NOT NULL, compacted_seq INTEGER NOT NULL);
CREATE TABLE items (
  collection BLOB NOT NULL REFERENCES collections(name), id BLOB NOT NULL,
  content_hash INTEGER NOT NULL, seq INTEGER NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, caption BLOB NOT NULL, attributes BLOB NOT NULL,
  clip_image BLOB, caption_text BLOB, PRIMARY KEY (collection, id));
CREATE INDEX items_by_seq ON items(collection, seq);
CREATE TABLE deletions (
  collection BLOB NOT NULL REFERENCES collections(name), id BLOB NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (collection, id)) WITHOUT ROWID;
CREATE INDEX deletions_by_seq ON deletions(collection, seq);
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
INSERT INTO meta(key, value) VALUES ('last_seq', 2);
INSERT INTO collections VALUES (X'617274', 2, X'466C6174', 2, X'636C6970', X'636170', 0, 1, 0);
INSERT INTO items VALUES (X'617274', X'61', 42, 2, 0, 0, X'612063617074696F6E', X'',
                          X'0000803F00000000', X'000000000000803F');
PRAGMA user_version = 2;
)sql";

TEST(SqliteItemStoreFailureTest, SchemaVersionTwoIsMigratedKeepingEveryItem) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.path());
  { std::ofstream touch(dir.db()); }
  testing::ExecSql(dir.db(), kSchemaV2);
  {
    auto store = SqliteItemStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    auto state = (*store)->ReadState();
    ASSERT_TRUE(state.ok()) << state.status();
    const std::vector<CollectionRecord>* list = &state->collections;
    ASSERT_EQ(list->size(), 1u);
    // A version-2 collection's image space is CLIP's image embedding alone.
    EXPECT_EQ((*list)[0].image_dim, 2);
    EXPECT_EQ((*list)[0].image_index, "Flat");
    EXPECT_EQ((*list)[0].image_encoder_model, "");
    EXPECT_EQ((*list)[0].created_position, 1);
    EXPECT_EQ((*list)[0].last_change_position, 2);  // version 4 computed it from the items
    EXPECT_EQ(*(*store)->LastPosition(), 2);
    // The migrated store's feed reads the old items.
    auto page = (*store)->ReadChanges("art", 1, {1, std::nullopt}, 10);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->changes.size(), 1u);
    EXPECT_EQ(page->changes[0].id, "a");
    EXPECT_EQ(page->changes[0].position, 2);
    auto items = (*store)->GetItems("art", {"a"});
    ASSERT_TRUE(items.ok()) << items.status();
    ASSERT_TRUE((*items)[0].has_value());
    EXPECT_EQ((*items)[0]->caption, "a caption");
    EXPECT_EQ((*items)[0]->content_hash, 42u);
    EXPECT_EQ((*items)[0]->clip_image, (std::vector<float>{1.0f, 0.0f}));
    EXPECT_EQ((*items)[0]->caption_text, (std::vector<float>{0.0f, 1.0f}));
    EXPECT_TRUE((*items)[0]->image_features.empty());
    // The migrated store takes the new column.
    StoredItem b = MakeItem("b", 2);
    ASSERT_FALSE(b.image_features.empty());
    ASSERT_TRUE((*store)->PutItems("art", {b}).ok());
  }
  EXPECT_EQ(testing::QueryInt64(dir.db(), "PRAGMA user_version"), SqliteItemStore::kSchemaVersion);
  auto reopened = SqliteItemStore::Open(dir.path());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto b = (*reopened)->GetItems("art", {"b"});
  ASSERT_TRUE(b.ok() && (*b)[0].has_value());
  EXPECT_TRUE(testing::SameItem(MakeItem("b", 2), *(*b)[0]));
}

TEST(SqliteItemStoreFailureTest, AnUnusableDataDirectoryIsAnError) {
  EXPECT_EQ(SqliteItemStore::Open("").status().code(), absl::StatusCode::kInvalidArgument);
  ScratchDir dir;
  std::filesystem::create_directories(dir.path());
  const std::string file = dir.path() + "/a-file";
  std::ofstream(file) << "not a directory";
  auto store = SqliteItemStore::Open(file);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInternal) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(file));
}

TEST(SqliteItemStoreFailureTest, AFileThatIsNotADatabaseIsDataLoss) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.path());
  std::ofstream(dir.db()) << std::string(8192, 'x');
  auto store = SqliteItemStore::Open(dir.path());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("sqlite: "));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not a database"));
}

TEST(SqliteItemStoreFailureTest, AnotherProgramsDatabaseIsRefused) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.path());
  { std::ofstream touch(dir.db()); }
  testing::ExecSql(dir.db(), "CREATE TABLE t(x)");
  auto store = SqliteItemStore::Open(dir.path());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not a retrace store"));
}

TEST(SqliteItemStoreFailureTest, AMalformedStoredRecordIsDataLossNamingTheItem) {
  ScratchDir dir;
  {
    auto store = SqliteItemStore::Open(dir.path());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->CreateCollection(TestCollection("art")).ok());
    ASSERT_TRUE((*store)->PutItems("art", {MakeItem("good"), MakeItem("bad")}).ok());
  }
  // An attribute BLOB whose first size (5) runs past its end.
  testing::ExecSql(dir.db(),
                   "UPDATE items SET attributes = x'05616263' WHERE id = CAST('bad' AS "
                   "BLOB)");
  auto store = SqliteItemStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  auto got = (*store)->GetItems("art", {"good", "bad"});
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("'bad'"));
  EXPECT_TRUE((*store)->GetItems("art", {"good"}).ok());

  testing::ExecSql(dir.db(),
                   "UPDATE items SET attributes = x'', clip_image = x'0102030405' "
                   "WHERE id = CAST('bad' AS BLOB)");
  absl::Status scan =
      (*store)->ForEachItem("art", [](const StoredItem&) { return absl::OkStatus(); });
  EXPECT_EQ(scan.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(scan.message()), HasSubstr("not a multiple of 4"));
}

// DiskFull makes SQLite's own write calls fail with ENOSPC while it lives, through the unix
// VFS's system-call override (SQLite's hook for fault injection): SQLite's real error path, as
// on a full disk, turns that into SQLITE_FULL. Process-wide: tests in one process run one at a
// time.
class DiskFull {
 public:
  DiskFull() : vfs_(sqlite3_vfs_find(nullptr)) {
    real_write_ = vfs_->xGetSystemCall(vfs_, "write");
    real_pwrite64_ = vfs_->xGetSystemCall(vfs_, "pwrite64");
    EXPECT_NE(real_write_, nullptr);
    EXPECT_NE(real_pwrite64_, nullptr);  // what SQLite uses on Linux
    vfs_->xSetSystemCall(vfs_, "write", reinterpret_cast<sqlite3_syscall_ptr>(&Write));
    vfs_->xSetSystemCall(vfs_, "pwrite64", reinterpret_cast<sqlite3_syscall_ptr>(&Pwrite64));
  }
  DiskFull(const DiskFull&) = delete;
  DiskFull& operator=(const DiskFull&) = delete;
  ~DiskFull() {
    vfs_->xSetSystemCall(vfs_, "write", real_write_);
    vfs_->xSetSystemCall(vfs_, "pwrite64", real_pwrite64_);
  }

 private:
  static ssize_t Write(int, const void*, size_t) {
    errno = ENOSPC;
    return -1;
  }
  static ssize_t Pwrite64(int, const void*, size_t, off_t) {
    errno = ENOSPC;
    return -1;
  }

  sqlite3_vfs* vfs_;
  sqlite3_syscall_ptr real_write_;
  sqlite3_syscall_ptr real_pwrite64_;
};

TEST(SqliteItemStoreFailureTest, AFullDiskIsResourceExhaustedAndStoresNothing) {
  ScratchDir dir;
  auto opened = SqliteItemStore::Open(dir.path());
  ASSERT_TRUE(opened.ok());
  std::unique_ptr<SqliteItemStore> store = std::move(opened).value();
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store->PutItems("art", {MakeItem("before")}).ok());
  const int64_t seq = *store->LastPosition();
  std::vector<StoredItem> batch;
  for (int i = 0; i < 64; ++i) batch.push_back(MakeItem(absl::StrCat("new-", i), 512, i));

  absl::StatusOr<int64_t> put;
  absl::StatusOr<DeleteResult> deleted;
  {
    DiskFull full;
    put = store->PutItems("art", batch);
    deleted = store->DeleteItems("art", {"before"});
  }
  EXPECT_EQ(put.status().code(), absl::StatusCode::kResourceExhausted) << put.status();
  EXPECT_THAT(std::string(put.status().message()), HasSubstr("sqlite: "));
  EXPECT_THAT(std::string(put.status().message()), HasSubstr("database or disk is full"));
  EXPECT_EQ(deleted.status().code(), absl::StatusCode::kResourceExhausted) << deleted.status();
  EXPECT_EQ(*store->LastPosition(), seq);
  EXPECT_EQ(*store->CountItems("art"), 1);
  auto got = store->GetItems("art", {"before", "new-0"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE((*got)[0].has_value());
  EXPECT_FALSE((*got)[1].has_value());

  // There is room again: the same batch goes in, and everything survives a reopen.
  absl::StatusOr<int64_t> retry = store->PutItems("art", batch);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(*retry, seq + 1);
  store.reset();
  opened = SqliteItemStore::Open(dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*(*opened)->CountItems("art"), 65);
}

TEST(SqliteErrorStatusTest, MapsResultCodesAndNamesTheOperation) {
  using internal::SqliteErrorStatus;
  absl::Status full =
      SqliteErrorStatus(SQLITE_FULL, "insert item 'x' into 'art'", "database or disk is full");
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full.message(), "sqlite: insert item 'x' into 'art': database or disk is full");
  EXPECT_EQ(SqliteErrorStatus(SQLITE_IOERR_WRITE, "commit", "disk I/O error").code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(SqliteErrorStatus(SQLITE_CORRUPT, "op", "m").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(SqliteErrorStatus(SQLITE_BUSY, "op", "m").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SqliteErrorStatus(SQLITE_READONLY, "op", "m").code(),
            absl::StatusCode::kFailedPrecondition);
}

// Version 6 added the captions' full-text index: a version-5 database (this one, with the
// index taken away) gets it filled from its existing items when it is opened.
TEST(SqliteItemStoreFailureTest, SchemaVersionFiveIsMigratedFillingTheCaptionIndex) {
  ScratchDir dir;
  {
    auto store = SqliteItemStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateCollection(TestCollection("art")).ok());
    StoredItem a = MakeItem("a"), b = MakeItem("b");
    a.caption = "a red bicycle";
    b.caption = "a blue boat";
    ASSERT_TRUE((*store)->PutItems("art", {a, b}).ok());
  }
  testing::ExecSql(dir.db(),
                   "DROP TRIGGER items_fts_insert; DROP TRIGGER items_fts_delete; "
                   "DROP TRIGGER items_fts_update; DROP TABLE captions_fts; "
                   "PRAGMA user_version = 5;");
  auto store = SqliteItemStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(testing::QueryInt64(dir.db(), "PRAGMA user_version"), 6);
  auto found = (*store)->SearchCaptions("art", {"bicycle"}, 10);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].id, "a");
  // And it is kept in step from then on.
  ASSERT_TRUE((*store)->DeleteItems("art", {"a"}).ok());
  found = (*store)->SearchCaptions("art", {"bicycle"}, 10);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(found->empty());
}

}  // namespace
}  // namespace retrace::store
