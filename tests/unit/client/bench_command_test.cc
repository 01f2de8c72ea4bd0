// Tests of `retrace bench` (client/cli/bench_command.cc): usage errors without a server, and
// short runs against the in-process fake service (table, JSON, exit statuses).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "client/cli/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/client/fake_retrace_service.h"

namespace retrace::cli {
namespace {

namespace fs = std::filesystem;
using ::retrace::testing::FakeRetraceServer;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct CliRun {
  int status;
  std::string out;
  std::string err;
};

CliRun RunWith(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int status = RunCli(args, "", /*stderr_is_terminal=*/false, out, err);
  return {status, out.str(), err.str()};
}

TEST(BenchCommandTest, HelpAndUsageErrors) {
  CliRun help = RunWith({"bench", "--help"});
  EXPECT_EQ(help.status, kExitOk);
  EXPECT_THAT(help.out, StartsWith("usage: retrace bench"));
  EXPECT_THAT(help.out,
              HasSubstr("search-image=6,search-text=2,search-embedding=1,index=1,delete=1"));
  EXPECT_THAT(RunWith({"--help"}).out, HasSubstr("bench --collection NAME"));

  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"bench"}, "retrace: bench: missing --collection"},
      {{"bench", "--collection", "c", "--mix", "search-text=1,reindex=2"},
       "unknown kind 'reindex'"},
      {{"bench", "--collection", "c", "--mix", "search-text=-1"},
       "the weight of 'search-text' must be a number >= 0, got '-1'"},
      {{"bench", "--collection", "c", "--mix", "search-text=1", "--rate", "5", "--concurrency",
        "2"},
       "not both"},
      {{"bench", "--collection", "c", "--mix", "search-text=1", "--max-outstanding", "5"},
       "--max-outstanding goes with --rate"},
      {{"bench", "--collection", "c", "--mix", "search-text=1", "--rate", "0"}, "--rate"},
      {{"bench", "--collection", "c", "--mix", "search-text=1", "--concurrency", "0"},
       "--concurrency: expected an integer from 1"},
      {{"bench", "--collection", "c", "--mix", "search-text=1", "--duration", "0"},
       "--duration: expected a number of seconds greater than 0"},
      {{"bench", "--collection", "c", "--mix", "search-text=1", "--mode", "fast"},
       "--mode: expected caption-match, provenance or hybrid, got 'fast'"},
      {{"bench", "--collection", "c", "--mix", "search-text=1", "--max-error-rate", "5"},
       "--max-error-rate: expected a number from 0 to 1"},
      {{"bench", "--collection", "c"}, "--images PATH is needed by the mix"},
      {{"bench", "--collection", "c", "--mix", "index=1"}, "--images PATH is needed"},
      {{"bench", "--collection", "c", "extra"}, "unexpected argument 'extra'"},
  };
  for (const Case& c : cases) {
    CliRun run = RunWith(c.args);
    EXPECT_EQ(run.status, kExitUsage) << c.args.back() << ": " << run.err;
    EXPECT_THAT(run.err, HasSubstr(c.error)) << run.err;
  }
}

class BenchAgainstFakeTest : public ::testing::Test {
 protected:
  CliRun Bench(std::vector<std::string> args, bool json = false) {
    std::vector<std::string> all = {"--server", server_.address()};
    if (json) all.push_back("--json");
    all.push_back("bench");
    all.insert(all.end(), args.begin(), args.end());
    return RunWith(all);
  }

  FakeRetraceServer server_;
};

TEST_F(BenchAgainstFakeTest, ClosedLoopPrintsATablePerKind) {
  const fs::path images = fs::path(::testing::TempDir()) / "bench-images";
  fs::create_directories(images / "sub");
  for (const char* name : {"a.png", "sub/b.jpg"}) std::ofstream(images / name) << "not decoded";
  std::ofstream(images / "notes.txt") << "skipped";
  CliRun run = Bench({"--collection", "c", "--images", images.string(), "--mix",
                      "search-image=2,search-text=1,index=1,delete=1", "--duration", "0.5",
                      "--concurrency", "2"});
  ASSERT_EQ(run.status, kExitOk) << run.out << run.err;
  EXPECT_THAT(run.out, StartsWith("closed loop, concurrency 2, 0.5 s measured"));
  for (const char* line : {"\nkind ", "\nsearch-image ", "\nsearch-text ", "\nindex ", "\ndelete ",
                           "\ntotal ", "error rate 0.00%", "cleanup: deleted"}) {
    EXPECT_THAT(run.out, HasSubstr(line)) << run.out;
  }
  EXPECT_THAT(run.out, HasSubstr("p99 ms")) << run.out;
}

TEST_F(BenchAgainstFakeTest, OpenLoopJson) {
  server_.service().set_search_delay(std::chrono::milliseconds(2));
  const fs::path texts = fs::path(::testing::TempDir()) / "bench-texts.txt";
  std::ofstream(texts) << "a dog\n\n  a cat  \n";
  CliRun run = Bench({"--collection", "c", "--mix", "search-text=1", "--rate", "40", "--duration",
                      "0.5", "--warmup", "0.25", "--texts", texts.string()},
                     /*json=*/true);
  ASSERT_EQ(run.status, kExitOk) << run.out << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  EXPECT_EQ(report["load"]["model"], "open");
  EXPECT_EQ(report["load"]["rate"], 40.0);
  EXPECT_EQ(report["load"]["max_outstanding"], 64);
  EXPECT_EQ(report["mix"], "search-text=1");
  EXPECT_EQ(report["mode"], "caption-match");
  const nlohmann::json& text = report["kinds"]["search-text"];
  EXPECT_EQ(text["calls"], 20);  // due at 250, 275, ..., 725 ms
  EXPECT_EQ(text["errors"], 0);
  EXPECT_EQ(report["warmup_calls"], 10);
  EXPECT_EQ(report["total"]["calls"], 20);
  EXPECT_DOUBLE_EQ(report["total"]["qps"].get<double>(), 40.0);
  EXPECT_GE(text["latency_ms"]["p50"].get<double>(), 2.0);
  EXPECT_LE(text["latency_ms"]["p50"].get<double>(), text["latency_ms"]["p99"].get<double>());
  EXPECT_EQ(report["kinds"].size(), 1u) << "only the kinds of the mix";
  ASSERT_EQ(report["timeline"].size(), 1u) << "a 0.5 s window has one second";
  EXPECT_EQ(report["timeline"][0]["calls"], 20);
  const std::string last_query = server_.service().last_search().text();
  EXPECT_TRUE(last_query == "a dog" || last_query == "a cat") << last_query;
}

TEST_F(BenchAgainstFakeTest, ErrorsAreReportedAndTheRateCanFailTheRun) {
  // The fake answers UNIMPLEMENTED to every provenance search.
  std::vector<std::string> args = {"--collection", "c",          "--mix", "search-text=1", "--mode",
                                   "provenance",   "--duration", "0.3",   "--concurrency", "1"};
  CliRun run = Bench(args);
  ASSERT_EQ(run.status, kExitOk) << "a run with errors still completed: " << run.err;
  EXPECT_THAT(run.out, HasSubstr("UNIMPLEMENTED")) << run.out;
  EXPECT_THAT(run.out, HasSubstr("mode: only CAPTION_MATCH for now")) << run.out;
  EXPECT_THAT(run.out, HasSubstr("error rate 100.00%")) << run.out;

  args.insert(args.end(), {"--max-error-rate", "0.5"});
  run = Bench(args, /*json=*/true);
  EXPECT_EQ(run.status, kExitErrorRate) << run.err;
  EXPECT_THAT(run.err, HasSubstr("over --max-error-rate 50%")) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  EXPECT_EQ(report["error_rate"], 1.0);
  EXPECT_EQ(report["total"]["errors_by_code"][0]["code"], "UNIMPLEMENTED");
}

TEST_F(BenchAgainstFakeTest, SetUpFailuresUseTheUsualExitStatuses) {
  CliRun run = Bench({"--collection", "missing", "--mix", "search-text=1", "--duration", "0.2"});
  EXPECT_EQ(run.status, kExitFailed);
  EXPECT_THAT(run.err, HasSubstr("retrace: bench: NOT_FOUND")) << run.err;
  run = Bench({"--collection", "c", "--mix", "search-embedding=1", "--duration", "0.2"});
  EXPECT_EQ(run.status, kExitFailed);
  EXPECT_THAT(run.err, HasSubstr("reports no caption_dim")) << run.err;
  run = Bench({"--collection", "c", "--mix", "index=1", "--images", "/no/such/dir"});
  EXPECT_EQ(run.status, kExitFailed);
  EXPECT_THAT(run.err, HasSubstr("/no/such/dir")) << run.err;
  run = RunWith({"--server", "127.0.0.1:1", "--timeout", "2", "bench", "--collection", "c", "--mix",
                 "search-text=1"});
  EXPECT_EQ(run.status, kExitUnavailable) << run.err;
}

}  // namespace
}  // namespace retrace::cli
