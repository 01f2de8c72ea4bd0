// store_test_util.h — helpers shared by the item-store tests: a fresh directory per test,
// deterministic items, byte-exact comparison, and direct SQLite access to the store's file.
//
// Thread-safety: ScratchDir is for one thread; the free functions are thread-safe.
//
//   ScratchDir dir;  // removed when it goes out of scope
//   auto store = SqliteItemStore::Open(dir.path());
#ifndef RETRACE_TESTS_UNIT_STORE_STORE_TEST_UTIL_H_
#define RETRACE_TESTS_UNIT_STORE_STORE_TEST_UTIL_H_

#include <cstdint>
#include <string>

#include "core/store/item_store.h"
#include "gtest/gtest.h"

namespace retrace::store::testing {

// ScratchDir is a directory path unique to this process and test, under ::testing::TempDir().
// It does not exist at first (the store creates it) and is removed recursively on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir();

  // path returns the directory's path.
  const std::string& path() const { return path_; }
  // db returns the path of the store's database file in it.
  std::string db() const { return path_ + "/retrace.db"; }

 private:
  std::string path_;
};

// TestCollection returns a collection record named `name` with every field set.
CollectionRecord TestCollection(const std::string& name);

// MakeItem returns an item with id `id` whose caption, attributes, two `dim`-float embeddings
// and content hash (all 64 bits in use) are a function of (id, seed).
StoredItem MakeItem(const std::string& id, int dim = 8, uint32_t seed = 0);

// SameItem reports whether two items are equal field by field, comparing embeddings bytewise
// (so NaN payloads and -0.0 count), explaining the first difference on failure.
::testing::AssertionResult SameItem(const StoredItem& expected, const StoredItem& actual);

// QueryInt64 opens `db_path` with SQLite directly, runs `sql` and returns its first row's first
// column as an integer; fails the test (and returns -1) on any error.
int64_t QueryInt64(const std::string& db_path, const std::string& sql);

// ExecSql opens `db_path` with SQLite directly and runs `sql`; fails the test on any error.
void ExecSql(const std::string& db_path, const std::string& sql);

}  // namespace retrace::store::testing

#endif  // RETRACE_TESTS_UNIT_STORE_STORE_TEST_UTIL_H_
