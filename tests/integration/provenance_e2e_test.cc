// PROVENANCE and HYBRID end to end with oracle models (tools/fixtures/oracle_models.py) through
// the real server, LibTorch, FAISS and SQLite. The oracle image encoder puts an image's class
// first and a colour thumbnail after it, so an exact copy is the nearest image; the oracle CLIP
// and captioner know classes exactly. The gallery holds the query's exact copy indexed under a
// wrong caption ("a cat": a near-duplicate whose concept is wrong), a painting of the same dog
// class with the right caption (less similar, concept right), and one image of each other class.
// The tests show re-ranking changing the winner for the reason the paper gives, with and
// without query_caption, and check every reported part against the formula.
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

constexpr char kCollection[] = "gallery";
const char* const kOtherClasses[] = {"cat", "horse", "house", "guitar", "bird", "tree", "car"};

class ProvenanceE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/image_encoder/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    data_dir_ = testing::NewTempDir("provenance");
    StartServer();
    query_ = Image("photo", "dog", 0);

    grpc::ClientContext create_context;
    v1::CreateCollectionRequest create;
    create.mutable_collection()->set_name(kCollection);
    create.mutable_collection()->set_shards(2);
    ASSERT_TRUE(stub_->CreateCollection(&create_context, create, &info_).ok());

    v1::IndexRequest request;
    request.set_collection(kCollection);
    AddItem(request, "copy-captioned-cat", query_, "a picture of a cat");
    AddItem(request, "painting-dog", Image("painting", "dog", 0), "");
    for (const char* label : kOtherClasses) {
      AddItem(request, std::string("photo-") + label, Image("photo", label, 1), "");
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

  void StartServer() {
    server_ = std::make_unique<testing::ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/oracle", data_dir_, {}});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();
  }

  static std::string Image(const std::string& domain, const std::string& label, int n) {
    return testing::ReadFileBytes(FixtureDir() + "/images/" + domain + "/" + label + "/" + label +
                                  "_" + std::to_string(n) + ".png");
  }

  static void AddItem(v1::IndexRequest& request, const std::string& id, std::string image,
                      const std::string& caption) {
    ASSERT_FALSE(image.empty()) << id;
    v1::Item* item = request.add_items();
    item->set_id(id);
    item->set_image(std::move(image));
    item->set_caption(caption);
  }

  v1::SearchRequest Provenance() const {
    v1::SearchRequest request;
    request.set_collection(kCollection);
    request.set_image(query_);
    request.set_mode(v1::PROVENANCE);
    request.set_top_k(20);
    return request;
  }

  v1::SearchResponse SearchOk(const v1::SearchRequest& request) {
    grpc::ClientContext context;
    v1::SearchResponse response;
    grpc::Status status = stub_->Search(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static std::map<std::string, v1::SearchHit> ById(const v1::SearchResponse& response) {
    std::map<std::string, v1::SearchHit> hits;
    for (const v1::SearchHit& hit : response.hits()) hits[hit.id()] = hit;
    return hits;
  }

  std::string data_dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
  std::string query_;
  v1::Collection info_;
};

TEST_F(ProvenanceE2eTest, TheCollectionHasAnImageSpaceOfEncoderPlusClip) {
  EXPECT_EQ(info_.image_dim(), 64 + info_.caption_dim());
  EXPECT_NE(info_.image_encoder_model(), "");
  EXPECT_EQ(info_.image_index(), "Flat");
}

TEST_F(ProvenanceE2eTest, WithoutRerankingTheExactCopyWins) {
  v1::SearchRequest request = Provenance();
  request.mutable_provenance()->set_no_rerank(true);
  v1::SearchResponse response = SearchOk(request);
  ASSERT_EQ(response.hits_size(), 9);
  EXPECT_EQ(response.hits(0).id(), "copy-captioned-cat");
  EXPECT_EQ(response.hits(1).id(), "painting-dog");
  EXPECT_NEAR(response.hits(0).provenance().base_score(), 1.0, 1e-4);
  for (const v1::SearchHit& hit : response.hits()) {
    EXPECT_EQ(hit.provenance().caption_rank(), -1);
    EXPECT_EQ(hit.provenance().image_rank(), -1);
    EXPECT_EQ(hit.score(), hit.provenance().base_score());
  }
  EXPECT_EQ(response.query_caption(), "");  // nothing needed one
}

TEST_F(ProvenanceE2eTest, TheImageToCaptionTermLetsTheRightConceptWin) {
  // w2 = 0 isolates the query -> captions direction: the painting's caption names the query's
  // class (P = 0), the copy's names another (P >= 1).
  v1::SearchRequest request = Provenance();
  request.mutable_provenance()->set_beta(1.0f);
  request.mutable_provenance()->set_w1(0.1f);
  request.mutable_provenance()->set_w2(0.0f);
  std::map<std::string, v1::SearchHit> base = [&] {
    v1::SearchRequest plain = request;
    plain.mutable_provenance()->set_no_rerank(true);
    return ById(SearchOk(plain));
  }();
  const float gap = base["copy-captioned-cat"].provenance().base_score() -
                    base["painting-dog"].provenance().base_score();
  // The premise: the copy is more similar, by less than the most the term can move it.
  ASSERT_GT(gap, 0.f);
  ASSERT_LT(gap, 0.1f * (1 - std::exp(-1.0f)));

  v1::SearchResponse response = SearchOk(request);
  ASSERT_GE(response.hits_size(), 2);
  EXPECT_EQ(response.hits(0).id(), "painting-dog");
  EXPECT_EQ(response.hits(0).provenance().caption_rank(), 0);
  std::map<std::string, v1::SearchHit> hits = ById(response);
  EXPECT_GE(hits["copy-captioned-cat"].provenance().caption_rank(), 1);
  // Every part is the formula's: S' = S + w1 e^{-beta P} (+ 0).
  for (const v1::SearchHit& hit : response.hits()) {
    const v1::ProvenanceParts& p = hit.provenance();
    EXPECT_NEAR(p.base_score(), base[hit.id()].provenance().base_score(), 1e-5) << hit.id();
    EXPECT_NEAR(p.score(), p.base_score() + 0.1f * std::exp(-1.0f * p.caption_rank()), 1e-5);
    EXPECT_EQ(hit.score(), p.score());
  }
  for (int i = 1; i < response.hits_size(); ++i) {
    EXPECT_GE(response.hits(i - 1).score(), response.hits(i).score());
  }
}

TEST_F(ProvenanceE2eTest, QueryCaptionSteersTheCaptionToImageTerm) {
  // Without query_caption, Q_t is the server's caption of the query: a dog, so a dog wins.
  v1::SearchRequest request = Provenance();
  request.mutable_provenance()->set_w1(0.0f);
  request.mutable_provenance()->set_w2(2.0f);
  v1::SearchResponse generated = SearchOk(request);
  EXPECT_EQ(generated.query_caption(), "a picture of a dog");
  ASSERT_GE(generated.hits_size(), 1);
  EXPECT_TRUE(generated.hits(0).id() == "copy-captioned-cat" ||
              generated.hits(0).id() == "painting-dog")
      << generated.hits(0).id();

  // The prompt that "generated" the query named a horse: the horse image ranks first for Q_t
  // (P' = 0), and w2 = 2 outweighs its lower visual similarity.
  request.set_query_caption("a picture of a horse");
  v1::SearchResponse given = SearchOk(request);
  EXPECT_EQ(given.query_caption(), "a picture of a horse");
  ASSERT_GE(given.hits_size(), 1);
  EXPECT_EQ(given.hits(0).id(), "photo-horse");
  EXPECT_EQ(given.hits(0).provenance().image_rank(), 0);
  EXPECT_LT(given.hits(0).provenance().base_score(),
            ById(given)["copy-captioned-cat"].provenance().base_score());
}

TEST_F(ProvenanceE2eTest, ATextQuerySearchesImagesByClipAndIsItsOwnCaption) {
  v1::SearchRequest request = Provenance();
  request.set_text("a picture of a guitar");
  request.mutable_provenance()->set_no_rerank(true);
  v1::SearchResponse response = SearchOk(request);
  ASSERT_GE(response.hits_size(), 1);
  EXPECT_EQ(response.hits(0).id(), "photo-guitar");
  EXPECT_GT(response.hits(0).provenance().base_score(), 0.9f);  // CLIP text-image cosine

  request.mutable_provenance()->set_no_rerank(false);
  v1::SearchResponse reranked = SearchOk(request);
  EXPECT_EQ(reranked.query_caption(), "a picture of a guitar");
  EXPECT_EQ(reranked.hits(0).id(), "photo-guitar");
  EXPECT_EQ(reranked.hits(0).provenance().image_rank(), 0);
}

TEST_F(ProvenanceE2eTest, AnEmbeddingQueryIsAnImageSpaceVector) {
  // The stored embeddings of the copy, laid out as the image space: [e_enc, e_clip] / sqrt(2).
  grpc::ClientContext get_context;
  v1::GetRequest get;
  get.set_collection(kCollection);
  get.add_ids("copy-captioned-cat");
  get.set_include_embeddings(true);
  v1::GetResponse got;
  ASSERT_TRUE(stub_->Get(&get_context, get, &got).ok());
  const v1::StoredItem& item = got.results(0).item();
  ASSERT_EQ(item.image_features().values_size(), 64);
  v1::SearchRequest request = Provenance();
  for (float x : item.image_features().values()) request.mutable_embedding()->add_values(x);
  for (float x : item.clip_image().values()) request.mutable_embedding()->add_values(x);

  // No image to caption: with w2 > 0 the query caption must be given.
  grpc::ClientContext context;
  v1::SearchResponse response;
  grpc::Status status = stub_->Search(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("query_caption"), std::string::npos);

  request.set_query_caption("a picture of a dog");
  request.mutable_provenance()->set_no_rerank(true);
  v1::SearchResponse found = SearchOk(request);
  ASSERT_GE(found.hits_size(), 1);
  EXPECT_EQ(found.hits(0).id(), "copy-captioned-cat");
  EXPECT_NEAR(found.hits(0).provenance().base_score(), 1.0, 1e-4);

  request.mutable_embedding()->add_values(0.5f);
  grpc::ClientContext wrong_context;
  status = stub_->Search(&wrong_context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find(std::to_string(info_.image_dim())), std::string::npos);
}

TEST_F(ProvenanceE2eTest, CandidatesBoundTheReRankedSet) {
  v1::SearchRequest request = Provenance();
  request.mutable_provenance()->set_candidates(2);
  v1::SearchResponse response = SearchOk(request);
  ASSERT_EQ(response.hits_size(), 2);  // only N candidates exist to rank, whatever top_k
  for (const v1::SearchHit& hit : response.hits()) {
    EXPECT_TRUE(hit.id() == "copy-captioned-cat" || hit.id() == "painting-dog") << hit.id();
    EXPECT_LE(hit.provenance().caption_rank(), 1);
  }
}

TEST_F(ProvenanceE2eTest, HybridFusesBothRankingsByReciprocalRank) {
  v1::SearchRequest request = Provenance();
  request.set_mode(v1::HYBRID);
  request.mutable_hybrid()->set_rrf_k(10);
  v1::SearchResponse response = SearchOk(request);
  ASSERT_GE(response.hits_size(), 2);
  // The painting is first by Caption-Matching (its caption names the query's class) and near
  // the top by provenance; the copy is first only by provenance.
  EXPECT_EQ(response.hits(0).id(), "painting-dog");
  EXPECT_EQ(response.hits(0).hybrid().caption_match_rank(), 0);
  for (const v1::SearchHit& hit : response.hits()) {
    const v1::HybridParts& h = hit.hybrid();
    float expected = 0;
    if (h.caption_match_rank() >= 0) expected += 1.0f / (10 + h.caption_match_rank() + 1);
    if (h.provenance_rank() >= 0) expected += 1.0f / (10 + h.provenance_rank() + 1);
    EXPECT_NEAR(hit.score(), expected, 1e-6) << hit.id();
    EXPECT_EQ(hit.has_provenance(), h.provenance_rank() >= 0) << hit.id();
  }
  // Caption-Matching alone agrees on the painting's rank.
  v1::SearchRequest caption_match = request;
  caption_match.set_mode(v1::CAPTION_MATCH);
  EXPECT_EQ(SearchOk(caption_match).hits(0).id(), "painting-dog");
}

TEST_F(ProvenanceE2eTest, HybridTakesTheProvenanceRankingToDepthTopK) {
  // top_k above N: both rankings go to depth max(top_k, N), so every one of the gallery's 9
  // items is in the provenance ranking too, not only the N = 2 candidates.
  v1::SearchRequest request = Provenance();
  request.set_mode(v1::HYBRID);
  request.set_top_k(9);
  request.mutable_provenance()->set_candidates(2);
  v1::SearchResponse response = SearchOk(request);
  ASSERT_EQ(response.hits_size(), 9);
  std::set<int> provenance_ranks;
  for (const v1::SearchHit& hit : response.hits()) {
    EXPECT_GE(hit.hybrid().provenance_rank(), 0) << hit.id();
    EXPECT_GE(hit.hybrid().caption_match_rank(), 0) << hit.id();
    EXPECT_TRUE(hit.has_provenance()) << hit.id();
    provenance_ranks.insert(hit.hybrid().provenance_rank());
  }
  EXPECT_EQ(provenance_ranks.size(), 9u);
  EXPECT_EQ(*provenance_ranks.rbegin(), 8);
}

TEST_F(ProvenanceE2eTest, TheImageSpaceSurvivesARestart) {
  v1::SearchRequest request = Provenance();
  v1::SearchResponse before = SearchOk(request);
  ASSERT_EQ(server_->Stop(), 0);  // a clean stop writes snapshots of both spaces
  EXPECT_TRUE(fs::exists(data_dir_ + "/snapshots/gallery/image")) << server_->LogTail();
  StartServer();
  v1::SearchResponse after = SearchOk(request);
  ASSERT_EQ(after.hits_size(), before.hits_size());
  for (int i = 0; i < before.hits_size(); ++i) {
    EXPECT_EQ(after.hits(i).id(), before.hits(i).id());
    EXPECT_FLOAT_EQ(after.hits(i).score(), before.hits(i).score());
  }
}

TEST_F(ProvenanceE2eTest, AServerWithoutTheCollectionsImageEncoderRefusesIt) {
  ASSERT_EQ(server_->Stop(), 0);
  // The same CLIP and captioner, no image encoder.
  const std::string models = testing::NewTempDir("no-encoder");
  for (const char* model : {"clip", "captioner"}) {
    fs::create_directory_symlink(fs::absolute(FixtureDir() + "/oracle/" + model),
                                 models + "/" + model);
  }
  server_ = std::make_unique<testing::ServerProcess>(
      testing::ServerOptions{models, data_dir_, {}});
  ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
  stub_ = server_->NewStub();
  grpc::ClientContext context;
  v1::SearchResponse response;
  grpc::Status status = stub_->Search(&context, Provenance(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("image encoder"), std::string::npos)
      << status.error_message();
}

}  // namespace
}  // namespace retrace
