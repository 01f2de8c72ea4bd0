// PostgresItemStore beyond the shared contract (item_store_contract_test.cc): the change feed's
// commit order with a write transaction held open, bad connection settings, the server going
// away and coming back, and replicas migrating one database at once. Against a real PostgreSQL
// server started on loopback by the test.
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/store/internal/pg_connection.h"
#include "core/store/postgres_item_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/postgres_server.h"
#include "tests/unit/store/store_test_util.h"

namespace retrace::store {
namespace {

using ::retrace::store::testing::MakeItem;
using ::retrace::store::testing::TestCollection;
using ::testing::HasSubstr;
using ::testing::Not;
namespace pg = internal::pg;

class PostgresStoreTest : public retrace::testing::SharedPostgres<> {
 protected:
  void SetUp() override {
    ASSERT_NE(postgres(), nullptr);
    uri_ = postgres()->NewDatabase("pgstore");
  }
  std::unique_ptr<PostgresItemStore> Open(const std::string& uri) {
    PostgresItemStore::Options options;
    options.conninfo = uri;
    options.poll_interval = absl::Milliseconds(100);
    options.connect_timeout_seconds = 2;
    auto store = PostgresItemStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string uri_;
};

// PostgreSQL sequences would let a reader that resumes after "the highest position seen" skip a
// row whose transaction took a lower value and committed later. The store's counter row makes
// writes commit in position order: here a write transaction takes position P and stays open;
// the next write waits for it, and a reader meanwhile sees neither P nor anything after it.
TEST_F(PostgresStoreTest, AWriteHeldOpenHoldsBackLaterWritesSoTheFeedCannotSkipIt) {
  auto store = Open(uri_);
  ASSERT_NE(store, nullptr);
  auto created = store->CreateCollection(TestCollection("art"));
  ASSERT_TRUE(created.ok());
  ASSERT_TRUE(store->PutItems("art", {MakeItem("before")}).ok());
  const int64_t before = *store->LastPosition();

  // The held transaction writes the way the store does: counter first, then its row.
  auto held = pg::Connection::Open(uri_, 5);
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE((*held)->ExecSimple("BEGIN", "begin").ok());
  auto taken = (*held)->Exec("UPDATE retrace_meta SET value = value + 1 "
                             "WHERE key = 'last_position' RETURNING value", {}, "take");
  ASSERT_TRUE(taken.ok()) << taken.status();
  const int64_t held_position = taken->Int64(0, 0);
  EXPECT_EQ(held_position, before + 1);
  ASSERT_TRUE((*held)->Exec("INSERT INTO items(collection, id, content_hash, position, created_at, "
                            "updated_at, caption, attributes) VALUES ($1, $2, 0, $3, 0, 0, "
                            "'held', '')",
                            {pg::Param::Bytes("art"), pg::Param::Bytes("held"),
                             pg::Param::Int(held_position)},
                            "insert")
                  .ok());

  auto later = std::async(std::launch::async,
                          [&] { return store->PutItems("art", {MakeItem("later")}); });
  EXPECT_EQ(later.wait_for(std::chrono::milliseconds(500)), std::future_status::timeout)
      << "a write committed while an earlier position was still open";
  auto page = store->ReadChanges("art", *created, {before, std::nullopt}, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->changes.empty());
  EXPECT_EQ(page->last_position, before) << "a reader saw past an open position";

  ASSERT_TRUE((*held)->ExecSimple("COMMIT", "commit").ok());
  auto later_position = later.get();
  ASSERT_TRUE(later_position.ok()) << later_position.status();
  EXPECT_EQ(*later_position, held_position + 1);
  page = store->ReadChanges("art", *created, page->next, 100);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->changes.size(), 2u);
  EXPECT_EQ(page->changes[0].id, "held");
  EXPECT_EQ(page->changes[0].position, held_position);
  EXPECT_EQ(page->changes[1].id, "later");
}

TEST_F(PostgresStoreTest, BadConnectionSettingsAreClearErrorsThatNameTheTarget) {
  PostgresItemStore::Options options;
  options.connect_timeout_seconds = 2;

  options.conninfo = "postgresql://retrace@127.0.0.1:notaport/db";
  auto malformed = PostgresItemStore::Open(options);
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument) << malformed.status();
  EXPECT_THAT(std::string(malformed.status().message()), HasSubstr("postgresql://"));

  options.conninfo = absl::StrCat("postgresql://secured:wrong-password@127.0.0.1:",
                                  postgres()->port(), "/postgres");
  auto refused = PostgresItemStore::Open(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr(absl::StrCat("secured@127.0.0.1:", postgres()->port(), "/postgres")));
  EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("wrong-password")));

  options.conninfo = absl::StrCat("postgresql://retrace@127.0.0.1:", postgres()->port(), "/nosuchdb");
  auto missing = PostgresItemStore::Open(options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("nosuchdb"));

  options.conninfo = "postgresql://retrace@127.0.0.1:1/db";  // nothing listens on port 1
  auto unreachable = PostgresItemStore::Open(options);
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable) << unreachable.status();
  EXPECT_THAT(std::string(unreachable.status().message()), HasSubstr("127.0.0.1:1/db"));
}

TEST_F(PostgresStoreTest, ANewerSchemaIsRefused) {
  { ASSERT_NE(Open(uri_), nullptr); }
  auto conn = pg::Connection::Open(uri_, 5);
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->ExecSimple("INSERT INTO retrace_schema VALUES (99)", "bump").ok());
  PostgresItemStore::Options options;
  options.conninfo = uri_;
  auto store = PostgresItemStore::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("schema version 99"));
}

TEST_F(PostgresStoreTest, ReplicasStartingTogetherMigrateTheDatabaseOnce) {
  std::vector<std::future<absl::StatusOr<std::unique_ptr<PostgresItemStore>>>> opens;
  for (int i = 0; i < 4; ++i) {
    opens.push_back(std::async(std::launch::async, [&] {
      PostgresItemStore::Options options;
      options.conninfo = uri_;
      return PostgresItemStore::Open(options);
    }));
  }
  for (auto& open : opens) {
    auto store = open.get();
    EXPECT_TRUE(store.ok()) << store.status();
  }
  auto conn = pg::Connection::Open(uri_, 5);
  ASSERT_TRUE(conn.ok());
  auto versions = (*conn)->Exec("SELECT count(*) FROM retrace_schema", {}, "count");
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->Int64(0, 0), PostgresItemStore::kSchemaVersion);
}

// The server stops: writes are UNAVAILABLE (nothing half-written), and the store reconnects by
// itself once the server is back.
TEST_F(PostgresStoreTest, WritesAreUnavailableWhileTheServerIsDownAndWorkAgainAfter) {
  auto store = Open(uri_);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store->PutItems("art", {MakeItem("a")}).ok());
  ASSERT_TRUE(postgres()->Stop("fast").ok());
  auto down = store->PutItems("art", {MakeItem("b")});
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_EQ(store->GetItems("art", {"a"}).status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(postgres()->Restart().ok());
  absl::StatusOr<int64_t> up;
  for (int attempt = 0; attempt < 50; ++attempt) {
    up = store->PutItems("art", {MakeItem("b")});
    if (up.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(*store->CountItems("art"), 2);
}

// Version 3 added the captions' full-text column and index: a version-2 database (this one,
// with them taken away) gets them filled from its existing items when a store opens it.
TEST_F(PostgresStoreTest, SchemaVersionTwoIsMigratedFillingTheCaptionIndex) {
  {
    auto store = Open(uri_);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
    StoredItem a = MakeItem("a"), b = MakeItem("b");
    a.caption = "a red bicycle";
    b.caption = "a blue boat";
    ASSERT_TRUE(store->PutItems("art", {a, b}).ok());
  }
  {
    auto conn = pg::Connection::Open(uri_, 5);
    ASSERT_TRUE(conn.ok()) << conn.status();
    ASSERT_TRUE((*conn)
                    ->ExecSimple("ALTER TABLE items DROP COLUMN caption_words; "
                                 "DROP FUNCTION retrace_caption_words(bytea); "
                                 "DELETE FROM retrace_schema WHERE version = 3",
                                 "downgrade")
                    .ok());
  }
  auto store = Open(uri_);
  ASSERT_NE(store, nullptr);
  auto found = store->SearchCaptions("art", {"bicycle"}, 10);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].id, "a");
  ASSERT_TRUE(store->DeleteItems("art", {"a"}).ok());
  found = store->SearchCaptions("art", {"bicycle"}, 10);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(found->empty());
}

}  // namespace
}  // namespace retrace::store
