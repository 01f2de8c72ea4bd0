#include "tests/unit/store/store_test_util.h"

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace retrace::store::testing {

ScratchDir::ScratchDir() {
  static std::atomic<int> counter{0};
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  path_ =
      absl::StrCat(::testing::TempDir(), "retrace_store_", info != nullptr ? info->name() : "none",
                   "_", ::getpid(), "_", counter.fetch_add(1));
  std::filesystem::remove_all(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CollectionRecord TestCollection(const std::string& name) {
  CollectionRecord record;
  record.name = name;
  record.shards = 3;
  record.caption_index = "HNSW32";
  record.caption_dim = 8;
  record.clip_model = "clip-test@1";
  record.captioner_model = "captioner-test@2";
  record.image_index = "IVF4,Flat";
  record.image_dim = 12;
  record.image_encoder_model = "encoder-test@3";
  return record;
}

StoredItem MakeItem(const std::string& id, int dim, uint32_t seed) {
  StoredItem item;
  item.id = id;
  item.caption = absl::StrCat("caption of ", absl::CHexEscape(id), " #", seed, "\nsecond line");
  item.attributes["seed"] = std::to_string(seed);
  item.attributes["source"] = absl::StrCat("src/", absl::CHexEscape(id));
  uint32_t state = seed * 2654435761u + static_cast<uint32_t>(std::hash<std::string>{}(id));
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / static_cast<float>(1u << 24) - 0.5f;
  };
  for (int i = 0; i < dim; ++i) item.clip_image.push_back(next());
  for (int i = 0; i < dim; ++i) item.caption_text.push_back(next());
  for (int i = 0; i < dim / 2; ++i) item.image_features.push_back(next());
  item.content_hash = (uint64_t{state} << 32 | seed) ^ 0x8000000000000000ull;
  return item;
}

namespace {

bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

::testing::AssertionResult SameItem(const StoredItem& expected, const StoredItem& actual) {
  if (expected.id != actual.id) {
    return ::testing::AssertionFailure() << "id '" << absl::CHexEscape(actual.id) << "' != '"
                                         << absl::CHexEscape(expected.id) << "'";
  }
  const std::string who = absl::StrCat("item '", absl::CHexEscape(expected.id), "': ");
  if (expected.caption != actual.caption) {
    return ::testing::AssertionFailure() << who << "caption '" << absl::CHexEscape(actual.caption)
                                         << "' != '" << absl::CHexEscape(expected.caption) << "'";
  }
  if (expected.attributes != actual.attributes) {
    return ::testing::AssertionFailure() << who << "attributes differ";
  }
  if (!SameFloats(expected.clip_image, actual.clip_image)) {
    return ::testing::AssertionFailure() << who << "clip_image differs";
  }
  if (!SameFloats(expected.caption_text, actual.caption_text)) {
    return ::testing::AssertionFailure() << who << "caption_text differs";
  }
  if (!SameFloats(expected.image_features, actual.image_features)) {
    return ::testing::AssertionFailure() << who << "image_features differs";
  }
  if (expected.content_hash != actual.content_hash) {
    return ::testing::AssertionFailure()
           << who << "content_hash " << actual.content_hash << " != " << expected.content_hash;
  }
  return ::testing::AssertionSuccess();
}

int64_t QueryInt64(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  int64_t value = -1;
  int rc = sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  sqlite3_stmt* stmt = nullptr;
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    value = sqlite3_column_int64(stmt, 0);
  } else {
    ADD_FAILURE() << sql << ": " << (db != nullptr ? sqlite3_errmsg(db) : "open failed");
  }
  sqlite3_finalize(stmt);
  sqlite3_close_v2(db);
  return value;
}

void ExecSql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    ADD_FAILURE() << sql << ": " << (db != nullptr ? sqlite3_errmsg(db) : "open failed");
  }
  sqlite3_close_v2(db);
}

}  // namespace retrace::store::testing
