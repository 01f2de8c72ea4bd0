// Lexical search over captions through the real server (demo models, SQLite store, FAISS) on
// 127.0.0.1: mode CAPTION_TEXT with a filter, top_k, min_score, min_position and a deletion,
// its bad inputs, and HYBRID's optional lexical ranking — off, the answer of two rankings; on,
// each hit's fused score grows by exactly the reciprocal rank of its lexical rank
// (retrace.proto's HYBRID and HybridOptions.lexical). The store-level ranking and its
// consistency with writes are in tests/unit/store/item_store_contract_test.cc.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

using testing::FixtureDir;
using testing::NoiseImage;
using testing::ServerProcess;

// Given captions: three mention red or a bicycle; the others make those words rare enough for
// BM25's inverse document frequency to weigh them.
const std::map<std::string, std::pair<std::string, std::string>>& Items() {
  static const auto* items = new std::map<std::string, std::pair<std::string, std::string>>{
      {"a", {"a red bicycle by a red wall", "cc-by"}},
      {"b", {"a red car", "cc-by"}},
      {"c", {"a red bicycle", "proprietary"}},
      {"d", {"a green tree", "cc-by"}},
      {"e", {"a blue sky", "cc-by"}},
      {"f", {"a white house", "cc-by"}},
      {"g", {"a yellow boat", "cc-by"}},
      {"h", {"an old bridge", "cc-by"}},
  };
  return *items;
}

class LexicalSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(FixtureDir() + "/demo/clip/model.pt")) {
      GTEST_SKIP() << "test models not found in " << FixtureDir()
                   << " (the make_test_fixtures step makes them)";
    }
    server_ = std::make_unique<ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/demo", testing::NewTempDir("lexical"), {}});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();

    grpc::ClientContext create_context;
    v1::CreateCollectionRequest create;
    create.mutable_collection()->set_name("art");
    v1::Collection created;
    ASSERT_TRUE(stub_->CreateCollection(&create_context, create, &created).ok());
    v1::IndexRequest request;
    request.set_collection("art");
    int seed = 0;
    for (const auto& [id, item] : Items()) {
      v1::Item* out = request.add_items();
      out->set_id(id);
      out->set_image(NoiseImage(64, 64, ++seed, ".png"));
      out->set_caption(item.first);
      (*out->mutable_attributes())["license"] = item.second;
    }
    grpc::ClientContext index_context;
    auto stream = stub_->Index(&index_context);
    ASSERT_TRUE(stream->Write(request));
    stream->WritesDone();
    v1::IndexResponse response;
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_TRUE(stream->Finish().ok());
    for (const v1::IndexResult& r : response.results()) {
      ASSERT_EQ(r.status().code(), 0) << r.id() << ": " << r.status().message();
    }
    position_ = response.position();
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
  static v1::SearchRequest TextQuery(v1::SearchMode mode, const std::string& text) {
    v1::SearchRequest request;
    request.set_collection("art");
    request.set_mode(mode);
    request.set_text(text);
    return request;
  }
  static std::vector<std::string> Ids(const v1::SearchResponse& response) {
    std::vector<std::string> ids;
    for (const v1::SearchHit& hit : response.hits()) ids.push_back(hit.id());
    return ids;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
  int64_t position_ = 0;
};

TEST_F(LexicalSearchTest, CaptionTextRanksByWordsAndHonoursFilterTopKAndMinScore) {
  v1::SearchRequest request = TextQuery(v1::CAPTION_TEXT, "Red \"bicycle\" OR*");
  request.set_min_position(position_);
  v1::SearchResponse all = SearchOk(request);
  // The two captions with both words first, then the one with "red" only; no other caption
  // holds either word ("or" is a word here, and no caption holds it).
  ASSERT_EQ(all.hits_size(), 3) << all.DebugString();
  EXPECT_EQ(std::set<std::string>({all.hits(0).id(), all.hits(1).id()}),
            (std::set<std::string>{"a", "c"}));
  EXPECT_EQ(all.hits(2).id(), "b");
  for (int i = 0; i < all.hits_size(); ++i) {
    EXPECT_GT(all.hits(i).score(), 0);
    if (i > 0) EXPECT_LE(all.hits(i).score(), all.hits(i - 1).score());
    EXPECT_EQ(all.hits(i).caption(), Items().at(all.hits(i).id()).first);
    EXPECT_EQ(all.hits(i).attributes().at("license"), Items().at(all.hits(i).id()).second);
  }
  EXPECT_GE(all.applied_position(), position_);

  // A filter: "c" is proprietary; the ranking of the rest keeps its order.
  v1::SearchRequest filtered = request;
  v1::FilterCondition* condition = filtered.mutable_filter()->mutable_condition();
  condition->set_attribute("license");
  condition->set_equals("cc-by");
  v1::SearchResponse passing = SearchOk(filtered);
  std::vector<std::string> expected;
  for (const std::string& id : Ids(all)) {
    if (id != "c") expected.push_back(id);
  }
  EXPECT_EQ(Ids(passing), expected);

  v1::SearchRequest one = request;
  one.set_top_k(1);
  EXPECT_EQ(Ids(SearchOk(one)), std::vector<std::string>{all.hits(0).id()});

  // min_score at the second hit's score cuts the hits below it, and says how many.
  ASSERT_GT(all.hits(1).score(), all.hits(2).score());
  v1::SearchRequest cut = request;
  cut.set_min_score(all.hits(1).score());
  v1::SearchResponse above = SearchOk(cut);
  EXPECT_EQ(above.hits_size(), 2);
  EXPECT_EQ(above.cut_by_min_score(), 1);

  // A deleted item is no longer a hit.
  grpc::ClientContext delete_context;
  v1::DeleteRequest del;
  del.set_collection("art");
  del.add_ids("b");
  v1::DeleteResponse deleted;
  ASSERT_TRUE(stub_->Delete(&delete_context, del, &deleted).ok());
  v1::SearchRequest after = request;
  after.set_min_position(deleted.position());
  EXPECT_EQ(Ids(SearchOk(after)), (std::vector<std::string>{all.hits(0).id(), all.hits(1).id()}));
}

TEST_F(LexicalSearchTest, CaptionTextRefusesQueriesWithoutWords) {
  v1::SearchResponse response;
  v1::SearchRequest image;
  image.set_collection("art");
  image.set_mode(v1::CAPTION_TEXT);
  image.set_image(NoiseImage(64, 64, 99, ".png"));
  grpc::Status status = Search(image, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("query"), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("CAPTION_TEXT"), std::string::npos);

  status = Search(TextQuery(v1::CAPTION_TEXT, "\"*\" -- ()"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("text: ", 0), 0u) << status.error_message();

  std::string many;
  for (int i = 0; i < 40; ++i) absl::StrAppend(&many, "w", i, " ");
  status = Search(TextQuery(v1::CAPTION_TEXT, many), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("over the limit of 32"), std::string::npos)
      << status.error_message();

  v1::SearchRequest negative = TextQuery(v1::CAPTION_TEXT, "red");
  negative.set_min_score(-0.5f);
  status = Search(negative, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("min_score: ", 0), 0u) << status.error_message();

  // HYBRID's lexical ranking needs words too: an image query without a query_caption.
  image.set_mode(v1::HYBRID);
  image.mutable_hybrid()->set_lexical(true);
  status = Search(image, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("hybrid.lexical: ", 0), 0u) << status.error_message();
  image.set_query_caption("a red bicycle");
  EXPECT_TRUE(Search(image, &response).ok());
}

TEST_F(LexicalSearchTest, HybridLexicalOffIsTwoRankingsAndOnAddsTheLexicalRanksReciprocal) {
  v1::SearchRequest request = TextQuery(v1::HYBRID, "red bicycle");
  request.set_top_k(20);  // every item: both vector rankings hold all eight
  const v1::SearchResponse plain = SearchOk(request);
  v1::SearchRequest off = request;
  off.mutable_hybrid()->set_lexical(false);
  const v1::SearchResponse explicit_off = SearchOk(off);
  ASSERT_EQ(plain.hits_size(), static_cast<int>(Items().size()));
  ASSERT_EQ(explicit_off.hits_size(), plain.hits_size());
  std::map<std::string, float> off_scores;
  for (int i = 0; i < plain.hits_size(); ++i) {
    EXPECT_EQ(explicit_off.hits(i).id(), plain.hits(i).id());
    EXPECT_EQ(explicit_off.hits(i).score(), plain.hits(i).score());
    EXPECT_EQ(plain.hits(i).hybrid().lexical_rank(), -1);
    off_scores[plain.hits(i).id()] = plain.hits(i).score();
  }

  v1::SearchRequest on = request;
  on.mutable_hybrid()->set_lexical(true);
  const v1::SearchResponse fused = SearchOk(on);
  ASSERT_EQ(fused.hits_size(), plain.hits_size());
  // The lexical ranking alone, to compare ranks with.
  v1::SearchRequest lexical_only = TextQuery(v1::CAPTION_TEXT, "red bicycle");
  lexical_only.set_top_k(20);
  const std::vector<std::string> lexical = Ids(SearchOk(lexical_only));
  ASSERT_EQ(lexical.size(), 3u);
  for (const v1::SearchHit& hit : fused.hits()) {
    const auto at = std::find(lexical.begin(), lexical.end(), hit.id());
    const int rank = at == lexical.end() ? -1 : static_cast<int>(at - lexical.begin());
    EXPECT_EQ(hit.hybrid().lexical_rank(), rank) << hit.id();
    const float added = rank < 0 ? 0.0f : 1.0f / (60 + rank + 1);
    EXPECT_NEAR(hit.score(), off_scores.at(hit.id()) + added, 1e-6) << hit.id();
    if (rank >= 0) {
      EXPECT_GT(hit.hybrid().lexical_score(), 0);
    } else {
      EXPECT_EQ(hit.hybrid().lexical_score(), 0);
    }
  }
}

}  // namespace
}  // namespace retrace
