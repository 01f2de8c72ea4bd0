// The whole public API against the real server (demo models, SQLite store, FAISS) on 127.0.0.1:
// captioning, collections, indexing with a bad item among good ones, the three query kinds,
// deletes, bounds, health, reflection, and a restart on the same data directory.
#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

using testing::FixtureDir;
using testing::NoiseImage;
using testing::ServerProcess;
using testing::SolidImage;

class ServerApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(FixtureDir() + "/demo/clip/model.pt")) {
      GTEST_SKIP() << "test models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    data_dir_ = testing::NewTempDir("api");
    server_ = std::make_unique<ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/demo", data_dir_, extra_args_});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();
  }

  grpc::Status CreateCollection(const std::string& name, int shards = 1,
                                const std::string& index = "") {
    grpc::ClientContext context;
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name(name);
    request.mutable_collection()->set_shards(shards);
    request.mutable_collection()->set_caption_index(index);
    v1::Collection response;
    return stub_->CreateCollection(&context, request, &response);
  }

  // Index sends one request over one stream; returns the stream status and fills `response`.
  grpc::Status IndexOnce(const v1::IndexRequest& request, v1::IndexResponse* response) {
    grpc::ClientContext context;
    auto stream = stub_->Index(&context);
    EXPECT_TRUE(stream->Write(request));
    stream->WritesDone();
    bool got = stream->Read(response);
    grpc::Status status = stream->Finish();
    if (status.ok()) {
      EXPECT_TRUE(got);
    }
    return status;
  }

  v1::SearchResponse SearchOk(v1::SearchRequest request) {
    grpc::ClientContext context;
    v1::SearchResponse response;
    grpc::Status status = stub_->Search(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  grpc::Status Search(const v1::SearchRequest& request) {
    grpc::ClientContext context;
    v1::SearchResponse response;
    return stub_->Search(&context, request, &response);
  }

  static v1::Item MakeItem(const std::string& id, std::string image, std::string caption = "") {
    v1::Item item;
    item.set_id(id);
    item.set_image(std::move(image));
    item.set_caption(std::move(caption));
    return item;
  }

  std::vector<std::string> extra_args_;
  std::string data_dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
};

TEST_F(ServerApiTest, HealthIsServingAndReflectionListsTheService) {
  auto health = grpc::health::v1::Health::NewStub(server_->channel());
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(server_->channel());
  grpc::ClientContext reflection_context;
  auto stream = reflection->ServerReflectionInfo(&reflection_context);
  grpc::reflection::v1alpha::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse reply;
  ASSERT_TRUE(stream->Read(&reply));
  std::set<std::string> services;
  for (const auto& s : reply.list_services_response().service()) services.insert(s.name());
  EXPECT_TRUE(services.count("retrace.v1.Retrace")) << reply.DebugString();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerApiTest, CaptionGivesTextPerImageAndFailsOnlyTheBadOne) {
  v1::CaptionRequest request;
  request.add_images(NoiseImage(120, 90, 1, ".jpg"));
  request.add_images("this is not an image");
  request.add_images(NoiseImage(64, 64, 2, ".png"));
  grpc::ClientContext context;
  v1::CaptionResponse response;
  ASSERT_TRUE(stub_->Caption(&context, request, &response).ok());
  ASSERT_EQ(response.results_size(), 3);
  EXPECT_EQ(response.results(0).status().code(), 0);
  EXPECT_FALSE(response.results(0).caption().empty());
  EXPECT_EQ(response.results(1).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(response.results(1).status().message().find("images[1]"), std::string::npos)
      << response.results(1).status().message();
  EXPECT_EQ(response.results(2).status().code(), 0);
}

TEST_F(ServerApiTest, CollectionsCreateListDescribeDrop) {
  ASSERT_TRUE(CreateCollection("alpha", 3).ok());
  ASSERT_TRUE(CreateCollection("beta").ok());
  EXPECT_EQ(CreateCollection("alpha").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  grpc::Status bad_name = CreateCollection("no spaces");
  EXPECT_EQ(bad_name.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad_name.error_message().find("collection"), std::string::npos);
  grpc::Status bad_index = CreateCollection("gamma", 1, "NotAnIndex");
  EXPECT_EQ(bad_index.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad_index.error_message().find("caption_index"), std::string::npos);
  EXPECT_EQ(CreateCollection("delta", 0 - 5).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  {
    grpc::ClientContext context;
    v1::ListCollectionsResponse list;
    ASSERT_TRUE(stub_->ListCollections(&context, {}, &list).ok());
    ASSERT_EQ(list.collections_size(), 2);
    EXPECT_EQ(list.collections(0).name(), "alpha");
    EXPECT_EQ(list.collections(0).shards(), 3);
    EXPECT_EQ(list.collections(0).caption_index(), "Flat");
    EXPECT_GT(list.collections(0).caption_dim(), 0);
    EXPECT_EQ(list.collections(1).name(), "beta");
  }
  {
    grpc::ClientContext context;
    v1::DropCollectionRequest drop;
    drop.set_name("beta");
    v1::DropCollectionResponse dropped;
    ASSERT_TRUE(stub_->DropCollection(&context, drop, &dropped).ok());
  }
  grpc::ClientContext context;
  v1::DescribeCollectionRequest describe;
  describe.set_name("beta");
  v1::Collection info;
  EXPECT_EQ(stub_->DescribeCollection(&context, describe, &info).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerApiTest, IndexStoresGoodItemsBesideABadOneAndSearchFindsThem) {
  ASSERT_TRUE(CreateCollection("art", 2).ok());
  v1::IndexRequest request;
  request.set_collection("art");
  *request.add_items() = MakeItem("a.jpg", NoiseImage(100, 80, 10, ".jpg"));
  *request.add_items() = MakeItem("b.png", NoiseImage(90, 90, 11, ".png"), "a red bicycle");
  std::string truncated = NoiseImage(64, 64, 12, ".jpg");
  truncated.resize(truncated.size() / 2);
  *request.add_items() = MakeItem("broken.jpg", truncated);
  *request.add_items() = MakeItem("c.bmp", NoiseImage(70, 50, 13, ".bmp"));
  (*request.mutable_items(3)->mutable_attributes())["license"] = "cc-by";
  *request.add_items() = MakeItem("a.jpg", NoiseImage(64, 64, 14, ".png"));  // duplicate id
  v1::IndexResponse response;
  ASSERT_TRUE(IndexOnce(request, &response).ok());
  ASSERT_EQ(response.results_size(), 5);
  EXPECT_EQ(response.results(0).status().code(), 0) << response.results(0).status().message();
  EXPECT_FALSE(response.results(0).caption().empty());  // captioned by the server
  EXPECT_EQ(response.results(1).caption(), "a red bicycle");
  EXPECT_EQ(response.results(2).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(response.results(2).status().message().find("items[2] 'broken.jpg'"),
            std::string::npos)
      << response.results(2).status().message();
  EXPECT_NE(response.results(2).status().message().find("image"), std::string::npos);
  EXPECT_EQ(response.results(3).status().code(), 0);
  EXPECT_EQ(response.results(4).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(response.results(4).status().message().find("duplicate"), std::string::npos);

  // Re-sending: the same content is a no-op; other content replaces the item.
  {
    v1::IndexRequest again;
    again.set_collection("art");
    *again.add_items() = MakeItem("a.jpg", NoiseImage(100, 80, 10, ".jpg"));
    *again.add_items() = MakeItem("b.png", NoiseImage(90, 90, 11, ".png"), "a blue bicycle");
    v1::IndexResponse repeated;
    ASSERT_TRUE(IndexOnce(again, &repeated).ok());
    ASSERT_EQ(repeated.results_size(), 2);
    EXPECT_EQ(repeated.results(0).status().code(), 0);
    EXPECT_TRUE(repeated.results(0).unchanged());
    EXPECT_EQ(repeated.results(0).caption(), response.results(0).caption());
    EXPECT_FALSE(repeated.results(1).unchanged());
    EXPECT_EQ(repeated.results(1).caption(), "a blue bicycle");
    *again.mutable_items(1)->mutable_caption() = "a red bicycle";  // back to the original
    ASSERT_TRUE(IndexOnce(again, &repeated).ok());
    EXPECT_FALSE(repeated.results(1).unchanged());
  }

  grpc::ClientContext describe_context;
  v1::DescribeCollectionRequest describe;
  describe.set_name("art");
  v1::Collection info;
  ASSERT_TRUE(stub_->DescribeCollection(&describe_context, describe, &info).ok());
  EXPECT_EQ(info.item_count(), 3);

  // Get: stored captions and attributes; embeddings only on request; NOT_FOUND per absent id.
  {
    grpc::ClientContext get_context;
    v1::GetRequest get;
    get.set_collection("art");
    get.add_ids("c.bmp");
    get.add_ids("broken.jpg");
    get.add_ids("b.png");
    v1::GetResponse got;
    ASSERT_TRUE(stub_->Get(&get_context, get, &got).ok());
    ASSERT_EQ(got.results_size(), 3);
    EXPECT_EQ(got.results(0).status().code(), 0);
    EXPECT_EQ(got.results(0).item().attributes().at("license"), "cc-by");
    EXPECT_EQ(got.results(0).item().caption(), response.results(3).caption());
    EXPECT_EQ(got.results(0).item().clip_image().values_size(), 0);
    EXPECT_EQ(got.results(1).status().code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(got.results(2).item().caption(), "a red bicycle");

    grpc::ClientContext embeddings_context;
    get.set_include_embeddings(true);
    ASSERT_TRUE(stub_->Get(&embeddings_context, get, &got).ok());
    EXPECT_EQ(got.results(0).item().clip_image().values_size(), info.caption_dim());
    double norm = 0;
    for (float v : got.results(0).item().caption_text().values()) norm += v * v;
    EXPECT_NEAR(norm, 1.0, 1e-4);  // stored L2-normalised
  }

  // Text query: the given caption's own words put its item first (CLIP text tower both sides).
  v1::SearchRequest by_text;
  by_text.set_collection("art");
  by_text.set_text("a red bicycle");
  by_text.set_top_k(10);
  v1::SearchResponse hits = SearchOk(by_text);
  ASSERT_EQ(hits.hits_size(), 3);
  EXPECT_EQ(hits.hits(0).id(), "b.png");
  EXPECT_EQ(hits.hits(0).caption(), "a red bicycle");
  EXPECT_NEAR(hits.hits(0).score(), 1.0, 1e-4);
  for (int i = 1; i < hits.hits_size(); ++i) {
    EXPECT_GE(hits.hits(i - 1).score(), hits.hits(i).score());
  }
  for (const auto& hit : hits.hits()) {
    if (hit.id() == "c.bmp") {
      EXPECT_EQ(hit.attributes().at("license"), "cc-by");
    }
  }

  // Image query: scores come back sorted and top_k bounds the answer.
  v1::SearchRequest by_image;
  by_image.set_collection("art");
  by_image.set_image(NoiseImage(100, 80, 10, ".jpg"));
  by_image.set_top_k(2);
  v1::SearchResponse image_hits = SearchOk(by_image);
  ASSERT_EQ(image_hits.hits_size(), 2);
  EXPECT_GE(image_hits.hits(0).score(), image_hits.hits(1).score());

  // Embedding query, unnormalised: the server normalises it; wrong dimension names the field.
  v1::SearchRequest by_embedding;
  by_embedding.set_collection("art");
  for (int i = 0; i < info.caption_dim(); ++i) {
    by_embedding.mutable_embedding()->add_values(i == 0 ? 3.f : 0.f);
  }
  EXPECT_EQ(SearchOk(by_embedding).hits_size(), 3);  // top_k 0 means 10
  by_embedding.mutable_embedding()->add_values(1.f);
  grpc::Status wrong_dim = Search(by_embedding);
  EXPECT_EQ(wrong_dim.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(wrong_dim.error_message().find("embedding"), std::string::npos);
  EXPECT_NE(wrong_dim.error_message().find(std::to_string(info.caption_dim())), std::string::npos);

  // Delete: the id stops being found; an absent id answers NOT_FOUND for itself alone.
  grpc::ClientContext delete_context;
  v1::DeleteRequest del;
  del.set_collection("art");
  del.add_ids("b.png");
  del.add_ids("never-there");
  v1::DeleteResponse deleted;
  ASSERT_TRUE(stub_->Delete(&delete_context, del, &deleted).ok());
  ASSERT_EQ(deleted.results_size(), 2);
  EXPECT_EQ(deleted.results(0).status().code(), 0);
  EXPECT_EQ(deleted.results(1).status().code(), grpc::StatusCode::NOT_FOUND);
  v1::SearchResponse after = SearchOk(by_text);
  ASSERT_EQ(after.hits_size(), 2);
  for (const auto& hit : after.hits()) EXPECT_NE(hit.id(), "b.png");
}

TEST_F(ServerApiTest, BadRequestsGetClearErrors) {
  ASSERT_TRUE(CreateCollection("c").ok());
  v1::SearchRequest unknown;
  unknown.set_collection("nope");
  unknown.set_text("a dog");
  grpc::Status not_found = Search(unknown);
  EXPECT_EQ(not_found.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(not_found.error_message().find("'nope'"), std::string::npos);

  v1::SearchRequest no_query;
  no_query.set_collection("c");
  EXPECT_EQ(Search(no_query).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::SearchRequest big_k;
  big_k.set_collection("c");
  big_k.set_text("a dog");
  big_k.set_top_k(1001);
  grpc::Status k_status = Search(big_k);
  EXPECT_EQ(k_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(k_status.error_message().find("top_k"), std::string::npos);

  // PROVENANCE's own bounds, each naming its field.
  auto provenance_error = [&](const std::function<void(v1::SearchRequest&)>& spoil,
                              const std::string& field) {
    v1::SearchRequest request;
    request.set_collection("c");
    request.set_text("a dog");
    request.set_mode(v1::PROVENANCE);
    spoil(request);
    grpc::Status status = Search(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_NE(status.error_message().find(field), std::string::npos) << status.error_message();
  };
  provenance_error([](v1::SearchRequest& r) { r.mutable_provenance()->set_candidates(1001); },
                   "provenance.candidates");
  provenance_error([](v1::SearchRequest& r) { r.mutable_provenance()->set_candidates(-1); },
                   "provenance.candidates");
  provenance_error([](v1::SearchRequest& r) { r.mutable_provenance()->set_beta(-0.5f); },
                   "provenance.beta");
  provenance_error([](v1::SearchRequest& r) { r.mutable_provenance()->set_w1(NAN); },
                   "provenance.w1");
  provenance_error([](v1::SearchRequest& r) { r.mutable_provenance()->set_w2(1e9f); },
                   "provenance.w2");
  provenance_error([](v1::SearchRequest& r) { r.set_query_caption(std::string(2049, 'a')); },
                   "query_caption");
  provenance_error(
      [](v1::SearchRequest& r) {
        r.set_mode(v1::HYBRID);
        r.mutable_hybrid()->set_rrf_k(-3);
      },
      "hybrid.rrf_k");
  // PROVENANCE embeddings are of the image space's dimension.
  provenance_error(
      [](v1::SearchRequest& r) {
        for (int i = 0; i < 3; ++i) r.mutable_embedding()->add_values(1.f);
      },
      "embedding");

  v1::SearchRequest bad_image;
  bad_image.set_collection("c");
  bad_image.set_image("GIF89a not supported");
  grpc::Status image_status = Search(bad_image);
  EXPECT_EQ(image_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(image_status.error_message().find("image"), std::string::npos);

  v1::IndexRequest to_unknown;
  to_unknown.set_collection("nope");
  *to_unknown.add_items() = MakeItem("x", SolidImage(8, 8, {1, 2, 3}, ".png"));
  v1::IndexResponse response;
  EXPECT_EQ(IndexOnce(to_unknown, &response).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::IndexRequest bad_items;
  bad_items.set_collection("c");
  *bad_items.add_items() = MakeItem("", SolidImage(8, 8, {1, 2, 3}, ".png"));
  *bad_items.add_items() = MakeItem(std::string("bad\xff", 4), SolidImage(8, 8, {1, 2, 3}, ".png"));
  *bad_items.add_items() = MakeItem("long-caption", SolidImage(8, 8, {1, 2, 3}, ".png"),
                                    std::string(10000, 'a'));
  *bad_items.add_items() = MakeItem("no-image", "");
  *bad_items.add_items() = MakeItem("fine", SolidImage(8, 8, {1, 2, 3}, ".png"));
  ASSERT_TRUE(IndexOnce(bad_items, &response).ok());
  ASSERT_EQ(response.results_size(), 5);
  const char* expected[] = {"id: empty", "not valid UTF-8", "caption: 10000 bytes",
                            "image: missing"};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(response.results(i).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(response.results(i).status().message().find(expected[i]), std::string::npos)
        << response.results(i).status().message();
    EXPECT_NE(response.results(i).status().message().find(absl::StrCat("items[", i, "]")),
              std::string::npos);
  }
  EXPECT_EQ(response.results(4).status().code(), 0);
}

class ServerLimitsTest : public ServerApiTest {
 protected:
  void SetUp() override {
    const std::string config = testing::NewTempDir("config") + "/server.textproto";
    std::ofstream(config) << "limits { max_image_pixels: 10000 max_items_per_call: 3 }\n";
    extra_args_ = {"--config", config};
    ServerApiTest::SetUp();
  }
};

TEST_F(ServerLimitsTest, ConfiguredBoundsAreEnforcedWithClearMessages) {
  ASSERT_TRUE(CreateCollection("c").ok());
  v1::IndexRequest request;
  request.set_collection("c");
  *request.add_items() = MakeItem("big.png", SolidImage(200, 200, {9, 9, 9}, ".png"));
  *request.add_items() = MakeItem("small.png", SolidImage(50, 50, {9, 9, 9}, ".png"));
  v1::IndexResponse response;
  ASSERT_TRUE(IndexOnce(request, &response).ok());
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(response.results(0).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(response.results(0).status().message().find("40000"), std::string::npos)
      << response.results(0).status().message();
  EXPECT_NE(response.results(0).status().message().find("10000"), std::string::npos);
  EXPECT_EQ(response.results(1).status().code(), 0);

  v1::IndexRequest too_many;
  too_many.set_collection("c");
  for (int i = 0; i < 4; ++i) {
    *too_many.add_items() = MakeItem(absl::StrCat(i), SolidImage(8, 8, {1, 1, 1}, ".png"));
  }
  grpc::Status status = IndexOnce(too_many, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("over the limit of 3"), std::string::npos);
}

TEST_F(ServerApiTest, RestartKeepsCollectionsItemsAndResults) {
  ASSERT_TRUE(CreateCollection("keep", 2).ok());
  v1::IndexRequest request;
  request.set_collection("keep");
  for (int i = 0; i < 6; ++i) {
    *request.add_items() = MakeItem(absl::StrCat("img", i), NoiseImage(64, 64, 100 + i, ".png"));
  }
  v1::IndexResponse response;
  ASSERT_TRUE(IndexOnce(request, &response).ok());
  grpc::ClientContext delete_context;
  v1::DeleteRequest del;
  del.set_collection("keep");
  del.add_ids("img3");
  v1::DeleteResponse deleted;
  ASSERT_TRUE(stub_->Delete(&delete_context, del, &deleted).ok());

  v1::SearchRequest query;
  query.set_collection("keep");
  query.set_image(NoiseImage(64, 64, 101, ".png"));
  v1::SearchResponse before = SearchOk(query);
  ASSERT_EQ(before.hits_size(), 5);

  EXPECT_EQ(server_->Stop(), 0) << server_->LogTail();
  ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
  stub_ = server_->NewStub();
  v1::SearchResponse after = SearchOk(query);
  ASSERT_EQ(after.hits_size(), before.hits_size());
  for (int i = 0; i < after.hits_size(); ++i) {
    EXPECT_EQ(after.hits(i).id(), before.hits(i).id());
    EXPECT_FLOAT_EQ(after.hits(i).score(), before.hits(i).score());
    EXPECT_EQ(after.hits(i).caption(), before.hits(i).caption());
    EXPECT_NE(after.hits(i).id(), "img3");
  }
}

}  // namespace
}  // namespace retrace
