// Caption-Matching end to end with oracle models whose outputs are known: synthetic images of
// 8 classes drawn in 4 styles ("domains"). The oracle captioner names each image's class; the
// oracle CLIP maps an image of class c and any text naming c to the same direction. So for every
// pair of domains A→B, each image of A must retrieve an image of its own class from a gallery
// made of B: P@1 = 1.0, through the real server, LibTorch, FAISS and SQLite.
#include <filesystem>
#include <map>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

struct SyntheticImage {
  std::string domain, label, id, path;
};

std::vector<SyntheticImage> ListImages(const std::string& root) {
  std::vector<SyntheticImage> images;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const std::string relative = fs::relative(entry.path(), root).string();
    std::vector<std::string> parts = absl::StrSplit(relative, '/');
    if (parts.size() != 3) continue;
    images.push_back({parts[0], parts[1], relative, entry.path().string()});
  }
  std::sort(images.begin(), images.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return images;
}

std::string ClassOf(const std::string& id) { return std::vector<std::string>(absl::StrSplit(id, '/'))[1]; }

class CaptionMatchingE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/clip/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    server_ = std::make_unique<testing::ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/oracle", testing::NewTempDir("oracle"), {}});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();
    images_ = ListImages(FixtureDir() + "/images");
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
  std::vector<SyntheticImage> images_;
};

TEST_F(CaptionMatchingE2eTest, EveryCrossDomainQueryFindsItsClassFirst) {
  std::map<std::string, std::vector<const SyntheticImage*>> by_domain;
  for (const SyntheticImage& image : images_) by_domain[image.domain].push_back(&image);
  ASSERT_EQ(by_domain.size(), 4u) << "expected 4 synthetic domains";

  // One gallery collection per target domain, captioned by the oracle captioner.
  for (const auto& [domain, members] : by_domain) {
    grpc::ClientContext create_context;
    v1::CreateCollectionRequest create;
    create.mutable_collection()->set_name(domain);
    create.mutable_collection()->set_shards(2);
    v1::Collection created;
    ASSERT_TRUE(stub_->CreateCollection(&create_context, create, &created).ok());

    grpc::ClientContext context;
    auto stream = stub_->Index(&context);
    v1::IndexRequest request;
    request.set_collection(domain);
    for (const SyntheticImage* image : members) {
      v1::Item* item = request.add_items();
      item->set_id(image->id);
      item->set_image(testing::ReadFileBytes(image->path));
    }
    ASSERT_TRUE(stream->Write(request));
    stream->WritesDone();
    v1::IndexResponse response;
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_TRUE(stream->Finish().ok());
    ASSERT_EQ(response.results_size(), static_cast<int>(members.size()));
    for (const v1::IndexResult& result : response.results()) {
      ASSERT_EQ(result.status().code(), 0) << result.status().message();
      EXPECT_EQ(result.caption(), "a picture of a " + ClassOf(result.id()));
    }
  }

  int queries = 0;
  for (const auto& [target, gallery] : by_domain) {
    for (const SyntheticImage& query : images_) {
      if (query.domain == target) continue;
      grpc::ClientContext context;
      v1::SearchRequest request;
      request.set_collection(target);
      request.set_image(testing::ReadFileBytes(query.path));
      request.set_top_k(1);
      v1::SearchResponse response;
      ASSERT_TRUE(stub_->Search(&context, request, &response).ok());
      ASSERT_EQ(response.hits_size(), 1);
      EXPECT_EQ(ClassOf(response.hits(0).id()), query.label)
          << query.id << " → " << response.hits(0).id() << " in " << target;
      EXPECT_EQ(response.hits(0).caption(), "a picture of a " + query.label);
      ++queries;
    }
  }
  EXPECT_EQ(queries, 3 * static_cast<int>(images_.size()));  // P@1 = 1.0 over all of them
}

TEST_F(CaptionMatchingE2eTest, TextQueryRanksItsClassAboveAllOthers) {
  grpc::ClientContext create_context;
  v1::CreateCollectionRequest create;
  create.mutable_collection()->set_name("all");
  v1::Collection created;
  ASSERT_TRUE(stub_->CreateCollection(&create_context, create, &created).ok());
  grpc::ClientContext context;
  auto stream = stub_->Index(&context);
  int horses = 0;
  // Several requests on one stream, each acknowledged in order.
  for (size_t begin = 0; begin < images_.size(); begin += 16) {
    v1::IndexRequest request;
    request.set_collection("all");
    for (size_t i = begin; i < std::min(images_.size(), begin + 16); ++i) {
      v1::Item* item = request.add_items();
      item->set_id(images_[i].id);
      item->set_image(testing::ReadFileBytes(images_[i].path));
      horses += images_[i].label == "horse";
    }
    ASSERT_TRUE(stream->Write(request));
    v1::IndexResponse response;
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_EQ(response.results_size(), request.items_size());
    EXPECT_EQ(response.results(0).id(), request.items(0).id());
  }
  stream->WritesDone();
  ASSERT_TRUE(stream->Finish().ok());
  ASSERT_GT(horses, 0);

  grpc::ClientContext search_context;
  v1::SearchRequest request;
  request.set_collection("all");
  request.set_text("a drawing of a horse");
  request.set_top_k(horses + 1);
  v1::SearchResponse response;
  ASSERT_TRUE(stub_->Search(&search_context, request, &response).ok());
  ASSERT_EQ(response.hits_size(), horses + 1);
  for (int i = 0; i < horses; ++i) EXPECT_EQ(ClassOf(response.hits(i).id()), "horse");
  EXPECT_NE(ClassOf(response.hits(horses).id()), "horse");
  EXPECT_GT(response.hits(horses - 1).score(), response.hits(horses).score() + 0.5f);
}

}  // namespace
}  // namespace retrace
