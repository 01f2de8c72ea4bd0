// pacs-mini (real JPEG and PNG photos, paintings, cartoons and sketches) through the client
// library and the real server with the demo models: every image is indexed, and searches return
// valid ids with sorted scores. The demo models have no visual knowledge, so nothing here is a
// retrieval-quality figure.
#include <filesystem>
#include <set>

#include "client/retrace_client.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"
#include "tests/support/shared_data.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;

TEST(PacsMiniE2eTest, IndexesEveryImageAndSearchesIt) {
  RETRACE_REQUIRE_SHARED_DATA("pacs-mini");
  if (!fs::exists(testing::FixtureDir() + "/demo/clip/model.pt")) {
    GTEST_SKIP() << "demo models not found in " << testing::FixtureDir();
  }
  testing::ServerProcess server(
      {testing::FixtureDir() + "/demo", testing::NewTempDir("pacs"), {}});
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  client::ClientOptions options;
  options.server = server.address();
  auto client = client::RetraceClient::Connect(options);

  v1::CreateCollectionRequest create;
  create.mutable_collection()->set_name("pacs");
  create.mutable_collection()->set_shards(4);
  v1::Collection created;
  ASSERT_TRUE(client->CreateCollection(create, &created).ok());

  const std::string root = testing::SharedDataPath("pacs-mini");
  std::vector<std::string> ids;
  std::vector<v1::Item> items;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    const std::string ext = entry.path().extension().string();
    if (!entry.is_regular_file() || (ext != ".jpg" && ext != ".png" && ext != ".jpeg")) continue;
    v1::Item item;
    item.set_id(fs::relative(entry.path(), root).string());
    item.set_image(testing::ReadFileBytes(entry.path().string()));
    ids.push_back(item.id());
    items.push_back(std::move(item));
  }
  ASSERT_GE(items.size(), 200u);
  const std::string query_image = items[0].image();

  std::set<std::string> acknowledged;
  grpc::Status status = client->IndexItems("pacs", std::move(items), 16, [&](const v1::IndexResult& r) {
    EXPECT_EQ(r.status().code(), 0) << r.id() << ": " << r.status().message();
    EXPECT_FALSE(r.caption().empty()) << r.id();
    if (r.status().code() == 0) acknowledged.insert(r.id());
  });
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << server.LogTail();
  EXPECT_EQ(acknowledged.size(), ids.size());

  v1::DescribeCollectionRequest describe;
  describe.set_name("pacs");
  v1::Collection info;
  ASSERT_TRUE(client->DescribeCollection(describe, &info).ok());
  EXPECT_EQ(info.item_count(), static_cast<int64_t>(ids.size()));

  for (int kind = 0; kind < 2; ++kind) {
    v1::SearchRequest request;
    request.set_collection("pacs");
    if (kind == 0) request.set_image(query_image);
    else request.set_text("a sketch of a horse");
    request.set_top_k(25);
    v1::SearchResponse response;
    ASSERT_TRUE(client->Search(request, &response).ok());
    ASSERT_EQ(response.hits_size(), 25);
    std::set<std::string> seen;
    for (int i = 0; i < response.hits_size(); ++i) {
      const v1::SearchHit& hit = response.hits(i);
      EXPECT_TRUE(acknowledged.count(hit.id())) << hit.id();
      EXPECT_TRUE(seen.insert(hit.id()).second) << "duplicate hit " << hit.id();
      EXPECT_FALSE(hit.caption().empty());
      EXPECT_LE(hit.score(), 1.0001f);
      EXPECT_GE(hit.score(), -1.0001f);
      if (i > 0) EXPECT_GE(response.hits(i - 1).score(), hit.score());
    }
  }
}

}  // namespace
}  // namespace retrace
