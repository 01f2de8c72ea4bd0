// `retrace bench` against the real server and the oracle models: a few seconds of every kind of
// call, closed loop and open loop, with no errors, a report that parses, and a collection that
// ends as it began — deletes touched only the items the run indexed.
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

using testing::CliResult;

class BenchE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/clip/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir();
    }
    server_ = std::make_unique<testing::ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/oracle", testing::NewTempDir("bench"), {}});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    scratch_ = testing::NewTempDir("bench-out");
    images_ = FixtureDir() + "/images";
    for (const auto& entry : fs::recursive_directory_iterator(images_)) {
      if (entry.is_regular_file()) {
        seeded_ids_.push_back(fs::relative(entry.path(), images_).generic_string());
      }
    }
    std::sort(seeded_ids_.begin(), seeded_ids_.end());
    ASSERT_EQ(Run("collections create shapes --shards 2").exit_code, 0);
    CliResult r = Run("index --collection shapes " + images_);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  CliResult Run(const std::string& args) { return testing::RunCli(server_->address(), args, scratch_); }

  // ExpectSeedItemsUntouched: the collection holds exactly the items indexed in SetUp.
  void ExpectSeedItemsUntouched() {
    CliResult r = Run("--json collections describe shapes");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(std::stoll(nlohmann::json::parse(r.out)["item_count"].get<std::string>()),
              static_cast<int64_t>(seeded_ids_.size()))
        << r.out;
    r = Run("get --collection shapes " + absl::StrJoin(seeded_ids_, " "));
    EXPECT_EQ(r.exit_code, 0) << "every seed item is still stored: " << r.out << r.err;
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::string scratch_;
  std::string images_;
  std::vector<std::string> seeded_ids_;
};

TEST_F(BenchE2eTest, ClosedLoopOfEveryKindWithoutErrors) {
  ASSERT_EQ(seeded_ids_.size(), 96u);
  CliResult r = Run("--json bench --collection shapes --images " + images_ +
                    " --concurrency 2 --duration 3 --warmup 0.5 --max-error-rate 0"
                    " --mix search-image=3,search-text=2,search-embedding=1,index=2,delete=2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const nlohmann::json report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["load"]["model"], "closed");
  EXPECT_EQ(report["embedding_source"], "stored");
  for (const char* kind : {"search-image", "search-text", "search-embedding", "index", "delete"}) {
    const nlohmann::json& figures = report["kinds"][kind];
    EXPECT_GT(figures["calls"].get<int64_t>(), 0) << kind << ": " << r.out;
    EXPECT_EQ(figures["errors"], 0) << kind << ": " << figures["errors_by_code"].dump();
    EXPECT_GT(figures["latency_ms"]["p50"].get<double>(), 0) << kind;
  }
  EXPECT_EQ(report["total"]["errors"], 0);
  EXPECT_GT(report["total"]["qps"].get<double>(), 0);
  EXPECT_GE(report["cleanup_deleted"].get<int64_t>(), 0);
  // Every item the run indexed was deleted, during the run or by its cleanup.
  ExpectSeedItemsUntouched();
}

TEST_F(BenchE2eTest, OpenLoopProvenanceAndHybridTable) {
  CliResult r = Run("bench --collection shapes --images " + images_ +
                    " --rate 15 --duration 1.5 --mode provenance --query-captions --top-k 5"
                    " --mix search-image=1,search-text=1,search-embedding=1,index=1,delete=1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("open loop at 15 calls/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("error rate 0.00% (0 failed, 0 dropped)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("embedding queries: stored items' embeddings"), std::string::npos) << r.out;

  r = Run("--json bench --collection shapes --images " + images_ +
          " --rate 15 --duration 1.5 --mode hybrid --mix search-image=1,search-embedding=1"
          " --max-error-rate 0");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["total"]["calls"], 23) << "due at 0, 1/15, ..., 22/15 s";
  ExpectSeedItemsUntouched();
}

}  // namespace
}  // namespace retrace
