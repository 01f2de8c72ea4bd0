// Change tracking in SqliteItemStore: created_seq, the caller's content hashes, the change feed
// (ForEachChangeSince) that catches an index snapshot up, and compaction of recorded deletions.
// The central check: for every sequence S recorded during a run of puts, deletes, re-puts and
// upserts, the state read at S with the changes since S applied is the current state.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/sqlite_item_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/store/store_test_util.h"

namespace retrace::store {
namespace {

using ::retrace::store::testing::MakeItem;
using ::retrace::store::testing::SameItem;
using ::retrace::store::testing::ScratchDir;
using ::retrace::store::testing::TestCollection;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using State = std::map<std::string, StoredItem>;

std::unique_ptr<SqliteItemStore> OpenOrDie(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<SqliteItemStore>> store = SqliteItemStore::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(store).value() : nullptr;
}

// ReadState returns a collection's items by id, as ForEachItem reads them.
State ReadState(const ItemStore& store, const std::string& collection) {
  State state;
  absl::Status status = store.ForEachItem(collection, [&](const StoredItem& item) {
    state.emplace(item.id, item);
    return absl::OkStatus();
  });
  EXPECT_TRUE(status.ok()) << status;
  return state;
}

// Changes is what one ForEachChangeSince call reported, in the order reported.
struct Changes {
  absl::Status status;
  std::vector<StoredItem> puts;
  std::vector<std::string> deletes;

  std::vector<std::string> PutIds() const {
    std::vector<std::string> ids;
    for (const StoredItem& item : puts) ids.push_back(item.id);
    return ids;
  }
};

Changes ReadChanges(const ItemStore& store, const std::string& collection, int64_t after_seq) {
  Changes changes;
  changes.status = store.ForEachChangeSince(
      collection, after_seq,
      [&](const StoredItem& item) {
        changes.puts.push_back(item);
        return absl::OkStatus();
      },
      [&](const std::string& id) {
        changes.deletes.push_back(id);
        return absl::OkStatus();
      });
  return changes;
}

// SameState compares two collection states item by item.
::testing::AssertionResult SameState(const State& expected, const State& actual) {
  for (const auto& [id, item] : expected) {
    auto it = actual.find(id);
    if (it == actual.end()) {
      return ::testing::AssertionFailure() << "missing '" << absl::CHexEscape(id) << "'";
    }
    ::testing::AssertionResult same = SameItem(item, it->second);
    if (!same) return same;
  }
  for (const auto& [id, item] : actual) {
    if (expected.count(id) == 0) {
      return ::testing::AssertionFailure() << "unexpected '" << absl::CHexEscape(id) << "'";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(SqliteItemStoreChangesTest, ReplayingChangesSinceAnySequenceGivesTheCurrentState) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store->CreateCollection(TestCollection("other")).ok());

  std::vector<std::string> pool = {"", std::string("nul\0id", 6), "\xff"};
  for (int i = 0; i < 700; ++i) pool.push_back(absl::StrCat("id-", i));

  // The expected feed: per id of "art", the sequence of its latest put or of the delete that
  // removed it.
  std::map<std::string, int64_t> put_seq, delete_seq;
  struct Checkpoint {
    int64_t seq;
    State state;
  };
  std::vector<Checkpoint> checkpoints = {{0, {}}};
  auto checkpoint = [&] {
    checkpoints.push_back({store->LastSequence(), ReadState(*store, "art")});
  };

  auto put = [&](const std::string& collection, const std::vector<std::string>& ids, int seed) {
    std::vector<StoredItem> items;
    for (const std::string& id : ids) items.push_back(MakeItem(id, 4, seed));
    absl::StatusOr<int64_t> seq = store->PutItems(collection, std::move(items));
    ASSERT_TRUE(seq.ok()) << seq.status();
    if (collection != "art") return;
    for (const std::string& id : ids) {
      put_seq[id] = *seq;
      delete_seq.erase(id);
    }
  };
  auto remove = [&](const std::string& collection, const std::vector<std::string>& ids) {
    absl::StatusOr<std::vector<bool>> present = store->DeleteItems(collection, ids);
    ASSERT_TRUE(present.ok()) << present.status();
    if (collection != "art") return;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!(*present)[i]) continue;
      put_seq.erase(ids[i]);
      delete_seq[ids[i]] = store->LastSequence();
    }
  };

  // One batch of 600 (pages within one sequence), then 300 deletions in one call (pages of
  // deletions), then random puts, upserts, re-puts and deletes, some in the other collection.
  checkpoint();
  put("art", std::vector<std::string>(pool.begin(), pool.begin() + 600), 0);
  checkpoint();
  remove("art", std::vector<std::string>(pool.begin() + 100, pool.begin() + 400));
  std::mt19937 rng(20240601);
  auto sample = [&](int max_size) {
    std::vector<std::string> ids = pool;
    std::shuffle(ids.begin(), ids.end(), rng);
    ids.resize(std::uniform_int_distribution<int>(1, max_size)(rng));
    return ids;
  };
  for (int op = 1; op <= 30; ++op) {
    checkpoint();
    const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
    if (kind < 5) {
      put("art", sample(120), op);
    } else if (kind < 9) {
      remove("art", sample(300));
    } else {
      put("other", sample(50), op);
      remove("other", sample(50));
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
  checkpoint();

  const State current = ReadState(*store, "art");
  for (const Checkpoint& at : checkpoints) {
    SCOPED_TRACE(absl::StrCat("changes since ", at.seq));
    Changes changes = ReadChanges(*store, "art", at.seq);
    ASSERT_TRUE(changes.status.ok()) << changes.status;

    // Exactly the latest change of each id changed since, each once.
    std::set<std::string> put_ids, delete_ids;
    for (const std::string& id : changes.PutIds()) EXPECT_TRUE(put_ids.insert(id).second) << id;
    for (const std::string& id : changes.deletes) EXPECT_TRUE(delete_ids.insert(id).second) << id;
    std::set<std::string> want_puts, want_deletes;
    for (const auto& [id, seq] : put_seq) {
      if (seq > at.seq) want_puts.insert(id);
    }
    for (const auto& [id, seq] : delete_seq) {
      if (seq > at.seq) want_deletes.insert(id);
    }
    EXPECT_EQ(put_ids, want_puts);
    EXPECT_EQ(delete_ids, want_deletes);

    State replayed = at.state;
    for (const StoredItem& item : changes.puts) replayed[item.id] = item;
    for (const std::string& id : changes.deletes) replayed.erase(id);
    EXPECT_TRUE(SameState(current, replayed));
  }
  EXPECT_EQ(checkpoints.back().seq, store->LastSequence());
}

TEST(SqliteItemStoreChangesTest, TheDeletionOfAnIdPutAgainIsForgotten) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store->PutItems("art", {MakeItem("a"), MakeItem("b"), MakeItem("c")}).ok());
  const int64_t before = store->LastSequence();
  const std::string deletion_rows = "SELECT count(*) FROM deletions";

  ASSERT_TRUE(store->DeleteItems("art", {"a", "b", "zz"}).ok());
  const int64_t deleted = store->LastSequence();
  EXPECT_EQ(testing::QueryInt64(dir.db(), deletion_rows), 2);  // not "zz": it was absent
  StoredItem again = MakeItem("a", 8, 5);
  ASSERT_TRUE(store->PutItems("art", {again}).ok());
  EXPECT_EQ(testing::QueryInt64(dir.db(), deletion_rows), 1);

  Changes changes = ReadChanges(*store, "art", before);
  ASSERT_TRUE(changes.status.ok()) << changes.status;
  ASSERT_EQ(changes.puts.size(), 1u);
  EXPECT_TRUE(SameItem(again, changes.puts[0]));
  EXPECT_THAT(changes.deletes, ElementsAre("b"));
  changes = ReadChanges(*store, "art", deleted);
  EXPECT_THAT(changes.PutIds(), ElementsAre("a"));
  EXPECT_THAT(changes.deletes, IsEmpty());

  // Deleted, put and deleted again: one row, with the latest delete's sequence.
  ASSERT_TRUE(store->DeleteItems("art", {"a"}).ok());
  EXPECT_EQ(testing::QueryInt64(dir.db(), "SELECT seq FROM deletions WHERE id = CAST('a' AS BLOB)"),
            store->LastSequence());
  changes = ReadChanges(*store, "art", before);
  EXPECT_THAT(changes.PutIds(), IsEmpty());
  EXPECT_THAT(changes.deletes, ElementsAre("b", "a"));  // in sequence order
  EXPECT_THAT(ReadChanges(*store, "art", store->LastSequence()).deletes, IsEmpty());

  // Dropping the collection drops its deletions.
  ASSERT_TRUE(store->DropCollection("art").ok());
  EXPECT_EQ(testing::QueryInt64(dir.db(), deletion_rows), 0);
}

TEST(SqliteItemStoreChangesTest, ACallbackErrorStopsTheScanAndCallbacksMayUseTheStore) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  std::vector<StoredItem> items;
  std::vector<std::string> doomed;
  for (int i = 0; i < 600; ++i) items.push_back(MakeItem(absl::StrCat("i", i)));
  for (int i = 0; i < 300; ++i) doomed.push_back(absl::StrCat("i", i));
  ASSERT_TRUE(store->PutItems("art", std::move(items)).ok());
  ASSERT_TRUE(store->DeleteItems("art", doomed).ok());
  // Both kinds span two pages; the puts' page boundary falls inside one sequence.
  Changes all = ReadChanges(*store, "art", 0);
  ASSERT_TRUE(all.status.ok()) << all.status;
  EXPECT_EQ(all.puts.size(), 300u);
  EXPECT_EQ(all.deletes.size(), 300u);

  int puts = 0, deletes = 0;
  absl::Status status = store->ForEachChangeSince(
      "art", 0,
      [&](const StoredItem& item) {
        if (++puts == 3) return absl::CancelledError(absl::StrCat("stop at ", item.id));
        return absl::OkStatus();
      },
      [&](const std::string&) {
        ++deletes;
        return absl::OkStatus();
      });
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(status.message()), HasSubstr("stop at"));
  EXPECT_EQ(puts, 3);
  EXPECT_EQ(deletes, 0);

  // The callbacks run with no lock held: they may read the store.
  puts = deletes = 0;
  status = store->ForEachChangeSince(
      "art", 0,
      [&](const StoredItem& item) {
        ++puts;
        auto hashes = store->GetContentHashes("art", {item.id});
        if (!hashes.ok()) return hashes.status();
        return (*hashes)[0] == item.content_hash ? absl::OkStatus()
                                                 : absl::InternalError("hash differs");
      },
      [&](const std::string& id) {
        if (++deletes == 2) return absl::AbortedError("enough");
        auto got = store->GetItems("art", {id});
        if (!got.ok()) return got.status();
        return (*got)[0].has_value() ? absl::InternalError("deleted item is present")
                                     : absl::OkStatus();
      });
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_EQ(puts, 300);
  EXPECT_EQ(deletes, 2);
}

TEST(SqliteItemStoreChangesTest, DroppingOrCompactingDuringTheScanIsReported) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  std::vector<StoredItem> items;
  for (int i = 0; i < 300; ++i) items.push_back(MakeItem(absl::StrCat("i", i)));
  auto scan = [&](const std::function<absl::Status()>& meddle) {
    bool first = true;
    return store->ForEachChangeSince(
        "art", 0,
        [&](const StoredItem&) {
          if (!first) return absl::OkStatus();
          first = false;
          return meddle();
        },
        [](const std::string&) { return absl::OkStatus(); });
  };

  for (bool recreate : {false, true}) {
    ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
    ASSERT_TRUE(store->PutItems("art", items).ok());  // two pages
    absl::Status status = scan([&] {
      RETRACE_RETURN_IF_ERROR(store->DropCollection("art"));
      return recreate ? store->CreateCollection(TestCollection("art")).status() : absl::OkStatus();
    });
    EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("was dropped"));
    if (recreate) {
      ASSERT_TRUE(store->DropCollection("art").ok());
    }
  }

  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  ASSERT_TRUE(store->PutItems("art", items).ok());
  absl::Status status = scan([&] { return store->CompactDeletions("art", 1); });
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange) << status;
}

TEST(SqliteItemStoreChangesTest, CompactDeletionsRemovesRowsAtOrBelowTheSequenceOnly) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  for (const char* name : {"art", "other"}) {
    ASSERT_TRUE(store->CreateCollection(TestCollection(name)).ok());
    ASSERT_TRUE(store->PutItems(name, {MakeItem("a"), MakeItem("b"), MakeItem("c")}).ok());
  }
  std::vector<int64_t> seqs;
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(store->DeleteItems("art", {id}).ok());
    ASSERT_TRUE(store->DeleteItems("other", {id}).ok());
    seqs.push_back(store->LastSequence() - 1);  // art's delete
  }
  const int64_t last = store->LastSequence();
  auto rows = [&](const std::string& collection) {
    return testing::QueryInt64(dir.db(), absl::StrCat("SELECT count(*) FROM deletions WHERE "
                                                      "collection = CAST('",
                                                      collection, "' AS BLOB)"));
  };

  ASSERT_TRUE(store->CompactDeletions("art", seqs[1]).ok());
  EXPECT_EQ(store->LastSequence(), last);  // no item changed
  EXPECT_EQ(rows("art"), 1);
  EXPECT_EQ(rows("other"), 3);
  EXPECT_THAT(ReadChanges(*store, "art", seqs[1]).deletes, ElementsAre("c"));
  EXPECT_THAT(ReadChanges(*store, "art", seqs[2]).deletes, IsEmpty());
  for (int64_t too_old : {int64_t{0}, seqs[0], seqs[1] - 1}) {
    Changes changes = ReadChanges(*store, "art", too_old);
    EXPECT_EQ(changes.status.code(), absl::StatusCode::kOutOfRange) << too_old;
    EXPECT_THAT(std::string(changes.status.message()), HasSubstr("compacted"));
  }
  EXPECT_TRUE(ReadChanges(*store, "other", 0).status.ok());

  // A lower bound compacts nothing more and does not lower the bound; a future one is refused.
  ASSERT_TRUE(store->CompactDeletions("art", seqs[0]).ok());
  EXPECT_EQ(ReadChanges(*store, "art", seqs[0]).status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(store->CompactDeletions("art", last + 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rows("art"), 1);

  // The bound survives a reopen, and a collection created again starts afresh.
  store.reset();
  store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ReadChanges(*store, "art", seqs[0]).status.code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(store->DropCollection("art").ok());
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  EXPECT_TRUE(ReadChanges(*store, "art", 0).status.ok());
}

TEST(SqliteItemStoreChangesTest, CreatedSeqIsTheCreationsSequenceAndNewAfterDropAndCreate) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  CollectionRecord art = TestCollection("art");
  art.created_seq = 12345;  // output only: ignored
  absl::StatusOr<int64_t> returned = store->CreateCollection(art);
  ASSERT_TRUE(returned.ok()) << returned.status();
  const int64_t first = store->LastSequence();
  EXPECT_EQ(*returned, first);  // CreateCollection returns the created_seq it stamps
  ASSERT_TRUE(store->PutItems("art", {MakeItem("a")}).ok());
  ASSERT_TRUE(store->CreateCollection(TestCollection("other")).ok());
  const int64_t other = store->LastSequence();
  auto created_seqs = [&] {
    std::map<std::string, int64_t> seqs;
    auto list = store->ListCollections();
    EXPECT_TRUE(list.ok()) << list.status();
    if (list.ok()) {
      for (const CollectionRecord& record : *list) seqs[record.name] = record.created_seq;
    }
    return seqs;
  };
  EXPECT_EQ(created_seqs(), (std::map<std::string, int64_t>{{"art", first}, {"other", other}}));

  ASSERT_TRUE(store->DropCollection("art").ok());
  ASSERT_TRUE(store->CreateCollection(art).ok());
  const int64_t second = store->LastSequence();
  EXPECT_GT(second, first);
  EXPECT_EQ(created_seqs(), (std::map<std::string, int64_t>{{"art", second}, {"other", other}}));

  store.reset();
  store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(created_seqs(), (std::map<std::string, int64_t>{{"art", second}, {"other", other}}));
}

TEST(SqliteItemStoreChangesTest, ContentHashesAreStoredAsGivenAndReadBackCheaply) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateCollection(TestCollection("art")).ok());
  const std::vector<uint64_t> hashes = {
      0, 1, uint64_t{1} << 63, std::numeric_limits<uint64_t>::max(), 0xdeadbeefcafebabeull};
  std::vector<StoredItem> items;
  std::vector<std::string> ids;
  for (size_t i = 0; i < hashes.size(); ++i) {
    items.push_back(MakeItem(std::string("h\0", 2) + std::to_string(i)));
    items.back().content_hash = hashes[i];
    ids.push_back(items.back().id);
  }
  ASSERT_TRUE(store->PutItems("art", items).ok());

  // All 64 bits, through every read.
  auto got = store->GetItems("art", ids);
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t i = 0; i < items.size(); ++i) EXPECT_TRUE(SameItem(items[i], *(*got)[i]));
  State state = ReadState(*store, "art");
  Changes changes = ReadChanges(*store, "art", 0);
  ASSERT_EQ(changes.puts.size(), items.size());
  for (const StoredItem& item : changes.puts) EXPECT_TRUE(SameItem(state[item.id], item));
  EXPECT_EQ(testing::QueryInt64(dir.db(), "SELECT min(content_hash) FROM items"),
            std::numeric_limits<int64_t>::min());  // stored as the signed integer, same bits

  // Per id in order; nullopt when absent; repeated ids answered each time.
  std::vector<std::string> asked = {ids[3], "missing", ids[0], ids[3], std::string("h", 1)};
  auto read = store->GetContentHashes("art", asked);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, (std::vector<std::optional<uint64_t>>{hashes[3], std::nullopt, hashes[0],
                                                         hashes[3], std::nullopt}));
  auto none = store->GetContentHashes("art", {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  // An upsert replaces the hash; a delete removes it.
  StoredItem replacement = items[1];
  replacement.content_hash = 42;
  ASSERT_TRUE(store->PutItems("art", {replacement}).ok());
  ASSERT_TRUE(store->DeleteItems("art", {ids[2]}).ok());
  read = store->GetContentHashes("art", {ids[1], ids[2]});
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, (std::vector<std::optional<uint64_t>>{42, std::nullopt}));
}

}  // namespace
}  // namespace retrace::store
