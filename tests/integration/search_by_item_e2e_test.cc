// Search by a stored item (SearchRequest.item_id) and several searches in one call
// (SearchBatch), end to end through the real server with the oracle models
// (tools/fixtures/oracle_models.py), LibTorch, FAISS and SQLite, over gRPC and HTTP.
//
// A stored item stands for its image: the item's search must equal the search with its image
// in every mode (the same hits in the same order with the same scores), less the item itself
// unless include_self. The gallery's items are indexed without captions, so each stored caption
// is the captioner's, which is also the Q_t an image query gets.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::FixtureDir;

constexpr char kCollection[] = "gallery";
constexpr char kQueryItem[] = "photo-dog-0";
const char* const kClasses[] = {"dog", "cat", "horse", "house", "guitar"};

class SearchByItemE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/image_encoder/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    testing::ServerOptions options;
    options.models_dir = FixtureDir() + "/oracle";
    options.data_dir = testing::NewTempDir("search_by_item");
    options.http = true;
    server_ = std::make_unique<testing::ServerProcess>(options);
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();

    grpc::ClientContext create_context;
    v1::CreateCollectionRequest create;
    create.mutable_collection()->set_name(kCollection);
    create.mutable_collection()->set_shards(2);
    v1::Collection info;
    ASSERT_TRUE(stub_->CreateCollection(&create_context, create, &info).ok());

    // Two photos and a painting of each class; no captions given (the captioner writes them).
    v1::IndexRequest request;
    request.set_collection(kCollection);
    for (const char* label : kClasses) {
      AddItem(request, absl::StrCat("photo-", label, "-0"), label, Image("photo", label, 0));
      AddItem(request, absl::StrCat("photo-", label, "-1"), label, Image("photo", label, 1));
      AddItem(request, absl::StrCat("painting-", label, "-0"), label,
              Image("painting", label, 0));
    }
    grpc::ClientContext context;
    auto stream = stub_->Index(&context);
    ASSERT_TRUE(stream->Write(request));
    stream->WritesDone();
    v1::IndexResponse response;
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_TRUE(stream->Finish().ok());
    for (const v1::IndexResult& result : response.results()) {
      ASSERT_EQ(result.status().code(), 0) << result.id() << ": " << result.status().message();
    }
  }

  static std::string Image(const std::string& domain, const std::string& label, int n) {
    return testing::ReadFileBytes(FixtureDir() + "/images/" + domain + "/" + label + "/" + label +
                                  "_" + std::to_string(n) + ".png");
  }

  static void AddItem(v1::IndexRequest& request, const std::string& id, const std::string& label,
                      std::string image) {
    ASSERT_FALSE(image.empty()) << id;
    v1::Item* item = request.add_items();
    item->set_id(id);
    item->set_image(std::move(image));
    (*item->mutable_attributes())["class"] = label;
  }

  static v1::SearchRequest Request(v1::SearchMode mode, int top_k) {
    v1::SearchRequest request;
    request.set_collection(kCollection);
    request.set_mode(mode);
    request.set_top_k(top_k);
    request.mutable_provenance()->set_candidates(8);
    return request;
  }

  grpc::Status Search(const v1::SearchRequest& request, v1::SearchResponse* response) {
    grpc::ClientContext context;
    return stub_->Search(&context, request, response);
  }

  v1::SearchResponse SearchOk(const v1::SearchRequest& request) {
    v1::SearchResponse response;
    grpc::Status status = Search(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // ExpectSameHits: the same ids in the same order with the same scores and parts.
  static void ExpectSameHits(const std::vector<v1::SearchHit>& expected,
                             const v1::SearchResponse& actual) {
    ASSERT_EQ(static_cast<size_t>(actual.hits_size()), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      const v1::SearchHit& hit = actual.hits(static_cast<int>(i));
      EXPECT_EQ(hit.id(), expected[i].id()) << "hit " << i;
      EXPECT_NEAR(hit.score(), expected[i].score(), 1e-4) << "hit " << i;
      EXPECT_EQ(hit.caption(), expected[i].caption()) << "hit " << i;
      EXPECT_EQ(hit.provenance().caption_rank(), expected[i].provenance().caption_rank());
      EXPECT_EQ(hit.provenance().image_rank(), expected[i].provenance().image_rank());
      EXPECT_EQ(hit.hybrid().caption_match_rank(), expected[i].hybrid().caption_match_rank());
      EXPECT_EQ(hit.hybrid().provenance_rank(), expected[i].hybrid().provenance_rank());
    }
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
};

TEST_F(SearchByItemE2eTest, AnItemSearchesAsItsImageDoesLessItselfInEveryMode) {
  constexpr int kTopK = 5;
  for (v1::SearchMode mode : {v1::CAPTION_MATCH, v1::PROVENANCE, v1::HYBRID}) {
    SCOPED_TRACE(v1::SearchMode_Name(mode));
    // The image search one deeper: the item's search leaves the item out and fills top_k.
    v1::SearchRequest by_image = Request(mode, kTopK + 1);
    by_image.set_image(Image("photo", "dog", 0));
    const v1::SearchResponse image_response = SearchOk(by_image);
    std::vector<v1::SearchHit> expected;
    bool self_seen = false;
    for (const v1::SearchHit& hit : image_response.hits()) {
      if (hit.id() == kQueryItem) {
        self_seen = true;
      } else {
        expected.push_back(hit);
      }
    }
    ASSERT_TRUE(self_seen) << "the item ranks among its own image's hits";
    expected.resize(kTopK);

    v1::SearchRequest by_item = Request(mode, kTopK);
    by_item.set_item_id(kQueryItem);
    const v1::SearchResponse item_response = SearchOk(by_item);
    ExpectSameHits(expected, item_response);
    // Q_t is the stored caption: the captioner's, as the image query's was.
    EXPECT_EQ(item_response.query_caption(), image_response.query_caption());
    EXPECT_EQ(item_response.query_caption(), mode == v1::CAPTION_MATCH ? "" : "a picture of a dog");
  }
}

TEST_F(SearchByItemE2eTest, IncludeSelfKeepsTheItemFirst) {
  v1::SearchRequest by_image = Request(v1::PROVENANCE, 4);
  by_image.set_image(Image("photo", "dog", 0));
  const v1::SearchResponse image_response = SearchOk(by_image);
  v1::SearchRequest by_item = Request(v1::PROVENANCE, 4);
  by_item.set_item_id(kQueryItem);
  by_item.set_include_self(true);
  const v1::SearchResponse item_response = SearchOk(by_item);
  ASSERT_GT(item_response.hits_size(), 0);
  EXPECT_EQ(item_response.hits(0).id(), kQueryItem);
  EXPECT_NEAR(item_response.hits(0).provenance().base_score(), 1.0, 1e-4);
  ExpectSameHits({image_response.hits().begin(), image_response.hits().end()}, item_response);
}

TEST_F(SearchByItemE2eTest, TheQueryItemNeedNotPassTheFilter) {
  // A dog queries the cats: the filter applies to the hits only.
  for (v1::SearchMode mode : {v1::CAPTION_MATCH, v1::PROVENANCE}) {
    v1::SearchRequest request = Request(mode, 5);
    request.set_item_id(kQueryItem);
    request.set_include_self(true);
    request.mutable_filter()->mutable_condition()->set_attribute("class");
    request.mutable_filter()->mutable_condition()->set_equals("cat");
    const v1::SearchResponse response = SearchOk(request);
    EXPECT_EQ(response.hits_size(), 3);
    for (const v1::SearchHit& hit : response.hits()) {
      EXPECT_EQ(hit.attributes().at("class"), "cat") << hit.id();
    }
  }
}

TEST_F(SearchByItemE2eTest, AnUnknownOrMalformedItemIdIsInvalidArgumentNamingIt) {
  for (const std::string& id : {std::string("no-such-item"), std::string(""),
                                std::string(600, 'x')}) {
    v1::SearchRequest request = Request(v1::PROVENANCE, 5);
    request.set_item_id(id);
    v1::SearchResponse response;
    grpc::Status status = Search(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << id.size();
    EXPECT_NE(status.error_message().find("query.item_id"), std::string::npos)
        << status.error_message();
  }
}

TEST_F(SearchByItemE2eTest, ABatchAnswersInOrderAndABadQueryFailsOnlyItself) {
  v1::SearchBatchRequest batch;
  v1::SearchRequest text = Request(v1::CAPTION_MATCH, 3);
  text.set_text("a picture of a horse");
  v1::SearchRequest bad = Request(v1::PROVENANCE, 3);
  bad.set_item_id("no-such-item");
  v1::SearchRequest item = Request(v1::HYBRID, 3);
  item.set_item_id(kQueryItem);
  v1::SearchRequest other_collection = Request(v1::CAPTION_MATCH, 3);
  other_collection.set_collection("missing");
  other_collection.set_text("a dog");
  *batch.add_queries() = text;
  *batch.add_queries() = bad;
  *batch.add_queries() = item;
  *batch.add_queries() = other_collection;

  grpc::ClientContext context;
  v1::SearchBatchResponse response;
  grpc::Status status = stub_->SearchBatch(&context, batch, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 4);
  EXPECT_EQ(response.results(0).status().code(), 0);
  const v1::SearchResponse text_alone = SearchOk(text);
  ExpectSameHits({text_alone.hits().begin(), text_alone.hits().end()},
                 response.results(0).response());
  EXPECT_EQ(response.results(0).response().hits(0).caption(), "a picture of a horse");
  EXPECT_EQ(response.results(1).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(response.results(1).status().message().rfind("queries[1]: query.item_id", 0), 0u)
      << response.results(1).status().message();
  EXPECT_EQ(response.results(1).response().hits_size(), 0);
  EXPECT_EQ(response.results(2).status().code(), 0);
  const v1::SearchResponse single = SearchOk(item);
  ExpectSameHits({single.hits().begin(), single.hits().end()}, response.results(2).response());
  EXPECT_EQ(response.results(3).status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(response.results(3).status().message().rfind("queries[3]: ", 0), 0u);
}

TEST_F(SearchByItemE2eTest, ABatchOutsideItsBoundIsInvalidArgumentNamingQueries) {
  for (int count : {0, 65}) {
    v1::SearchBatchRequest batch;
    for (int i = 0; i < count; ++i) {
      v1::SearchRequest* query = batch.add_queries();
      *query = Request(v1::CAPTION_MATCH, 1);
      query->set_text("a dog");
    }
    grpc::ClientContext context;
    v1::SearchBatchResponse response;
    grpc::Status status = stub_->SearchBatch(&context, batch, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << count;
    EXPECT_EQ(status.error_message().rfind("queries: ", 0), 0u) << status.error_message();
  }
}

TEST_F(SearchByItemE2eTest, TheHttpApiAnswersABatchAsGrpcDoes) {
  httplib::Client http("127.0.0.1", server_->http_port());
  http.set_read_timeout(60);
  const json body = {{"queries",
                      {{{"collection", kCollection}, {"itemId", kQueryItem}, {"topK", 3}},
                       {{"collection", kCollection}, {"itemId", "no-such-item"}}}}};
  auto answer = http.Post("/v1/search-batch", body.dump(), "application/json");
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->status, 200) << answer->body;
  const json results = json::parse(answer->body)["results"];
  ASSERT_EQ(results.size(), 2u);
  v1::SearchRequest item = Request(v1::CAPTION_MATCH, 3);
  item.set_item_id(kQueryItem);
  const v1::SearchResponse single = SearchOk(item);
  ASSERT_EQ(results[0]["response"]["hits"].size(), static_cast<size_t>(single.hits_size()));
  for (int i = 0; i < single.hits_size(); ++i) {
    EXPECT_EQ(results[0]["response"]["hits"][i]["id"], single.hits(i).id());
  }
  EXPECT_EQ(results[1]["status"]["code"], grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(results[1]["status"]["message"].get<std::string>().find("query.item_id"),
            std::string::npos);
}

}  // namespace
}  // namespace retrace
