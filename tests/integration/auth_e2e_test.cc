// Bearer tokens, end to end against the real server on 127.0.0.1 (demo models): a tokens file
// of hashes, scopes and collections enforced on every gRPC and HTTP call, the log naming holders
// and never a token, and a bad tokens file stopping the start.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "server/token_auth.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

using testing::FixtureDir;
using testing::ListCollections;
using testing::NoiseImage;
using testing::ServerOptions;
using testing::ServerProcess;

class AuthTest : public ::testing::Test {
 protected:
  // Tokens: the secrets; the file lists only their hashes.
  const std::string admin_ = "admin-secret-7f3a9c";
  const std::string searcher_ = "searcher-secret-1b2c3d";
  const std::string indexer_ = "indexer-secret-4e5f6a";

  void SetUp() override {
    RETRACE_REQUIRE_DEMO_MODELS();
    const std::string dir = testing::NewTempDir("auth");
    tokens_file_ = dir + "/tokens.txtpb";
    testing::WriteFileBytes(
        tokens_file_,
        absl::StrCat("tokens { name: 'ops' sha256: '", server::Sha256Hex(admin_),
                     "' scopes: 'admin' }\n", "tokens { name: 'gallery-app' sha256: '",
                     server::Sha256Hex(searcher_), "' scopes: 'search' collections: 'art' }\n",
                     "tokens { name: 'ingest' sha256: '", server::Sha256Hex(indexer_),
                     "' scopes: 'index' collections: 'art' }\n"));
    ServerOptions options{FixtureDir() + "/demo",
                          dir + "/data",
                          {"--auth-tokens", tokens_file_, "--access-log", "--log-level", "debug"}};
    options.http = true;
    server_ = std::make_unique<ServerProcess>(options);
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();
  }

  grpc::Status Create(const std::string& token, const std::string& name) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name(name);
    v1::Collection response;
    return stub_->CreateCollection(&context, request, &response);
  }

  grpc::Status SearchText(const std::string& token, const std::string& collection) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    v1::SearchRequest request;
    request.set_collection(collection);
    request.set_text("a dog");
    v1::SearchResponse response;
    return stub_->Search(&context, request, &response);
  }

  grpc::Status IndexOne(const std::string& token, const std::string& collection,
                        const std::string& id) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    auto stream = stub_->Index(&context);
    v1::IndexRequest request;
    request.set_collection(collection);
    v1::Item* item = request.add_items();
    item->set_id(id);
    item->set_image(NoiseImage(40, 30, 7, ".png"));
    item->set_caption("noise");
    stream->Write(request);
    stream->WritesDone();
    v1::IndexResponse response;
    while (stream->Read(&response)) {
    }
    return stream->Finish();
  }

  std::string tokens_file_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
};

TEST_F(AuthTest, HttpCallsNeedTheSameTokensScopesAndCollections) {
  httplib::Client http("127.0.0.1", server_->http_port());
  const auto bearer = [](const std::string& token) {
    return httplib::Headers{{"Authorization", "Bearer " + token}};
  };
  const std::string art = R"({"collection":{"name":"art"}})";
  auto anonymous = http.Get("/v1/collections");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401) << anonymous->body;
  EXPECT_TRUE(absl::StrContains(anonymous->body, "UNAUTHENTICATED")) << anonymous->body;
  auto wrong = http.Get("/v1/collections", bearer("not-a-token"));
  EXPECT_EQ(wrong->status, 401);
  auto search_scope = http.Post("/v1/collections", bearer(searcher_), art, "application/json");
  EXPECT_EQ(search_scope->status, 403) << search_scope->body;
  auto admin = http.Post("/v1/collections", bearer(admin_), art, "application/json");
  EXPECT_EQ(admin->status, 200) << admin->body;
  ASSERT_EQ(http.Post("/v1/collections", bearer(admin_), R"({"collection":{"name":"other"}})",
                      "application/json")
                ->status,
            200);
  // The searcher sees only its collection, and may not search the other.
  auto listed = http.Get("/v1/collections", bearer(searcher_));
  ASSERT_EQ(listed->status, 200);
  EXPECT_TRUE(absl::StrContains(listed->body, "\"art\""));
  EXPECT_FALSE(absl::StrContains(listed->body, "\"other\"")) << listed->body;
  auto other = http.Post("/v1/collections/other/search", bearer(searcher_), R"({"text":"a"})",
                         "application/json");
  EXPECT_EQ(other->status, 403) << other->body;
  auto ok = http.Post("/v1/collections/art/search", bearer(searcher_), R"({"text":"a"})",
                      "application/json");
  EXPECT_EQ(ok->status, 200) << ok->body;
  // Health and the page need no token; they show no data.
  EXPECT_EQ(http.Get("/v1/health")->status, 200);
  EXPECT_EQ(http.Get("/")->status, 200);
}

TEST_F(AuthTest, MissingOrUnknownTokensAreUnauthenticatedAndHealthStaysOpen) {
  // ServerProcess::Start waited for SERVING without a token: health is open.
  EXPECT_EQ(server_->HealthStatus(), "SERVING");
  grpc::Status none = ListCollections(server_->channel());
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(none.error_message(), "Bearer")) << none.error_message();
  EXPECT_EQ(ListCollections(server_->channel(), "Bearer not-a-token").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListCollections(server_->channel(), "Basic " + admin_).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(ListCollections(server_->channel(), "Bearer " + admin_).ok());
  // An Index stream without a token ends before any item is read.
  EXPECT_EQ(IndexOne("", "art", "x").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthTest, ScopesAndCollectionsAreEnforcedOnEveryRpc) {
  ASSERT_TRUE(Create(admin_, "art").ok());
  ASSERT_TRUE(Create(admin_, "private").ok());

  // search scope, collection art only.
  grpc::Status s = Create(searcher_, "mine");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "'gallery-app' lacks the scope 'admin'"))
      << s.error_message();
  EXPECT_TRUE(SearchText(searcher_, "art").ok());
  s = SearchText(searcher_, "private");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "may not use collection 'private'"))
      << s.error_message();
  EXPECT_EQ(IndexOne(searcher_, "art", "a").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::ListCollectionsResponse listed;
  ASSERT_TRUE(ListCollections(server_->channel(), "Bearer " + searcher_, &listed).ok());
  ASSERT_EQ(listed.collections_size(), 1);
  EXPECT_EQ(listed.collections(0).name(), "art");

  // index scope, collection art only.
  EXPECT_TRUE(IndexOne(indexer_, "art", "a").ok());
  s = IndexOne(indexer_, "private", "b");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "'ingest' may not use collection 'private'"))
      << s.error_message();
  EXPECT_EQ(SearchText(indexer_, "art").error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // admin implies the other scopes, on every collection.
  EXPECT_TRUE(IndexOne(admin_, "private", "b").ok());
  EXPECT_TRUE(SearchText(admin_, "private").ok());
  v1::ListCollectionsResponse all;
  ASSERT_TRUE(ListCollections(server_->channel(), "Bearer " + admin_, &all).ok());
  EXPECT_EQ(all.collections_size(), 2);

  // The log names holders, never a token.
  const std::string log = server_->Log();
  EXPECT_TRUE(absl::StrContains(log, "principal=gallery-app")) << server_->LogTail();
  for (const std::string& token : {admin_, searcher_, indexer_}) {
    EXPECT_FALSE(absl::StrContains(log, token)) << "the log holds a token";
  }
}

TEST(AuthFileTest, ABadTokensFileStopsTheStart) {
  RETRACE_REQUIRE_DEMO_MODELS();
  const std::string dir = testing::NewTempDir("auth-bad");
  testing::WriteFileBytes(dir + "/tokens.txtpb",
                          "tokens { name: 'x' sha256: 'abc' scopes: 'search' }\n");
  ServerProcess server(
      {FixtureDir() + "/demo", dir + "/data", {"--auth-tokens", dir + "/tokens.txtpb"}});
  EXPECT_FALSE(server.Start().ok());
  EXPECT_TRUE(absl::StrContains(server.LogTail(), "tokens[0].sha256: expected 64 hex digits"))
      << server.LogTail();
}

}  // namespace
}  // namespace retrace
