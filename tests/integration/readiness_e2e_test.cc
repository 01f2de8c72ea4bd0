// Readiness, end to end against the real server on 127.0.0.1 (demo models): health, `retrace
// health`, unary calls and /readyz say the server is not ready while its models load, and ready
// once they have.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;
using testing::FreePort;
using testing::ListCollections;
using testing::ServerOptions;
using testing::ServerProcess;

TEST(ReadinessTest, NotServingUntilTheModelsAreLoaded) {
  RETRACE_REQUIRE_DEMO_MODELS();
  // A copy of the demo models whose clip/manifest.json is a FIFO: the server blocks reading it
  // until the test writes it, so "still loading" lasts exactly as long as the test wants.
  const std::string dir = testing::NewTempDir("ready");
  const std::string models = dir + "/models";
  for (const auto& entry : fs::recursive_directory_iterator(FixtureDir() + "/demo")) {
    const fs::path relative = fs::relative(entry.path(), FixtureDir() + "/demo");
    if (entry.is_directory()) {
      fs::create_directories(fs::path(models) / relative);
    } else if (relative != fs::path("clip/manifest.json")) {
      fs::create_symlink(fs::absolute(entry.path()), fs::path(models) / relative);
    }
  }
  const std::string fifo = models + "/clip/manifest.json";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const int metrics_port = FreePort();
  ServerOptions options{
      models, dir + "/data", {"--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port)}};
  options.wait_until_serving = false;
  ServerProcess server(options);
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();

  // EXPECT, not ASSERT, until the FIFO is written: the server cannot stop while it blocks.
  EXPECT_EQ(server.HealthStatus(), "NOT_SERVING");
  // `retrace health` (the container image's HEALTHCHECK) fails while the server loads.
  const std::string health_command =
      absl::StrCat(testing::CliBinary(), " health --server ", server.address(), " >/dev/null");
  int health = std::system(health_command.c_str());
  EXPECT_TRUE(WIFEXITED(health) && WEXITSTATUS(health) == 1) << health;
  grpc::Status starting = ListCollections(server.channel());
  EXPECT_EQ(starting.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(starting.error_message(), "starting")) << starting.error_message();
  httplib::Client http("127.0.0.1", metrics_port);
  auto readyz = http.Get("/readyz");
  EXPECT_TRUE(readyz && readyz->status == 503);

  {
    std::ofstream writer(fifo, std::ios::binary);  // opens once the server reads
    writer << testing::ReadFileBytes(FixtureDir() + "/demo/clip/manifest.json");
  }
  ASSERT_TRUE(server.WaitUntilServing().ok()) << server.LogTail();
  EXPECT_TRUE(ListCollections(server.channel()).ok());
  health = std::system(health_command.c_str());
  EXPECT_TRUE(WIFEXITED(health) && WEXITSTATUS(health) == 0) << health;
  readyz = http.Get("/readyz");
  ASSERT_TRUE(readyz);
  EXPECT_EQ(readyz->status, 200);
}

}  // namespace
}  // namespace retrace
