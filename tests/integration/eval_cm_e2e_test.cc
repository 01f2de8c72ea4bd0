// The Caption-Matching evaluation protocol (client/eval/cm_protocol.h) through the real server:
// on oracle data it reports what the oracle implies, on a hand-built confusion it reports the
// tie-aware values computed below, and on pacs-mini it runs all 12 domain pairs; in every case
// the saved rankings reproduce the reported numbers. The demo models' numbers are not retrieval
// quality and are not checked as such.
#include <filesystem>
#include <fstream>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/eval/cm_protocol.h"
#include "client/eval/html_report.h"
#include "core/eval/domain_dataset.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"
#include "tests/support/shared_data.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

class EvalCmE2eTest : public ::testing::Test {
 protected:
  void Start(const std::string& models) {
    if (!fs::exists(FixtureDir() + "/" + models + "/clip/model.pt")) {
      GTEST_SKIP() << models << " models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    server_ = std::make_unique<testing::ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/" + models, testing::NewTempDir("eval"), {}});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    client::ClientOptions options;
    options.server = server_->address();
    client_ = client::RetraceClient::Connect(options);
    out_ = testing::NewTempDir("eval-out");
  }

  void ExpectRecomputedEqual(const eval::CmReport& report, const std::vector<int>& ks) {
    auto again = eval::RecomputeCmReport(out_, ks);
    ASSERT_TRUE(again.ok()) << again.status();
    ASSERT_EQ(again->pairs.size(), report.pairs.size());
    for (const auto& [name, value] : report.average) {
      EXPECT_NEAR(again->average.at(name), value, 1e-12) << name;
    }
    // The pairs come back sorted by file name; match them by name.
    for (const eval::PairResult& p : report.pairs) {
      bool found = false;
      for (const eval::PairResult& q : again->pairs) {
        if (q.query_domain != p.query_domain || q.gallery_domain != p.gallery_domain) continue;
        found = true;
        EXPECT_EQ(q.queries, p.queries);
        for (const auto& [name, value] : p.metrics) EXPECT_NEAR(q.metrics.at(name), value, 1e-12);
      }
      EXPECT_TRUE(found) << p.query_domain << "-" << p.gallery_domain;
    }
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::RetraceClient> client_;
  std::string out_;
};

TEST_F(EvalCmE2eTest, OracleDataScoresPerfectlyOnEveryPair) {
  Start("oracle");
  auto data = eval::ReadDomainDataset(FixtureDir() + "/images");
  ASSERT_TRUE(data.ok()) << data.status();
  eval::CmOptions options;
  options.out_dir = out_;
  options.precision_ks = {1, 3};
  auto report = eval::RunCmProtocol(*client_, *data, options);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->pairs.size(), 12u);
  for (const eval::PairResult& p : report->pairs) {
    EXPECT_EQ(p.queries, 24);  // 8 classes x 3 images
    EXPECT_NEAR(p.metrics.at("P@1"), 1.0, 1e-12) << p.query_domain << "-" << p.gallery_domain;
    EXPECT_NEAR(p.metrics.at("P@3"), 1.0, 1e-12);
    EXPECT_NEAR(p.metrics.at("mAP@All"), 1.0, 1e-12);
    EXPECT_FALSE(p.truncated);
  }
  ExpectRecomputedEqual(*report, options.precision_ks);
  const std::string table = eval::CmMarkdownTable(*report);
  EXPECT_NE(table.find("| mAP@All |"), std::string::npos) << table;
  EXPECT_NE(table.find("100.0 |"), std::string::npos) << table;
  ASSERT_TRUE(eval::WriteCmReport(*report, out_).ok());
  EXPECT_TRUE(fs::exists(out_ + "/results.json"));
  EXPECT_TRUE(fs::exists(out_ + "/results.md"));
}

// Counts non-overlapping occurrences of `needle`.
int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

TEST_F(EvalCmE2eTest, TheHtmlReportRendersEveryImageInAHeadlessBrowser) {
  Start("oracle");
  const std::string chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium)) {
    GTEST_SKIP() << "Debian's chromium package is not installed (tools/install_deps.sh installs it)";
  }
  auto data = eval::ReadDomainDataset(FixtureDir() + "/images");
  ASSERT_TRUE(data.ok()) << data.status();
  eval::CmOptions options;
  options.out_dir = out_;
  options.pairs = {{"photo", "sketch"}, {"sketch", "photo"}};
  auto report = eval::RunCmProtocol(*client_, *data, options);
  ASSERT_TRUE(report.ok()) << report.status();
  int shown = 0;
  ASSERT_TRUE(eval::WriteCmHtmlReport(*report, out_, data->root, {3, 4}, &shown).ok());
  EXPECT_EQ(shown, 2 * 3 * (1 + 4));
  const std::string html = testing::ReadFileBytes(out_ + "/report.html");
  // Oracle: each query's 3 same-class gallery images come first (green), the 4th hit is wrong.
  EXPECT_EQ(Count(html, "class=\"hit correct\""), 2 * 3 * 3);
  EXPECT_EQ(Count(html, "class=\"hit\""), 2 * 3 * 1);

  const std::string dom = out_ + "/dom.html";
  const std::string command = absl::StrCat(
      chromium, " --headless --no-sandbox --disable-gpu --allow-file-access-from-files ",
      "--virtual-time-budget=15000 --dump-dom file://", fs::absolute(out_ + "/report.html").string(),
      " > ", dom, " 2>/dev/null");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const std::string rendered = testing::ReadFileBytes(dom);
  std::smatch match;
  ASSERT_TRUE(std::regex_search(rendered, match, std::regex("data-images-loaded=\"(\\d+)\"")))
      << rendered.substr(0, 2000);
  EXPECT_EQ(std::stoi(match[1].str()), shown) << "images that did not load in Chromium";
}

TEST_F(EvalCmE2eTest, AControlledConfusionGivesTheHandComputedMap) {
  Start("oracle");
  // Gallery B: two dogs under dog/ and two more dogs filed under cat/. The oracle captions all
  // four "a picture of a dog", so every query scores them exactly equal: a 4-way tie holding 2
  // relevant items, for dog and cat queries alike. Tie-aware AP over the 4!/(2!2!) orders:
  //   (1/2) * [ (2/4)(1)/1 + (2/4)(1 + 1/3)/2 + (2/4)(1 + 2/3)/3 + (2/4)(1 + 3/3)/4 ]
  //   = (1/2) * [ 1/2 + 1/3 + 5/18 + 1/4 ] = 49/72.
  // P@1 = 2/4; P@5 = 2/5 (k above the gallery still divides by k).
  const std::string root = testing::NewTempDir("confusion");
  auto copy = [&](const std::string& from, const std::string& to) {
    fs::create_directories(fs::path(root + "/" + to).parent_path());
    fs::copy_file(FixtureDir() + "/images/" + from, root + "/" + to);
  };
  copy("photo/dog/dog_0.png", "A/dog/d0.png");
  copy("photo/dog/dog_1.png", "A/dog/d1.png");
  copy("photo/cat/cat_0.png", "A/cat/c0.png");
  copy("photo/cat/cat_1.png", "A/cat/c1.png");
  copy("sketch/dog/dog_0.png", "B/dog/d0.png");
  copy("sketch/dog/dog_1.png", "B/dog/d1.png");
  copy("painting/dog/dog_0.png", "B/cat/wrong0.png");
  copy("painting/dog/dog_1.png", "B/cat/wrong1.png");
  auto data = eval::ReadDomainDataset(root);
  ASSERT_TRUE(data.ok()) << data.status();
  eval::CmOptions options;
  options.out_dir = out_;
  options.pairs = {{"A", "B"}};
  options.precision_ks = {1, 5};
  auto report = eval::RunCmProtocol(*client_, *data, options);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->pairs.size(), 1u);
  const eval::PairResult& p = report->pairs[0];
  EXPECT_EQ(p.queries, 4);
  EXPECT_NEAR(p.metrics.at("P@1"), 0.5, 1e-9);
  EXPECT_NEAR(p.metrics.at("P@5"), 0.4, 1e-9);
  EXPECT_NEAR(p.metrics.at("mAP@All"), 49.0 / 72, 1e-6);
  ExpectRecomputedEqual(*report, options.precision_ks);
}

TEST_F(EvalCmE2eTest, BadOptionsNameTheField) {
  Start("oracle");
  auto data = eval::ReadDomainDataset(FixtureDir() + "/images");
  ASSERT_TRUE(data.ok()) << data.status();
  eval::CmOptions options;
  options.out_dir = out_;
  options.pairs = {{"photo", "nowhere"}};
  auto unknown = eval::RunCmProtocol(*client_, *data, options);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("nowhere"), std::string::npos);
  options.pairs = {{"photo", "photo"}};
  EXPECT_EQ(eval::RunCmProtocol(*client_, *data, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.pairs = {};
  options.precision_ks = {0};
  EXPECT_EQ(eval::RunCmProtocol(*client_, *data, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EvalCmE2eTest, PacsMiniRunsAllTwelvePairsAndTheRankingsReproduceThem) {
  RETRACE_REQUIRE_SHARED_DATA("pacs-mini");
  Start("demo");
  auto data = eval::ReadDomainDataset(retrace::testing::SharedDataPath("pacs-mini"));
  ASSERT_TRUE(data.ok()) << data.status();
  eval::CmOptions options;
  options.out_dir = out_;
  auto report = eval::RunCmProtocol(*client_, *data, options);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->pairs.size(), 12u);
  int queries = 0;
  for (const eval::PairResult& p : report->pairs) queries += p.queries;
  EXPECT_EQ(queries, 3 * 224);  // every image queries the three other domains
  ExpectRecomputedEqual(*report, options.precision_ks);
}

}  // namespace
}  // namespace retrace
