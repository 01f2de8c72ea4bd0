// Tests of `retrace eval` (client/cli/eval_command.cc): the subcommand dispatcher's usage errors
// and `eval build-similar` end to end on references drawn here. No server is involved.
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/cli/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct CliRun {
  int status;
  std::string out;
  std::string err;
};

CliRun RunWith(const std::vector<std::string>& args, bool stderr_is_terminal = false) {
  std::ostringstream out, err;
  // An unreachable server: eval must not need one.
  const int status = RunCli(args, "127.0.0.1:1", stderr_is_terminal, out, err);
  return {status, out.str(), err.str()};
}

class EvalCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(refs());
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string refs() const { return (root_ / "refs").string(); }
  std::string out() const { return (root_ / "out").string(); }

  void WriteRef(const std::string& name, int variant) {
    cv::Mat img(48, 64, CV_8UC3, cv::Scalar(40 * variant, 100, 200));
    cv::circle(img, cv::Point(32, 24), 12, cv::Scalar(255, 255, 255), cv::FILLED);
    ASSERT_TRUE(cv::imwrite((root_ / "refs" / name).string(), img));
  }

  fs::path root_;
};

TEST_F(EvalCommandTest, HelpAndUsageErrors) {
  CliRun help = RunWith({"eval", "--help"});
  EXPECT_EQ(help.status, kExitOk);
  EXPECT_THAT(help.out, StartsWith("usage: retrace eval SUBCOMMAND"));
  EXPECT_THAT(help.out, HasSubstr("build-similar"));
  CliRun sub_help = RunWith({"eval", "build-similar", "--help"});
  EXPECT_EQ(sub_help.status, kExitOk);
  EXPECT_THAT(sub_help.out, StartsWith("usage: retrace eval build-similar --refs DIR --out DIR"));
  EXPECT_THAT(RunWith({"--help"}).out, HasSubstr("eval build-similar"));

  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"eval"}, "retrace: eval: missing SUBCOMMAND"},
      {{"eval", "nope"}, "retrace: eval: unknown subcommand 'nope'"},
      {{"eval", "cm"}, "retrace: eval cm: missing --data"},
      {{"eval", "provenance", "--data", "x"}, "--data and --refs are required"},
      {{"eval", "build-similar"}, "retrace: eval build-similar: missing --refs"},
      {{"eval", "build-similar", "--refs", "r"}, "missing --out"},
      {{"eval", "build-similar", "--refs", "r", "--out", "o", "--per-ref", "0"},
       "--per-ref: expected an integer from 1 to 20"},
      {{"eval", "build-similar", "--refs", "r", "--out", "o", "--per-ref", "21"}, "--per-ref"},
      {{"eval", "build-similar", "--refs", "r", "--out", "o", "--seed", "-1"}, "--seed"},
      {{"eval", "build-similar", "--refs", "r", "--out", "o", "extra"},
       "unexpected argument 'extra'"},
      {{"eval", "build-similar", "--ref", "r"}, "unknown option --ref"},
  };
  for (const Case& c : cases) {
    CliRun run = RunWith(c.args);
    EXPECT_EQ(run.status, kExitUsage) << c.args.back();
    EXPECT_THAT(run.err, HasSubstr(c.error)) << c.args.back();
    EXPECT_THAT(run.err, HasSubstr("usage: retrace eval")) << c.args.back();
  }
}

TEST_F(EvalCommandTest, BuildsTheSetAndReportsSkippedFiles) {
  WriteRef("a.png", 1);
  WriteRef("b.png", 2);
  std::ofstream(root_ / "refs" / "broken.png") << "garbage";
  CliRun run = RunWith(
      {"eval", "build-similar", "--refs", refs(), "--out", out(), "--seed", "9", "--per-ref", "3"});
  EXPECT_EQ(run.status, kExitOk) << run.err;
  EXPECT_THAT(run.out, HasSubstr("built 6 queries from 2 references"));
  EXPECT_THAT(run.err, HasSubstr("retrace: eval build-similar: skipped "));
  EXPECT_THAT(run.err, HasSubstr("broken.png"));
  EXPECT_TRUE(fs::exists(fs::path(out()) / "ground_truth.csv"));
  size_t queries = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(out()) / "queries")) {
    (void)entry;
    ++queries;
  }
  EXPECT_EQ(queries, 6u);
}

TEST_F(EvalCommandTest, ProgressOnATerminalAndJsonSummary) {
  WriteRef("a.png", 1);
  CliRun run = RunWith({"eval", "build-similar", "--refs", refs(), "--out", out()},
                       /*stderr_is_terminal=*/true);
  EXPECT_EQ(run.status, kExitOk) << run.err;
  EXPECT_THAT(run.err, HasSubstr("\rbuild-similar: 1/1 references"));
  EXPECT_THAT(run.out, HasSubstr("built 5 queries from 1 references"));

  WriteRef("b.png", 2);
  std::ofstream(root_ / "refs" / "broken.png") << "garbage";
  CliRun json = RunWith(
      {"--json", "eval", "build-similar", "--refs", refs(), "--out", out(), "--per-ref", "2"},
      /*stderr_is_terminal=*/true);
  EXPECT_EQ(json.status, kExitOk) << json.err;
  EXPECT_THAT(json.err, Not(HasSubstr("\rbuild-similar")));
  EXPECT_THAT(json.out, HasSubstr("\"queries\": 4"));
  EXPECT_THAT(json.out, HasSubstr("\"references\": 2"));
  EXPECT_THAT(json.out, HasSubstr("broken.png"));
}

TEST_F(EvalCommandTest, FailsWhenNothingCanBeBuilt) {
  std::ofstream(root_ / "refs" / "broken.jpg") << "garbage";
  CliRun run = RunWith({"eval", "build-similar", "--refs", refs(), "--out", out()});
  EXPECT_EQ(run.status, kExitFailed);
  EXPECT_THAT(run.err, HasSubstr("nothing built"));

  // A folder that is not a previous build is refused.
  WriteRef("a.png", 1);
  fs::create_directories(root_ / "foreign");
  std::ofstream(root_ / "foreign" / "keep.txt") << "x";
  CliRun refused =
      RunWith({"eval", "build-similar", "--refs", refs(), "--out", (root_ / "foreign").string()});
  EXPECT_EQ(refused.status, kExitFailed);
  EXPECT_THAT(refused.err, HasSubstr("not empty"));
}

}  // namespace
}  // namespace retrace::cli
