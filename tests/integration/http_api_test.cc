// The HTTP/JSON API (server/http/http_api.h) against the real server with the oracle models:
// it mirrors every RPC, answers as gRPC does for the same request, documents every route it
// serves in its OpenAPI document, and maps errors to statuses with JSON bodies naming the field.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "retrace/v1/retrace.grpc.pb.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::FixtureDir;
using testing::ServerOptions;
using testing::ServerProcess;

class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/image_encoder/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir()
                   << " (the make_test_fixtures step makes them; it needs ../shared/data)";
    }
    ServerOptions options;
    options.models_dir = FixtureDir() + "/oracle";
    options.data_dir = testing::NewTempDir("http") + "/data";
    options.extra_args = {"--access-log"};
    options.http = true;
    server_ = std::make_unique<ServerProcess>(options);
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    http_ = std::make_unique<httplib::Client>("127.0.0.1", server_->http_port());
    http_->set_read_timeout(60);
    stub_ = server_->NewStub();
  }

  httplib::Result Post(const std::string& path, const std::string& body,
                       const httplib::Headers& headers = {}) {
    return http_->Post(path, headers, body, "application/json");
  }

  // IndexOracleImages indexes the photo and sketch images of every class over HTTP.
  void IndexOracleImages() {
    ASSERT_EQ(Post("/v1/collections", R"({"collection":{"name":"art"}})")->status, 200);
    std::string lines;
    for (const testing::OracleImage& image : testing::LoadOracleImages()) {
      json item = {{"id", absl::StrCat(image.label, "-", ids_++)},
                   {"image", absl::Base64Escape(image.bytes)},
                   {"attributes", {{"label", image.label}}}};
      absl::StrAppend(&lines, json({{"items", {item}}}).dump(), "\n");
    }
    auto response = Post("/v1/collections/art/index", lines);
    ASSERT_TRUE(response);
    ASSERT_EQ(response->status, 200) << response->body;
    for (absl::string_view line : absl::StrSplit(response->body, '\n', absl::SkipEmpty())) {
      ASSERT_EQ(json::parse(line)["results"][0]["status"]["code"], 0) << line;
    }
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<httplib::Client> http_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
  int ids_ = 0;
};

TEST_F(HttpApiTest, EveryRpcIsDocumentedAndEveryDocumentedRouteAnswers) {
  auto response = http_->Get("/v1/openapi.json");
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 200);
  const json document = json::parse(response->body);
  EXPECT_EQ(document["openapi"], "3.0.3");
  std::set<std::string> documented_rpcs;
  for (const auto& [path, operations] : document["paths"].items()) {
    for (const auto& [method, operation] : operations.items()) {
      if (operation.contains("x-grpc-method")) documented_rpcs.insert(operation["x-grpc-method"]);
      // Every $ref points at a schema the document holds.
      for (const std::string& ref : {std::string("requestBody"), std::string("responses")}) {
        const std::string text = operation.value(ref, json()).dump();
        for (size_t at = text.find("#/components/schemas/"); at != std::string::npos;
             at = text.find("#/components/schemas/", at + 1)) {
          const size_t end = text.find('"', at);
          const std::string name = text.substr(at + 21, end - at - 21);
          EXPECT_TRUE(document["components"]["schemas"].contains(name)) << name;
        }
      }
    }
  }
  const auto* service = v1::Retrace::service_full_name();
  const auto* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  ASSERT_NE(descriptor, nullptr);
  for (int i = 0; i < descriptor->method_count(); ++i) {
    EXPECT_TRUE(documented_rpcs.count(absl::StrCat(service, "/", descriptor->method(i)->name())))
        << descriptor->method(i)->name() << " has no HTTP route";
  }

  // Every documented route answers: a routed answer (2xx, or an error from the RPC about the
  // request), never "no route" and never a 405.
  ASSERT_EQ(Post("/v1/collections", R"({"collection":{"name":"art"}})")->status, 200);
  std::vector<std::pair<std::string, std::string>> routes;
  for (const auto& [path, operations] : document["paths"].items()) {
    for (const auto& [method, operation] : operations.items()) routes.push_back({method, path});
  }
  // Drop the collection last.
  std::stable_partition(routes.begin(), routes.end(),
                        [](const auto& r) { return r.first != "delete"; });
  for (const auto& [method, path] : routes) {
    const std::string url =
        absl::StrReplaceAll(path, {{"{name}", "art"}, {"{file}", "app.js"}});
    httplib::Result answer = method == "get"      ? http_->Get(url)
                             : method == "delete" ? http_->Delete(url)
                                                  : Post(url, "{}");
    ASSERT_TRUE(answer) << method << " " << url;
    EXPECT_NE(answer->status, 405) << method << " " << url;
    EXPECT_FALSE(absl::StrContains(answer->body, "no route")) << method << " " << url;
    EXPECT_LT(answer->status, 500) << method << " " << url << ": " << answer->body;
  }
}

TEST_F(HttpApiTest, SearchOverHttpAnswersExactlyAsGrpcInEveryMode) {
  IndexOracleImages();
  const std::string sketch = testing::ReadFileBytes(FixtureDir() + "/images/sketch/cat/cat_0.png");
  for (v1::SearchMode mode : {v1::CAPTION_MATCH, v1::PROVENANCE, v1::HYBRID}) {
    v1::SearchRequest request;
    request.set_collection("art");
    request.set_image(sketch);
    request.set_mode(mode);
    request.set_top_k(8);
    v1::SearchResponse over_grpc;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Search(&context, request, &over_grpc).ok());
    ASSERT_FALSE(over_grpc.hits().empty());

    // JSON with the image in base64, and multipart with the image as a file.
    std::string body;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(request, &body).ok());
    v1::SearchRequest rest = request;
    rest.clear_image();
    rest.clear_collection();
    std::string rest_json;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(rest, &rest_json).ok());
    httplib::MultipartFormDataItems form = {{"image", sketch, "cat.png", "image/png"},
                                            {"request", rest_json, "", "application/json"}};
    for (bool multipart : {false, true}) {
      httplib::Result answer = multipart ? http_->Post("/v1/collections/art/search", form)
                                         : Post("/v1/collections/art/search", body);
      ASSERT_TRUE(answer);
      ASSERT_EQ(answer->status, 200) << answer->body;
      v1::SearchResponse over_http;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(answer->body, &over_http).ok());
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(over_grpc, over_http))
          << v1::SearchMode_Name(mode) << (multipart ? " multipart" : " JSON") << "\ngRPC: " << over_grpc.ShortDebugString()
          << "\nHTTP: " << over_http.ShortDebugString();
    }
  }
}

// Lexical search over HTTP: the mode and HybridOptions.lexical in JSON, answered as over gRPC.
TEST_F(HttpApiTest, CaptionTextAndHybridLexicalOverHttpAnswerAsGrpc) {
  IndexOracleImages();
  v1::SearchRequest caption_text;
  caption_text.set_collection("art");
  caption_text.set_text("cat");
  caption_text.set_mode(v1::CAPTION_TEXT);
  caption_text.set_top_k(20);
  v1::SearchRequest hybrid = caption_text;
  hybrid.set_mode(v1::HYBRID);
  hybrid.mutable_hybrid()->set_lexical(true);
  for (const v1::SearchRequest& request : {caption_text, hybrid}) {
    v1::SearchResponse over_grpc;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Search(&context, request, &over_grpc).ok());
    ASSERT_FALSE(over_grpc.hits().empty());
    std::string body;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(request, &body).ok());
    httplib::Result answer = Post("/v1/collections/art/search", body);
    ASSERT_TRUE(answer);
    ASSERT_EQ(answer->status, 200) << answer->body;
    v1::SearchResponse over_http;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(answer->body, &over_http).ok());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(over_grpc, over_http))
        << "gRPC: " << over_grpc.ShortDebugString() << "\nHTTP: " << over_http.ShortDebugString();
    if (request.mode() == v1::CAPTION_TEXT) {
      // The oracle captioner names each image's class: only cats' captions hold "cat".
      for (const v1::SearchHit& hit : over_http.hits()) {
        EXPECT_EQ(hit.attributes().at("label"), "cat") << hit.ShortDebugString();
      }
    } else {
      // The lexical ranking is fused: cats carry their rank in it, nothing else does.
      int ranked = 0;
      for (const v1::SearchHit& hit : over_http.hits()) {
        if (hit.hybrid().lexical_rank() < 0) continue;
        ++ranked;
        EXPECT_EQ(hit.attributes().at("label"), "cat") << hit.ShortDebugString();
      }
      EXPECT_GT(ranked, 0);
    }
  }
  // An image query in CAPTION_TEXT: 400, naming the query.
  httplib::Result refused = Post(
      "/v1/collections/art/search",
      R"({"image":")" + absl::Base64Escape(testing::ReadFileBytes(
                            FixtureDir() + "/images/sketch/cat/cat_0.png")) +
          R"(","mode":"CAPTION_TEXT"})");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  EXPECT_TRUE(absl::StrContains(refused->body, "CAPTION_TEXT")) << refused->body;
}

TEST_F(HttpApiTest, ErrorsAnswerTheMappedStatusWithAJsonBodyNamingTheField) {
  ASSERT_EQ(Post("/v1/collections", R"({"collection":{"name":"art"}})")->status, 200);
  struct Case {
    std::string path, body;
    int status;
    std::string code, says;
  };
  for (const Case& c : std::vector<Case>{
           {"/v1/collections/art/search", R"({"txt":"a cat"})", 400, "INVALID_ARGUMENT", "txt"},
           {"/v1/collections/art/search", R"({"text":"a cat","topK":100000})", 400,
            "INVALID_ARGUMENT", "top_k"},
           {"/v1/collections/nope/search", R"({"text":"a cat"})", 404, "NOT_FOUND", "nope"},
           {"/v1/collections/art/search", R"({"collection":"other","text":"a"})", 400,
            "INVALID_ARGUMENT", "collection"},
           {"/v1/collections", R"({"collection":{"name":"art"}})", 409, "ALREADY_EXISTS", "art"},
           {"/v1/collections/art/get", R"({"ids":[]})", 400, "INVALID_ARGUMENT", "ids"},
       }) {
    auto answer = Post(c.path, c.body);
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, c.status) << c.body << ": " << answer->body;
    const json error = json::parse(answer->body)["error"];
    EXPECT_EQ(error["code"], c.status);
    EXPECT_EQ(error["status"], c.code) << answer->body;
    EXPECT_TRUE(absl::StrContains(error["message"].get<std::string>(), c.says)) << answer->body;
  }
  auto bad_timeout =
      Post("/v1/collections/art/search", R"({"text":"a"})", {{"X-Server-Timeout", "soon"}});
  EXPECT_EQ(bad_timeout->status, 400);
  EXPECT_TRUE(absl::StrContains(bad_timeout->body, "X-Server-Timeout")) << bad_timeout->body;
  auto no_route = http_->Get("/v2/anything");
  EXPECT_EQ(no_route->status, 404);
  EXPECT_TRUE(absl::StrContains(no_route->body, "/v1/openapi.json")) << no_route->body;
}

TEST_F(HttpApiTest, RequestIdsAreEchoedAndLoggedLikeGrpcCalls) {
  ASSERT_EQ(Post("/v1/collections", R"({"collection":{"name":"art"}})")->status, 200);
  auto answer =
      Post("/v1/collections/art/search", R"({"text":"a cat"})", {{"X-Request-Id", "http-7f3a"}});
  ASSERT_EQ(answer->status, 200) << answer->body;
  EXPECT_EQ(answer->get_header_value("X-Request-Id"), "http-7f3a");
  auto made = Post("/v1/collections/art/search", R"({"text":"a cat"})");
  EXPECT_EQ(made->get_header_value("X-Request-Id").size(), 16u);  // one the server made
  server_->Stop();  // flush the access log
  EXPECT_TRUE(absl::StrContains(server_->Log(), "http-7f3a")) << server_->LogTail();
}

TEST_F(HttpApiTest, AnIndexStreamStopsAtABadLineAndKeepsTheLinesBeforeIt) {
  ASSERT_EQ(Post("/v1/collections", R"({"collection":{"name":"art"}})")->status, 200);
  const std::string png = testing::ReadFileBytes(FixtureDir() + "/images/photo/dog/dog_0.png");
  const std::string good = json({{"items", {{{"id", "dog"}, {"image", absl::Base64Escape(png)}}}}}).dump();
  const std::string never = json({{"items", {{{"id", "never"}, {"image", absl::Base64Escape(png)}}}}}).dump();
  auto answer = Post("/v1/collections/art/index", good + "\n{\"itemz\": []}\n" + never + "\n");
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->status, 200) << answer->body;  // the first line was stored
  std::vector<std::string> lines = absl::StrSplit(answer->body, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << answer->body;
  EXPECT_EQ(json::parse(lines[0])["results"][0]["id"], "dog");
  EXPECT_EQ(json::parse(lines[1])["error"]["status"], "INVALID_ARGUMENT");
  EXPECT_TRUE(absl::StrContains(lines[1], "line 2")) << lines[1];
  // Over gRPC: the line before is stored, the line after the error was never read.
  v1::GetRequest get;
  get.set_collection("art");
  get.add_ids("dog");
  get.add_ids("never");
  v1::GetResponse got;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Get(&context, get, &got).ok());
  EXPECT_EQ(got.results(0).status().code(), 0);
  EXPECT_EQ(got.results(1).status().code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));

  // A request refused as a whole gets its status: an unknown collection.
  auto unknown = Post("/v1/collections/nope/index", good);
  EXPECT_EQ(unknown->status, 404) << unknown->body;
  auto empty = Post("/v1/collections/art/index", "\n\n");
  EXPECT_EQ(empty->status, 400) << empty->body;
}

TEST_F(HttpApiTest, ThumbnailsAreKeptPerCollectionAndServedAsJpeg) {
  // The default keeps 256 px; 64 px on request; -1 keeps none; a side out of range is refused.
  ASSERT_EQ(Post("/v1/collections", R"({"collection":{"name":"art"}})")->status, 200);
  auto small = Post("/v1/collections", R"({"collection":{"name":"small","thumbnailSide":64}})");
  ASSERT_EQ(small->status, 200);
  EXPECT_EQ(json::parse(small->body)["thumbnailSide"], 64);
  ASSERT_EQ(Post("/v1/collections", R"({"collection":{"name":"none","thumbnailSide":-1}})")
                ->status,
            200);
  auto bad = Post("/v1/collections", R"({"collection":{"name":"bad","thumbnailSide":5}})");
  EXPECT_EQ(bad->status, 400);
  EXPECT_TRUE(absl::StrContains(bad->body, "thumbnail_side")) << bad->body;

  // A 600 x 300 image, so both sides shrink.
  cv::Mat wide(300, 600, CV_8UC3, cv::Scalar(30, 160, 220));
  cv::circle(wide, {300, 150}, 100, cv::Scalar(10, 10, 200), -1);
  std::vector<uchar> png;
  ASSERT_TRUE(cv::imencode(".png", wide, png));
  const std::string item =
      json({{"items", {{{"id", "wide/one"}, {"image", absl::Base64Escape(std::string(png.begin(), png.end()))}}}}})
          .dump();
  for (const std::string name : {"art", "small", "none"}) {
    auto indexed = Post(absl::StrCat("/v1/collections/", name, "/index"), item);
    ASSERT_EQ(indexed->status, 200) << indexed->body;
  }
  for (const auto& [name, side] : std::vector<std::pair<std::string, int>>{{"art", 256},
                                                                           {"small", 64}}) {
    auto answer = http_->Get(absl::StrCat("/v1/collections/", name, "/thumbnail?id=wide%2Fone"));
    ASSERT_TRUE(answer);
    ASSERT_EQ(answer->status, 200) << answer->body;
    EXPECT_EQ(answer->get_header_value("Content-Type"), "image/jpeg");
    const std::vector<uchar> bytes(answer->body.begin(), answer->body.end());
    cv::Mat thumbnail = cv::imdecode(bytes, cv::IMREAD_COLOR);
    ASSERT_FALSE(thumbnail.empty());
    EXPECT_EQ(thumbnail.cols, side);
    EXPECT_EQ(thumbnail.rows, side / 2);
    // It is the image: the centre is the red disc, the corner the background (BGR).
    const cv::Vec3b centre = thumbnail.at<cv::Vec3b>(side / 4, side / 2);
    EXPECT_GT(centre[2], 150);
    EXPECT_LT(centre[0], 60);
  }
  auto none = http_->Get("/v1/collections/none/thumbnail?id=wide%2Fone");
  EXPECT_EQ(none->status, 404);
  EXPECT_TRUE(absl::StrContains(none->body, "keeps no thumbnails")) << none->body;
  auto absent = http_->Get("/v1/collections/art/thumbnail?id=nope");
  EXPECT_EQ(absent->status, 404) << absent->body;
  auto no_id = http_->Get("/v1/collections/art/thumbnail");
  EXPECT_EQ(no_id->status, 400) << no_id->body;

  // Over gRPC: Get with include_thumbnails; a deleted item takes its thumbnail with it.
  v1::GetRequest get;
  get.set_collection("art");
  get.add_ids("wide/one");
  get.set_include_thumbnails(true);
  v1::GetResponse got;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Get(&context, get, &got).ok());
  }
  EXPECT_FALSE(got.results(0).item().thumbnail().empty());
  ASSERT_EQ(Post("/v1/collections/art/delete", R"({"ids":["wide/one"]})")->status, 200);
  EXPECT_EQ(http_->Get("/v1/collections/art/thumbnail?id=wide%2Fone")->status, 404);
}

TEST_F(HttpApiTest, TheWebPageAndItsFilesAreServedFromTheBinary) {
  auto page = http_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_TRUE(absl::StartsWith(page->get_header_value("Content-Type"), "text/html"));
  EXPECT_TRUE(absl::StrContains(page->body, "/ui/app.js"));
  auto script = http_->Get("/ui/app.js");
  EXPECT_EQ(script->status, 200);
  EXPECT_TRUE(absl::StartsWith(script->get_header_value("Content-Type"), "text/javascript"));
  // No file outside the embedded set, however the name is spelled.
  for (const std::string path : {"/ui/nope.js", "/ui/..%2Fhttp_api.cc", "/ui/../CMakeLists.txt"}) {
    auto missing = http_->Get(path);
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404) << path;
  }
}

}  // namespace
}  // namespace retrace
