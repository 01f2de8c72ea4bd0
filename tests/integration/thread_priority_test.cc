// The server names its threads by what they do and runs the bulk lane's threads (the Index
// workers and the captioner's batcher threads) at threads.bulk_nice above its own nice value, so
// that a search's threads run first on a saturated machine (BENCHMARKS.md, "Lanes"). Read from
// the real server's /proc/PID/task: each thread's name and nice value.
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;
using testing::ServerOptions;
using testing::ServerProcess;

// ThreadNices: each thread name of process `pid` with the nice values of its threads.
std::map<std::string, std::vector<int>> ThreadNices(pid_t pid) {
  std::map<std::string, std::vector<int>> nices;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::string name, stat;
    std::getline(std::ifstream(task.path() / "comm"), name);
    std::getline(std::ifstream(task.path() / "stat"), stat);
    // Fields after the name, which is in parentheses and may hold spaces: state is field 3 and
    // nice field 19, so nice is the 17th word after ')'.
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string word;
    for (int i = 0; i < 17 && rest >> word; ++i) {
    }
    nices[name].push_back(std::stoi(word));
  }
  return nices;
}

class ThreadPriorityTest : public ::testing::Test {
 protected:
  void SetUp() override { RETRACE_REQUIRE_DEMO_MODELS(); }

  // Start runs the server with `config`; it inherits this process's nice value.
  std::unique_ptr<ServerProcess> Start(const std::string& config) {
    const std::string dir = testing::NewTempDir("thread-priority");
    std::ofstream(dir + "/config.txtpb") << config;
    auto server = std::make_unique<ServerProcess>(
        ServerOptions{FixtureDir() + "/demo", dir + "/data", {"--config", dir + "/config.txtpb"}});
    return server;
  }

  const int base_ = getpriority(PRIO_PROCESS, 0);  // ctest may itself run under nice
};

TEST_F(ThreadPriorityTest, TheBulkLaneRunsLowerAndEveryOtherThreadAsTheServer) {
  auto server = Start("threads { index_workers: 3 bulk_nice: 7 }");
  ASSERT_TRUE(server->Start().ok()) << server->LogTail();
  const auto nices = ThreadNices(server->pid());
  const int bulk = std::min(19, base_ + 7);
  EXPECT_EQ(nices.at("retrace-index"), std::vector<int>(3, bulk));
  // ServerProcess gives --workers 2.
  EXPECT_EQ(nices.at("retrace-worker"), std::vector<int>(2, base_));
  ASSERT_FALSE(nices.at("batch-captioner").empty());
  for (int n : nices.at("batch-captioner")) EXPECT_EQ(n, bulk);
  // The models and the search that searches share run as the server does.
  for (const char* shared : {"batch-clip-img", "batch-clip-text", "batch-img-enc", "batch-search"}) {
    ASSERT_TRUE(nices.count(shared)) << shared;
    for (int n : nices.at(shared)) EXPECT_EQ(n, base_) << shared;
  }
  EXPECT_TRUE(absl::StrContains(server->Log(), "3 index workers (nice +7)")) << server->LogTail();
}

TEST_F(ThreadPriorityTest, ABulkNiceOfZeroKeepsEveryThreadAtTheServersNice) {
  auto server = Start("threads { index_workers: 2 bulk_nice: 0 }");
  ASSERT_TRUE(server->Start().ok()) << server->LogTail();
  for (const auto& [name, nices] : ThreadNices(server->pid())) {
    for (int n : nices) EXPECT_EQ(n, base_) << name;
  }
}

TEST_F(ThreadPriorityTest, ABulkNiceOutOfRangeStopsTheStartNamingTheSetting) {
  auto server = Start("threads { bulk_nice: 25 }");
  EXPECT_FALSE(server->Start().ok());
  EXPECT_TRUE(absl::StrContains(server->Log(), "threads.bulk_nice = 25 is not in 0..19"))
      << server->LogTail();
}

}  // namespace
}  // namespace retrace
