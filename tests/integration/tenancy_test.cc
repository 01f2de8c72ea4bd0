// Tenants, end to end against the real server (demo models) with an AuthTokens file: two tenant
// tokens, each carrying a mandatory filter (AuthToken.filter), and an admin token without one.
// A tenant never sees, finds (every search mode), counts, gets, lists, deletes or overwrites
// another's items, through gRPC and through the HTTP API; a request filter that contradicts the
// token's gives an empty answer; Index through a tenant token stamps its attribute; a malformed
// token filter stops the start.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/token_auth.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::FixtureDir;
using testing::NoiseImage;
using testing::ServerOptions;
using testing::ServerProcess;
using Ids = std::set<std::string>;

bool HaveModels() { return fs::exists(FixtureDir() + "/demo/clip/model.pt"); }

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

class TenancyTest : public ::testing::Test {
 protected:
  // Tokens: the secrets; the file lists only their hashes.
  const std::string admin_ = "admin-secret-91c2";
  const std::string acme_ = "acme-secret-5d7e";
  const std::string globex_ = "globex-secret-08fa";

  void SetUp() override {
    if (!HaveModels()) {
      GTEST_SKIP() << "test models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    const std::string dir = testing::NewTempDir("tenancy");
    const std::string tokens = dir + "/tokens.txtpb";
    WriteFile(tokens,
              absl::StrCat("tokens { name: 'ops' sha256: '", server::Sha256Hex(admin_),
                           "' scopes: 'admin' }\n",
                           "tokens { name: 'acme' sha256: '", server::Sha256Hex(acme_),
                           "' scopes: 'search' scopes: 'index' filter: 'tenant = \"acme\"' }\n",
                           "tokens { name: 'globex' sha256: '", server::Sha256Hex(globex_),
                           "' scopes: 'search' scopes: 'index' "
                           "filter: 'tenant = \"globex\"' }\n"));
    ServerOptions options;
    options.models_dir = FixtureDir() + "/demo";
    options.data_dir = dir + "/data";
    options.extra_args = {"--auth-tokens", tokens};
    options.http = true;
    server_ = std::make_unique<ServerProcess>(options);
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();
    http_ = std::make_unique<httplib::Client>("127.0.0.1", server_->http_port());
    http_->set_read_timeout(60);

    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + admin_);
    v1::CreateCollectionRequest create;
    create.mutable_collection()->set_name("shared");
    v1::Collection created;
    ASSERT_TRUE(stub_->CreateCollection(&context, create, &created).ok());
  }

  // Index writes items through `token` over gRPC; one result per item.
  v1::IndexResponse Index(const std::string& token, const std::vector<v1::Item>& items) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    auto stream = stub_->Index(&context);
    v1::IndexRequest request;
    request.set_collection("shared");
    for (const v1::Item& item : items) *request.add_items() = item;
    EXPECT_TRUE(stream->Write(request));
    stream->WritesDone();
    v1::IndexResponse response, one;
    while (stream->Read(&one)) response = one;
    const grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static v1::Item Item(const std::string& id, int seed,
                       const std::map<std::string, std::string>& attributes = {}) {
    v1::Item item;
    item.set_id(id);
    item.set_image(NoiseImage(48, 40, seed, ".png"));
    item.set_caption(absl::StrCat("a picture number ", seed));
    item.mutable_attributes()->insert(attributes.begin(), attributes.end());
    return item;
  }

  // IndexBoth: acme's a1..a3 and globex's g1..g2, through their own tokens, with no tenant
  // attribute given (the server stamps it).
  void IndexBoth() {
    v1::IndexResponse acme = Index(acme_, {Item("a1", 1), Item("a2", 2), Item("a3", 3)});
    v1::IndexResponse globex = Index(globex_, {Item("g1", 11), Item("g2", 12)});
    for (const v1::IndexResponse* r : {&acme, &globex}) {
      for (const auto& result : r->results()) {
        ASSERT_EQ(result.status().code(), 0) << result.id() << ": " << result.status().message();
      }
    }
  }

  v1::GetResponse Get(const std::string& token, const std::vector<std::string>& ids) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    v1::GetRequest request;
    request.set_collection("shared");
    for (const std::string& id : ids) request.add_ids(id);
    request.set_include_thumbnails(true);
    v1::GetResponse response;
    const grpc::Status status = stub_->Get(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // SearchIds: the hits of a text search through `token`, top_k deep enough for every item.
  Ids SearchIds(const std::string& token, v1::SearchMode mode,
                const v1::Filter* filter = nullptr) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    v1::SearchRequest request;
    request.set_collection("shared");
    request.set_text("a picture");
    request.set_mode(mode);
    request.set_top_k(50);
    if (filter != nullptr) *request.mutable_filter() = *filter;
    v1::SearchResponse response;
    const grpc::Status status = stub_->Search(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    Ids ids;
    for (const v1::SearchHit& hit : response.hits()) ids.insert(hit.id());
    return ids;
  }

  // ListIds pages through the collection through `token`, each id once.
  Ids ListIds(const std::string& token, int page_size) {
    Ids ids;
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + token);
      v1::ListRequest request;
      request.set_collection("shared");
      request.set_page_size(page_size);
      request.set_cursor(cursor);
      v1::ListResponse response;
      const grpc::Status status = stub_->List(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      for (const v1::StoredItem& item : response.items()) {
        EXPECT_TRUE(ids.insert(item.id()).second) << item.id() << " listed twice";
      }
      cursor = response.next_cursor();
      if (cursor.empty()) break;
    }
    return ids;
  }

  int64_t ItemCount(const std::string& token) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    v1::DescribeCollectionRequest request;
    request.set_name("shared");
    v1::Collection response;
    EXPECT_TRUE(stub_->DescribeCollection(&context, request, &response).ok());
    grpc::ClientContext list_context;
    list_context.AddMetadata("authorization", "Bearer " + token);
    v1::ListCollectionsResponse listed;
    EXPECT_TRUE(
        stub_->ListCollections(&list_context, v1::ListCollectionsRequest(), &listed).ok());
    EXPECT_EQ(listed.collections_size(), 1);
    if (listed.collections_size() == 1) {
      EXPECT_EQ(listed.collections(0).item_count(), response.item_count());
    }
    return response.item_count();
  }

  v1::DeleteResponse Delete(const std::string& token, const std::vector<std::string>& ids) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    v1::DeleteRequest request;
    request.set_collection("shared");
    for (const std::string& id : ids) request.add_ids(id);
    v1::DeleteResponse response;
    EXPECT_TRUE(stub_->Delete(&context, request, &response).ok());
    return response;
  }

  httplib::Result HttpPost(const std::string& token, const std::string& path,
                           const std::string& body) {
    return http_->Post(path, {{"Authorization", "Bearer " + token}}, body, "application/json");
  }
  httplib::Result HttpGet(const std::string& token, const std::string& path) {
    return http_->Get(path, {{"Authorization", "Bearer " + token}});
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(TenancyTest, IndexThroughATenantTokenStampsItsAttributeAndRefusesAnother) {
  IndexBoth();
  // The admin (no filter) sees the stamp.
  v1::GetResponse all = Get(admin_, {"a1", "g1"});
  ASSERT_EQ(all.results_size(), 2);
  EXPECT_EQ(all.results(0).item().attributes().at("tenant"), "acme");
  EXPECT_EQ(all.results(1).item().attributes().at("tenant"), "globex");

  // An item that names the tenant itself: its own value is fine, another's is refused by name.
  v1::IndexResponse mixed = Index(
      acme_, {Item("a4", 4, {{"tenant", "acme"}, {"license", "cc-by"}}),
              Item("a5", 5, {{"tenant", "globex"}})});
  ASSERT_EQ(mixed.results_size(), 2);
  EXPECT_EQ(mixed.results(0).status().code(), 0) << mixed.results(0).status().message();
  EXPECT_EQ(mixed.results(1).status().code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(mixed.results(1).status().message(), "items[1] 'a5'"))
      << mixed.results(1).status().message();
  EXPECT_TRUE(absl::StrContains(mixed.results(1).status().message(), "attributes.tenant"))
      << mixed.results(1).status().message();
  EXPECT_EQ(Get(admin_, {"a5"}).results(0).status().code(), grpc::StatusCode::NOT_FOUND);

  // A re-send of the same item is unchanged (the stamp is part of its stored content).
  v1::IndexResponse again = Index(acme_, {Item("a1", 1)});
  EXPECT_EQ(again.results(0).status().code(), 0);
  EXPECT_TRUE(again.results(0).unchanged());
}

// The features that came with the tenants: delete by filter, search by a stored item, lexical
// search and near-duplicates at ingest see only the caller's items too.
TEST_F(TenancyTest, DeleteByFilterItemQueriesLexicalSearchAndNearDuplicatesStayInTheTenant) {
  IndexBoth();
  // A stored item of another tenant is no query: answered as an absent id.
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + acme_);
    v1::SearchRequest request;
    request.set_collection("shared");
    request.set_item_id("g1");
    v1::SearchResponse response;
    grpc::Status status = stub_->Search(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "query.item_id: 'g1' is not in"))
        << status.error_message();
  }
  // Lexical search: every caption holds "picture"; acme finds only its own.
  EXPECT_EQ(SearchIds(acme_, v1::CAPTION_TEXT), (Ids{"a1", "a2", "a3"}));
  // A copy of globex's image indexed by acme: no near-duplicate named across tenants.
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + acme_);
    auto stream = stub_->Index(&context);
    v1::IndexRequest request;
    request.set_collection("shared");
    *request.add_items() = Item("copy-of-g1", 11);
    request.mutable_near_duplicate()->set_action(v1::NearDuplicate::REPORT);
    ASSERT_TRUE(stream->Write(request));
    stream->WritesDone();
    v1::IndexResponse response;
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_TRUE(stream->Finish().ok());
    EXPECT_EQ(response.results(0).status().code(), 0) << response.results(0).status().message();
    EXPECT_NE(response.results(0).near_duplicate_id(), "g1");
  }
  // Delete by filter: a filter every item passes deletes only the tenant's, and counts only them.
  for (bool dry_run : {true, false}) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + globex_);
    v1::DeleteRequest request;
    request.set_collection("shared");
    request.mutable_filter()->mutable_condition()->set_attribute("tenant");
    request.mutable_filter()->mutable_condition()->set_exists(true);
    request.set_dry_run(dry_run);
    v1::DeleteResponse response;
    ASSERT_TRUE(stub_->Delete(&context, request, &response).ok());
    EXPECT_EQ(response.matched(), 2) << "dry_run " << dry_run;
    EXPECT_EQ(response.deleted(), dry_run ? 0 : 2);
  }
  EXPECT_EQ(ItemCount(globex_), 0);
  EXPECT_EQ(ItemCount(acme_), 4);  // a1..a3 and the copy
}

TEST_F(TenancyTest, ATenantNeverOverwritesAnothersItemAndMayReplaceItsOwn) {
  IndexBoth();
  const v1::GetResponse before = Get(admin_, {"g1"});
  v1::IndexResponse taken = Index(acme_, {Item("g1", 99), Item("a2", 42)});
  ASSERT_EQ(taken.results_size(), 2);
  EXPECT_EQ(taken.results(0).status().code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(absl::StrContains(taken.results(0).status().message(), "items[0] 'g1'"))
      << taken.results(0).status().message();
  // Its own id is replaced, as without tenants.
  EXPECT_EQ(taken.results(1).status().code(), 0) << taken.results(1).status().message();
  EXPECT_FALSE(taken.results(1).unchanged());

  const v1::GetResponse after = Get(admin_, {"g1", "a2"});
  EXPECT_EQ(after.results(0).item().caption(), before.results(0).item().caption());
  EXPECT_EQ(after.results(0).item().attributes().at("tenant"), "globex");
  EXPECT_EQ(after.results(0).item().updated_ms(), before.results(0).item().updated_ms());
  EXPECT_EQ(after.results(1).item().caption(), "a picture number 42");
}

TEST_F(TenancyTest, OverGrpcATenantSeesFindsCountsGetsListsAndDeletesOnlyItsOwnItems) {
  IndexBoth();
  const Ids acme = {"a1", "a2", "a3"}, globex = {"g1", "g2"};
  for (v1::SearchMode mode : {v1::CAPTION_MATCH, v1::PROVENANCE, v1::HYBRID}) {
    EXPECT_EQ(SearchIds(acme_, mode), acme) << v1::SearchMode_Name(mode);
    EXPECT_EQ(SearchIds(globex_, mode), globex) << v1::SearchMode_Name(mode);
    EXPECT_EQ(SearchIds(admin_, mode).size(), 5u) << v1::SearchMode_Name(mode);
    // A request filter can narrow the token's but not widen it: asking for the other tenant,
    // or for anything at all, still finds nothing of theirs.
    v1::Filter other;
    other.mutable_condition()->set_attribute("tenant");
    other.mutable_condition()->set_equals("globex");
    EXPECT_EQ(SearchIds(acme_, mode, &other), Ids()) << v1::SearchMode_Name(mode);
    v1::Filter any;
    v1::FilterCondition& first = *any.mutable_any()->add_filters()->mutable_condition();
    first.set_attribute("tenant");
    first.set_exists(true);
    v1::FilterCondition& second = *any.mutable_any()->add_filters()->mutable_condition();
    second.set_attribute("tenant");
    second.set_exists(false);
    EXPECT_EQ(SearchIds(acme_, mode, &any), acme) << v1::SearchMode_Name(mode);
  }

  // Get: another tenant's id answers exactly as an absent one (never leak existence).
  v1::GetResponse got = Get(acme_, {"a1", "g1", "zz"});
  ASSERT_EQ(got.results_size(), 3);
  EXPECT_EQ(got.results(0).status().code(), 0);
  EXPECT_FALSE(got.results(0).item().thumbnail().empty());
  EXPECT_EQ(got.results(1).status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(got.results(2).status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(got.results(1).status().message(),
            absl::StrReplaceAll(got.results(2).status().message(), {{"[2] 'zz'", "[1] 'g1'"}}));
  EXPECT_TRUE(got.results(1).item().attributes().empty());
  EXPECT_TRUE(got.results(1).item().thumbnail().empty());
  EXPECT_TRUE(got.results(1).item().caption().empty());

  // List and counts, with page sizes that make short filtered pages and cursors.
  for (int page_size : {1, 2, 100}) {
    EXPECT_EQ(ListIds(acme_, page_size), acme) << page_size;
    EXPECT_EQ(ListIds(globex_, page_size), globex) << page_size;
  }
  EXPECT_EQ(ListIds(admin_, 2).size(), 5u);
  EXPECT_EQ(ItemCount(acme_), 3);
  EXPECT_EQ(ItemCount(globex_), 2);
  EXPECT_EQ(ItemCount(admin_), 5);

  // Delete: another tenant's item is left alone and answered as an absent one.
  v1::DeleteResponse deleted = Delete(acme_, {"g1", "a1", "zz"});
  ASSERT_EQ(deleted.results_size(), 3);
  EXPECT_EQ(deleted.results(0).status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(deleted.results(1).status().code(), 0);
  EXPECT_EQ(deleted.results(2).status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(deleted.results(0).status().message(),
            absl::StrReplaceAll(deleted.results(2).status().message(), {{"[2] 'zz'", "[0] 'g1'"}}));
  EXPECT_EQ(Get(admin_, {"g1"}).results(0).status().code(), 0) << "another tenant's item deleted";
  EXPECT_EQ(Get(admin_, {"a1"}).results(0).status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ItemCount(globex_), 2);
  EXPECT_EQ(ItemCount(acme_), 2);
}

TEST_F(TenancyTest, ListingPastManyOfAnotherTenantsItemsGivesEveryOwnItemOnce) {
  // 40 of acme's ids sort before globex's: at page_size 1 globex's List reads past them (a
  // filtered List reads up to max(10 x page_size, 10,000) stored items per call) and paging on
  // gives each of its items exactly once and none of acme's.
  std::vector<v1::Item> many;
  for (int i = 0; i < 40; ++i) many.push_back(Item(absl::StrCat("a", 100 + i), 100 + i));
  const v1::IndexResponse indexed = Index(acme_, many);
  for (const auto& result : indexed.results()) {
    ASSERT_EQ(result.status().code(), 0) << result.status().message();
  }
  Index(globex_, {Item("g1", 11), Item("g2", 12)});
  Ids listed;
  std::string cursor;
  for (int page = 0; page < 100; ++page) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + globex_);
    v1::ListRequest request;
    request.set_collection("shared");
    request.set_page_size(1);
    request.set_cursor(cursor);
    v1::ListResponse response;
    ASSERT_TRUE(stub_->List(&context, request, &response).ok());
    for (const v1::StoredItem& item : response.items()) {
      EXPECT_TRUE(listed.insert(item.id()).second) << item.id() << " listed twice";
    }
    cursor = response.next_cursor();
    if (cursor.empty()) break;
  }
  EXPECT_EQ(listed, (Ids{"g1", "g2"}));
  EXPECT_EQ(ListIds(acme_, 7).size(), 40u);
  EXPECT_EQ(ItemCount(globex_), 2);
}

TEST_F(TenancyTest, OverHttpATenantSeesFindsCountsGetsListsAndDeletesOnlyItsOwnItems) {
  // Index over HTTP through the tenant token: stamped, as over gRPC.
  const json item = {{"id", "a1"}, {"image", absl::Base64Escape(NoiseImage(48, 40, 1, ".png"))},
                     {"caption", "a picture of acme"}};
  auto indexed = HttpPost(acme_, "/v1/collections/shared/index", json({{"items", {item}}}).dump());
  ASSERT_TRUE(indexed);
  ASSERT_EQ(indexed->status, 200) << indexed->body;
  EXPECT_EQ(json::parse(indexed->body)["results"][0]["status"]["code"], 0) << indexed->body;
  const json foreign = {{"id", "a9"}, {"image", absl::Base64Escape(NoiseImage(48, 40, 9, ".png"))},
                        {"caption", "x"}, {"attributes", {{"tenant", "globex"}}}};
  auto refused = HttpPost(acme_, "/v1/collections/shared/index",
                          json({{"items", {foreign}}}).dump());
  ASSERT_EQ(refused->status, 200) << refused->body;
  EXPECT_EQ(json::parse(refused->body)["results"][0]["status"]["code"],
            static_cast<int>(grpc::StatusCode::PERMISSION_DENIED))
      << refused->body;
  Index(globex_, {Item("g1", 11), Item("g2", 12)});
  EXPECT_EQ(Get(admin_, {"a1"}).results(0).item().attributes().at("tenant"), "acme");

  for (const char* mode : {"CAPTION_MATCH", "PROVENANCE", "HYBRID"}) {
    auto found = HttpPost(acme_, "/v1/collections/shared/search",
                          json({{"text", "a picture"}, {"mode", mode}, {"topK", 50}}).dump());
    ASSERT_EQ(found->status, 200) << found->body;
    const json hits = json::parse(found->body)["hits"];
    ASSERT_EQ(hits.size(), 1u) << mode << ": " << found->body;
    EXPECT_EQ(hits[0]["id"], "a1");
    // A contradicting request filter: an empty answer, not an error.
    auto none = HttpPost(
        acme_, "/v1/collections/shared/search",
        json({{"text", "a picture"},
              {"mode", mode},
              {"filter", {{"condition", {{"attribute", "tenant"}, {"equals", "globex"}}}}}})
            .dump());
    ASSERT_EQ(none->status, 200) << none->body;
    EXPECT_TRUE(json::parse(none->body)["hits"].empty()) << none->body;
  }

  auto got = HttpPost(acme_, "/v1/collections/shared/get", R"({"ids":["a1","g1"]})");
  ASSERT_EQ(got->status, 200) << got->body;
  const json results = json::parse(got->body)["results"];
  EXPECT_EQ(results[0]["status"]["code"], 0);
  EXPECT_EQ(results[1]["status"]["code"], static_cast<int>(grpc::StatusCode::NOT_FOUND));

  // The thumbnail route answers 404 for another tenant's item, as for an absent one.
  EXPECT_EQ(HttpGet(acme_, "/v1/collections/shared/thumbnail?id=a1")->status, 200);
  auto theirs = HttpGet(acme_, "/v1/collections/shared/thumbnail?id=g1");
  auto absent = HttpGet(acme_, "/v1/collections/shared/thumbnail?id=zz");
  EXPECT_EQ(theirs->status, 404);
  EXPECT_EQ(absent->status, 404);
  EXPECT_EQ(HttpGet(globex_, "/v1/collections/shared/thumbnail?id=g1")->status, 200);

  auto listed = HttpPost(acme_, "/v1/collections/shared/list", R"({"pageSize":1})");
  ASSERT_EQ(listed->status, 200) << listed->body;
  const json page = json::parse(listed->body);
  ASSERT_EQ(page["items"].size(), 1u) << listed->body;
  EXPECT_EQ(page["items"][0]["id"], "a1");

  auto described = HttpGet(acme_, "/v1/collections/shared");
  ASSERT_EQ(described->status, 200) << described->body;
  EXPECT_EQ(json::parse(described->body)["itemCount"], "1") << described->body;  // int64: a string
  auto collections = HttpGet(globex_, "/v1/collections");
  ASSERT_EQ(collections->status, 200);
  EXPECT_EQ(json::parse(collections->body)["collections"][0]["itemCount"], "2")
      << collections->body;

  auto deleted = HttpPost(acme_, "/v1/collections/shared/delete", R"({"ids":["g1"]})");
  ASSERT_EQ(deleted->status, 200) << deleted->body;
  EXPECT_EQ(json::parse(deleted->body)["results"][0]["status"]["code"],
            static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(Get(admin_, {"g1"}).results(0).status().code(), 0);
}

TEST(TenancyStartTest, AMalformedTokenFilterStopsTheStartWithAClearMessage) {
  if (!HaveModels()) GTEST_SKIP() << "test models not found in " << FixtureDir();
  const std::string dir = testing::NewTempDir("tenancy-bad");
  WriteFile(dir + "/tokens.txtpb",
            absl::StrCat("tokens { name: 'acme' sha256: '", server::Sha256Hex("s"),
                         "' scopes: 'search' filter: 'tenant = \"acme\" and' }\n"));
  ServerOptions options;
  options.models_dir = FixtureDir() + "/demo";
  options.data_dir = dir + "/data";
  options.extra_args = {"--auth-tokens", dir + "/tokens.txtpb"};
  ServerProcess server(options);
  EXPECT_FALSE(server.Start().ok());
  EXPECT_TRUE(absl::StrContains(server.LogTail(), "tokens[0].filter: ")) << server.LogTail();
  EXPECT_TRUE(absl::StrContains(server.LogTail(), "at column")) << server.LogTail();
}

}  // namespace
}  // namespace retrace
