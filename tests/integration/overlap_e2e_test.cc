// Overlapped model calls change no result (issue 20): the same Index and PROVENANCE image
// searches on the demo models through a server with batching — a search's CLIP image, image
// encoder and captioner calls overlap, and Index captions while it embeds, each image
// preprocessed once for CLIP and the image encoder — and through one with --no-batching, where
// they run one after the other. Captions, stored embeddings (bit for bit), generated query
// captions, hits and their parts (S, P, P', S') must be identical.
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

constexpr int kItems = 10;
constexpr int kQueries = 4;

struct Answers {
  v1::GetResponse items;
  std::vector<v1::SearchResponse> searches;
};

// Item i: a noise image of its own size (wide, tall, small, large); every third has a caption
// given, the others are captioned by the server.
v1::Item MakeItem(int i) {
  v1::Item item;
  item.set_id(absl::StrCat("item-", i));
  item.set_image(testing::NoiseImage(40 + 37 * i, 300 - 23 * i, i + 1, i % 2 ? ".jpg" : ".png"));
  if (i % 3 == 0) item.set_caption(absl::StrCat("a given caption number ", i));
  return item;
}

// IndexAndSearch indexes the items in a new server on the demo models (with `args`) and makes
// the PROVENANCE image searches (re-ranked, so each query image is captioned too).
void IndexAndSearch(const std::string& dir, std::vector<std::string> args, Answers& out) {
  fs::create_directories(dir);
  testing::ServerOptions options;
  options.models_dir = FixtureDir() + "/demo";
  options.data_dir = dir + "/data";
  options.extra_args = std::move(args);
  testing::ServerProcess server(options);
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  auto stub = server.NewStub();

  grpc::ClientContext create_context;
  v1::CreateCollectionRequest create;
  create.mutable_collection()->set_name("c");
  v1::Collection info;
  ASSERT_TRUE(stub->CreateCollection(&create_context, create, &info).ok());
  ASSERT_GT(info.image_dim(), info.caption_dim()) << "the collection has no image encoder";
  v1::IndexRequest request;
  request.set_collection("c");
  for (int i = 0; i < kItems; ++i) *request.add_items() = MakeItem(i);
  grpc::ClientContext index_context;
  auto stream = stub->Index(&index_context);
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  v1::IndexResponse indexed;
  ASSERT_TRUE(stream->Read(&indexed));
  ASSERT_TRUE(stream->Finish().ok());
  for (const v1::IndexResult& result : indexed.results()) {
    ASSERT_EQ(result.status().code(), 0) << result.id() << ": " << result.status().message();
  }

  grpc::ClientContext get_context;
  v1::GetRequest get;
  get.set_collection("c");
  for (int i = 0; i < kItems; ++i) get.add_ids(absl::StrCat("item-", i));
  get.set_include_embeddings(true);
  ASSERT_TRUE(stub->Get(&get_context, get, &out.items).ok());
  ASSERT_EQ(out.items.results_size(), kItems);

  for (int q = 0; q < kQueries; ++q) {
    grpc::ClientContext context;
    v1::SearchRequest search;
    search.set_collection("c");
    search.set_mode(v1::PROVENANCE);
    search.set_top_k(kItems);
    search.set_image(testing::NoiseImage(90 + 61 * q, 150, 100 + q, ".png"));
    v1::SearchResponse response;
    grpc::Status status = stub->Search(&context, search, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    out.searches.push_back(std::move(response));
  }
  EXPECT_EQ(server.Stop(), 0);
}

bool SameBits(const v1::Embedding& a, const v1::Embedding& b) {
  return a.values_size() == b.values_size() &&
         std::memcmp(a.values().data(), b.values().data(), a.values_size() * sizeof(float)) == 0;
}

TEST(OverlapE2eTest, OverlappedCallsGiveTheResultsOfCallsOneAfterTheOther) {
  if (!fs::exists(FixtureDir() + "/demo/image_encoder/model.pt")) {
    GTEST_SKIP() << "demo models not found in " << FixtureDir()
                 << " (the make_test_fixtures step needs ../shared/data)";
  }
  const std::string dir = testing::NewTempDir("overlap");
  Answers overlapped, sequential;
  IndexAndSearch(dir + "/batching", {}, overlapped);
  if (HasFatalFailure()) return;
  IndexAndSearch(dir + "/no-batching", {"--no-batching"}, sequential);
  if (HasFatalFailure()) return;

  for (int i = 0; i < kItems; ++i) {
    const v1::StoredItem& a = overlapped.items.results(i).item();
    const v1::StoredItem& b = sequential.items.results(i).item();
    ASSERT_EQ(a.id(), b.id());
    EXPECT_FALSE(a.caption().empty()) << a.id();
    EXPECT_EQ(a.caption(), b.caption()) << a.id();
    EXPECT_GT(a.image_features().values_size(), 0) << a.id();
    EXPECT_TRUE(SameBits(a.clip_image(), b.clip_image())) << a.id();
    EXPECT_TRUE(SameBits(a.caption_text(), b.caption_text())) << a.id();
    EXPECT_TRUE(SameBits(a.image_features(), b.image_features())) << a.id();
  }
  for (int q = 0; q < kQueries; ++q) {
    const v1::SearchResponse& a = overlapped.searches[q];
    const v1::SearchResponse& b = sequential.searches[q];
    EXPECT_FALSE(a.query_caption().empty()) << q;  // generated: the captioner ran
    EXPECT_EQ(a.query_caption(), b.query_caption()) << q;
    ASSERT_EQ(a.hits_size(), kItems) << q;
    ASSERT_EQ(a.hits_size(), b.hits_size()) << q;
    for (int h = 0; h < a.hits_size(); ++h) {
      SCOPED_TRACE(absl::StrCat("query ", q, ", hit ", h));
      EXPECT_EQ(a.hits(h).id(), b.hits(h).id());
      EXPECT_EQ(a.hits(h).score(), b.hits(h).score());
      EXPECT_EQ(a.hits(h).provenance().base_score(), b.hits(h).provenance().base_score());
      EXPECT_EQ(a.hits(h).provenance().caption_rank(), b.hits(h).provenance().caption_rank());
      EXPECT_EQ(a.hits(h).provenance().image_rank(), b.hits(h).provenance().image_rank());
      EXPECT_EQ(a.hits(h).provenance().score(), b.hits(h).provenance().score());
    }
  }
}

}  // namespace
}  // namespace retrace
