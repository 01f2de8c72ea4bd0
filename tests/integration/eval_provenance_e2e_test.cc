// The provenance evaluation protocol (client/eval/provenance_protocol.h) through the real server
// with oracle models: JPEG copies of references must find their reference first by the image
// encoder's features (which see appearance), while CLIP's oracle features see only the class;
// the saved rankings reproduce every number.
#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "client/eval/html_report.h"
#include "client/eval/provenance_protocol.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

class EvalProvenanceE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/image_encoder/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    server_ = std::make_unique<testing::ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/oracle", testing::NewTempDir("eval-prov"), {}});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    client::ClientOptions options;
    options.server = server_->address();
    client_ = client::RetraceClient::Connect(options);
    out_ = testing::NewTempDir("eval-prov-out");
    set_ = testing::NewTempDir("eval-prov-set");
    fs::create_directories(set_ + "/queries");
  }

  // WriteQuerySet: a JPEG (quality 60) copy of each photo reference, and the ground truth.
  void WriteQuerySet(const std::string& extra_row = "") {
    std::ofstream truth(set_ + "/ground_truth.csv");
    truth << "query_id,reference_id,transforms\n";
    int n = 0;
    for (const char* label : {"dog", "cat", "horse", "house", "guitar", "bird", "tree", "car"}) {
      const std::string reference = std::string("photo/") + label + "/" + label + "_0.png";
      cv::Mat image = cv::imread(FixtureDir() + "/images/" + reference, cv::IMREAD_COLOR);
      ASSERT_FALSE(image.empty()) << reference;
      const std::string id = "q" + std::to_string(n++);
      ASSERT_TRUE(cv::imwrite(set_ + "/queries/" + id + ".jpg", image,
                              {cv::IMWRITE_JPEG_QUALITY, 60}));
      truth << id << "," << reference << ",jpeg(q=60)\n";
    }
    truth << extra_row;
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::RetraceClient> client_;
  std::string out_, set_;
};

TEST_F(EvalProvenanceE2eTest, TheFeatureAblationShowsWhatEachFeatureSees) {
  WriteQuerySet();
  eval::ProvenanceEvalOptions options;
  options.out_dir = out_;
  options.recall_ks = {1, 12, 100};
  auto report = eval::RunProvenanceProtocol(*client_, FixtureDir() + "/images", set_, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->queries, 8);
  ASSERT_EQ(report->variants,
            (std::vector<std::string>{"clip", "image_encoder", "concatenated", "reranked"}));
  // Appearance finds the exact reference; CLIP's oracle knows only the class, so the reference
  // is among the 12 images of its class (4 domains x 3) but not necessarily first.
  EXPECT_DOUBLE_EQ(report->results["image_encoder"]["R@1"], 1.0);
  EXPECT_DOUBLE_EQ(report->results["concatenated"]["R@1"], 1.0);
  for (const std::string& variant : report->variants) {
    EXPECT_DOUBLE_EQ(report->results[variant]["R@12"], 1.0) << variant;
    EXPECT_DOUBLE_EQ(report->results[variant]["R@100"], 1.0) << variant;
  }

  auto again = eval::RecomputeProvenanceReport(out_, options.recall_ks);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->variants, report->variants);
  for (const std::string& variant : report->variants) {
    for (const auto& [name, value] : report->results[variant]) {
      EXPECT_NEAR(again->results[variant][name], value, 1e-12) << variant << " " << name;
    }
  }
  ASSERT_TRUE(eval::WriteProvenanceReport(*report, out_).ok());
  const std::string table = testing::ReadFileBytes(out_ + "/results.md");
  EXPECT_NE(table.find("| concatenated | 100.0 |"), std::string::npos) << table;

  // The report: 4 variants x 2 queries x (query + 3 hits); the concatenated features put each
  // query's reference first, so its first hit is outlined green.
  int shown = 0;
  ASSERT_TRUE(eval::WriteProvenanceHtmlReport(*report, out_, FixtureDir() + "/images", set_,
                                              {2, 3}, &shown)
                  .ok());
  EXPECT_EQ(shown, 4 * 2 * 4);
  const std::string html = testing::ReadFileBytes(out_ + "/report.html");
  const size_t section = html.find("<h2>concatenated</h2>");
  ASSERT_NE(section, std::string::npos);
  const size_t first_hit = html.find("<figure class=\"hit", section);
  const std::string green = "<figure class=\"hit correct\">";
  EXPECT_EQ(html.compare(first_hit, green.size(), green), 0) << html.substr(first_hit, 60);
}

TEST_F(EvalProvenanceE2eTest, AGroundTruthNamingAnUnknownReferenceIsRefused) {
  WriteQuerySet("q0,photo/dog/not_there.png,none\n");
  eval::ProvenanceEvalOptions options;
  options.out_dir = out_;
  auto report = eval::RunProvenanceProtocol(*client_, FixtureDir() + "/images", set_, options);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(report.status().message().find("not_there.png"), std::string::npos)
      << report.status();
}

}  // namespace
}  // namespace retrace
