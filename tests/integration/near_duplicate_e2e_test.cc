// Near-duplicates at ingest (IndexRequest.near_duplicate) end to end through the real server
// with the oracle models (tools/fixtures/oracle_models.py): their image encoder puts an image's
// class first and a colour thumbnail after it, so an exact copy and a JPEG re-encode of a
// fixture image are near it in the image space and another class's image is far. (The demo
// models are random networks: their similarities say nothing about copies. Under the oracle,
// two images of one class are near too, so the unrelated images here are of other classes.)
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "gtest/gtest.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

constexpr char kCollection[] = "corpus";

class NearDuplicateE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/image_encoder/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    server_ = std::make_unique<testing::ServerProcess>(testing::ServerOptions{
        FixtureDir() + "/oracle", testing::NewTempDir("near_duplicate"), {}});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();
    grpc::ClientContext context;
    v1::CreateCollectionRequest create;
    create.mutable_collection()->set_name(kCollection);
    v1::Collection info;
    ASSERT_TRUE(stub_->CreateCollection(&context, create, &info).ok());
    // The corpus, indexed without a check.
    v1::IndexRequest request = Request({{"dog", Image("dog")},
                                        {"cat", Image("cat")},
                                        {"tree", Image("tree")}});
    v1::IndexResponse response;
    ASSERT_TRUE(Index(request, &response).ok());
    for (const v1::IndexResult& r : response.results()) ASSERT_EQ(r.status().code(), 0) << r.id();
  }

  static std::string Image(const std::string& label) {
    return testing::ReadFileBytes(FixtureDir() + "/images/photo/" + label + "/" + label + "_0.png");
  }

  // JpegReencode: the image decoded and encoded again as a JPEG of quality 85.
  static std::string JpegReencode(const std::string& bytes) {
    const std::vector<uchar> in(bytes.begin(), bytes.end());
    const cv::Mat image = cv::imdecode(in, cv::IMREAD_COLOR);
    std::vector<uchar> out;
    cv::imencode(".jpg", image, out, {cv::IMWRITE_JPEG_QUALITY, 85});
    return std::string(out.begin(), out.end());
  }

  static v1::IndexRequest Request(const std::vector<std::pair<std::string, std::string>>& items) {
    v1::IndexRequest request;
    request.set_collection(kCollection);
    for (const auto& [id, image] : items) {
      EXPECT_FALSE(image.empty()) << id;
      v1::Item* item = request.add_items();
      item->set_id(id);
      item->set_image(image);
      item->set_caption("a caption");
    }
    return request;
  }

  grpc::Status Index(const v1::IndexRequest& request, v1::IndexResponse* response) {
    grpc::ClientContext context;
    auto stream = stub_->Index(&context);
    EXPECT_TRUE(stream->Write(request));
    stream->WritesDone();
    stream->Read(response);
    return stream->Finish();
  }

  static std::map<std::string, v1::IndexResult> ById(const v1::IndexResponse& response) {
    std::map<std::string, v1::IndexResult> results;
    for (const v1::IndexResult& r : response.results()) results[r.id()] = r;
    return results;
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
};

TEST_F(NearDuplicateE2eTest, ACopyAndAJpegReencodeAreReportedAndAnUnrelatedImageIsNot) {
  v1::IndexRequest request = Request({{"copy-of-dog", Image("dog")},
                                      {"jpeg-of-cat", JpegReencode(Image("cat"))},
                                      {"guitar", Image("guitar")},
                                      {"second-guitar", Image("guitar")}});
  request.mutable_near_duplicate();  // the default threshold, REPORT
  v1::IndexResponse response;
  ASSERT_TRUE(Index(request, &response).ok());
  std::map<std::string, v1::IndexResult> results = ById(response);
  for (const auto& [id, r] : results) {
    EXPECT_EQ(r.status().code(), 0) << id << ": " << r.status().message();  // REPORT stores
    EXPECT_FALSE(r.skipped()) << id;
  }
  EXPECT_EQ(results["copy-of-dog"].near_duplicate_id(), "dog");
  EXPECT_NEAR(results["copy-of-dog"].near_duplicate_similarity(), 1.0, 1e-4);
  EXPECT_EQ(results["jpeg-of-cat"].near_duplicate_id(), "cat");
  EXPECT_GE(results["jpeg-of-cat"].near_duplicate_similarity(), 0.95f);
  EXPECT_EQ(results["guitar"].near_duplicate_id(), "");  // nothing like it stored
  EXPECT_EQ(results["guitar"].near_duplicate_similarity(), 0);
  // An earlier item of the same request counts.
  EXPECT_EQ(results["second-guitar"].near_duplicate_id(), "guitar");
  EXPECT_NEAR(results["second-guitar"].near_duplicate_similarity(), 1.0, 1e-4);
}

TEST_F(NearDuplicateE2eTest, SkipLeavesTheStoreWithoutTheDuplicate) {
  v1::IndexRequest request = Request({{"copy-of-tree", Image("tree")},
                                      {"house", Image("house")}});
  request.mutable_near_duplicate()->set_action(v1::NearDuplicate::SKIP);
  v1::IndexResponse response;
  ASSERT_TRUE(Index(request, &response).ok());
  std::map<std::string, v1::IndexResult> results = ById(response);
  EXPECT_EQ(results["copy-of-tree"].status().code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(results["copy-of-tree"].skipped());
  EXPECT_EQ(results["copy-of-tree"].near_duplicate_id(), "tree");
  EXPECT_NE(results["copy-of-tree"].status().message().find("'tree'"), std::string::npos)
      << results["copy-of-tree"].status().message();
  EXPECT_EQ(results["house"].status().code(), 0) << results["house"].status().message();
  EXPECT_FALSE(results["house"].skipped());

  grpc::ClientContext context;
  v1::GetRequest get;
  get.set_collection(kCollection);
  get.add_ids("copy-of-tree");
  get.add_ids("house");
  get.set_min_position(response.position());
  v1::GetResponse got;
  ASSERT_TRUE(stub_->Get(&context, get, &got).ok());
  EXPECT_EQ(got.results(0).status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(got.results(1).status().code(), 0);
  grpc::ClientContext describe_context;
  v1::DescribeCollectionRequest describe;
  describe.set_name(kCollection);
  v1::Collection info;
  ASSERT_TRUE(stub_->DescribeCollection(&describe_context, describe, &info).ok());
  EXPECT_EQ(info.item_count(), 4);  // dog, cat, tree, house
}

TEST_F(NearDuplicateE2eTest, AThresholdOutOfRangeIsInvalidArgumentNamingIt) {
  for (float threshold : {1.5f, 0.2f, -1.0f, std::numeric_limits<float>::quiet_NaN()}) {
    v1::IndexRequest request = Request({{"house", Image("house")}});
    request.mutable_near_duplicate()->set_threshold(threshold);
    v1::IndexResponse response;
    grpc::Status status = Index(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << threshold;
    EXPECT_NE(status.error_message().find("near_duplicate.threshold"), std::string::npos)
        << status.error_message();
  }
  // Nothing was stored.
  grpc::ClientContext context;
  v1::GetRequest get;
  get.set_collection(kCollection);
  get.add_ids("house");
  v1::GetResponse got;
  ASSERT_TRUE(stub_->Get(&context, get, &got).ok());
  EXPECT_EQ(got.results(0).status().code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace retrace
