// store_fixture.h — the fixture of the item-store contract tests: each test runs on SQLite and
// on PostgreSQL (a real server the test binary starts on loopback, shared by its tests, each with
// its own database), and can reopen its store on the same data (a restart); and Follow, a
// follower paging the change feed.
//
// Thread-safety: a fixture is one test's; Postgres() is safe to call from any thread.
//
//   TEST_P(StoreFixture, Something) { ASSERT_TRUE(store_->CreateCollection(TestCollection("a")).ok()); }
#ifndef RETRACE_TESTS_UNIT_STORE_STORE_FIXTURE_H_
#define RETRACE_TESTS_UNIT_STORE_STORE_FIXTURE_H_

#include <map>
#include <memory>
#include <string>

#include "core/store/item_store.h"
#include "core/store/postgres_item_store.h"
#include "core/store/sqlite_item_store.h"
#include "gtest/gtest.h"
#include "tests/support/postgres_server.h"
#include "tests/unit/store/store_test_util.h"

namespace retrace::store {

using State = std::map<std::string, StoredItem>;

// The PostgreSQL server, shared by every test of this binary (each gets its own database) and
// stopped when the binary exits.
inline retrace::testing::PostgresServer* Postgres() {
  static std::unique_ptr<retrace::testing::PostgresServer> server = [] {
    auto started = retrace::testing::PostgresServer::Start();
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? std::move(*started) : nullptr;
  }();
  return server.get();
}

// StoreFixture opens the store under test and can open it again on the same data (a restart).
class StoreFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      ASSERT_NE(Postgres(), nullptr);
      uri_ = Postgres()->NewDatabase("contract");
      ASSERT_FALSE(uri_.empty());
    }
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<ItemStore> Open() {
    if (GetParam() == "sqlite") {
      auto store = SqliteItemStore::Open(dir_.path());
      EXPECT_TRUE(store.ok()) << store.status();
      return store.ok() ? std::move(*store) : nullptr;
    }
    PostgresItemStore::Options options;
    options.conninfo = uri_;
    options.poll_interval = absl::Milliseconds(100);
    auto store = PostgresItemStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  void Reopen() {
    store_.reset();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  int64_t Last() {
    auto last = store_->LastPosition();
    EXPECT_TRUE(last.ok()) << last.status();
    return last.value_or(-1);
  }
  int64_t Created(const std::string& name) {
    auto state = store_->ReadState();
    EXPECT_TRUE(state.ok()) << state.status();
    for (const CollectionRecord& c : state->collections) {
      if (c.name == name) return c.created_position;
    }
    ADD_FAILURE() << "no collection " << name;
    return -1;
  }
  State Dump(const std::string& collection) {
    State state;
    absl::Status s = store_->ForEachItem(collection, [&](const StoredItem& item) {
      state.emplace(item.id, item);
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    return state;
  }

  testing::ScratchDir dir_;
  std::string uri_;
  std::unique_ptr<ItemStore> store_;
};

// Follow pages the feed from `cursor` to the end (a page with more == false), applying each
// change to `state`, and returns the last page's last_position (what a follower records as
// applied) or the error.
inline absl::StatusOr<int64_t> Follow(const ItemStore& store, const std::string& collection,
                                      int64_t created, ChangeCursor cursor, int limit, State* state) {
  while (true) {
    absl::StatusOr<ChangePage> page = store.ReadChanges(collection, created, cursor, limit);
    if (!page.ok()) return page.status();
    for (Change& change : page->changes) {
      if (change.kind == Change::Kind::kPut) {
        (*state)[change.id] = std::move(change.item);
      } else {
        state->erase(change.id);
      }
    }
    cursor = page->next;
    if (!page->more) return page->last_position;
  }
}

}  // namespace retrace::store

#endif  // RETRACE_TESTS_UNIT_STORE_STORE_FIXTURE_H_
