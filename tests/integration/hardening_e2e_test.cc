// Hardening, end to end against the real server on 127.0.0.1 (demo models): TLS and mutual TLS,
// bearer tokens with scopes and collections, the capacity limits and the default deadline,
// readiness while the models load, JSON logs with request ids, and Prometheus metrics.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/token_auth.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;
using testing::FreePort;
using testing::NoiseImage;
using testing::ServerOptions;
using testing::ServerProcess;

bool HaveModels() { return fs::exists(FixtureDir() + "/demo/clip/model.pt"); }

#define SKIP_WITHOUT_MODELS()                                              \
  if (!HaveModels()) {                                                     \
    GTEST_SKIP() << "test models not found in " << FixtureDir()            \
                 << " (the make_test_fixtures step needs ../shared/data)"; \
  }

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// RunShell runs `command` with /bin/sh; returns its exit status.
int RunShell(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}


// Pki: a throw-away CA, a server certificate for localhost/127.0.0.1 and a client certificate,
// made with the openssl command.
struct Pki {
  std::string dir;
  std::string ca() const { return dir + "/ca.pem"; }
  std::string server_cert() const { return dir + "/server.pem"; }
  std::string server_key() const { return dir + "/server.key"; }
  std::string client_cert() const { return dir + "/client.pem"; }
  std::string client_key() const { return dir + "/client.key"; }

  static Pki Make() {
    Pki pki{testing::NewTempDir("pki")};
    const std::string d = pki.dir;
    WriteFile(d + "/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script = absl::StrCat(
        "set -e; cd ", d, "; exec >openssl.log 2>&1; ", "openssl req -x509 ", key,
        " -keyout ca.key -out ca.pem -days 2 -subj '/CN=retrace test CA'; ", "openssl req ", key,
        " -keyout server.key -out server.csr -subj '/CN=localhost'; ",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 ",
        "-extfile server.ext -out server.pem; ", "openssl req ", key,
        " -keyout client.key -out client.csr -subj '/CN=retrace test client'; ",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 ",
        "-out client.pem");
    EXPECT_EQ(RunShell(script), 0) << testing::ReadFileBytes(d + "/openssl.log");
    return pki;
  }
};

std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(const Pki& pki, bool client_cert) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = testing::ReadFileBytes(pki.ca());
  if (client_cert) {
    options.pem_cert_chain = testing::ReadFileBytes(pki.client_cert());
    options.pem_private_key = testing::ReadFileBytes(pki.client_key());
  }
  return grpc::SslCredentials(options);
}

grpc::Status ListCollections(const std::shared_ptr<grpc::Channel>& channel,
                             const std::string& token, v1::ListCollectionsResponse* response) {
  auto stub = v1::Retrace::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!token.empty()) context.AddMetadata("authorization", token);
  return stub->ListCollections(&context, v1::ListCollectionsRequest(), response);
}

grpc::Status ListCollections(const std::shared_ptr<grpc::Channel>& channel,
                             const std::string& token = "") {
  v1::ListCollectionsResponse response;
  return ListCollections(channel, token, &response);
}

// ---------------------------------------------------------------------------------------------
// TLS

TEST(TlsTest, TlsServerRefusesPlaintextAndServesTlsClients) {
  SKIP_WITHOUT_MODELS();
  const Pki pki = Pki::Make();
  ServerOptions options{FixtureDir() + "/demo",
                        testing::NewTempDir("tls"),
                        {"--tls-cert", pki.server_cert(), "--tls-key", pki.server_key()}};
  options.credentials = TlsCredentials(pki, false);
  ServerProcess server(options);
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  EXPECT_TRUE(ListCollections(server.channel()).ok());
  EXPECT_TRUE(absl::StrContains(server.Log(), "TLS")) << server.LogTail();

  auto plaintext = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  grpc::Status status = ListCollections(plaintext);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();

  // The CLI over TLS, checking the server against the test CA.
  const std::string out = server.address() + ".cli.out";
  EXPECT_EQ(RunShell(absl::StrCat(testing::CliBinary(), " --server ", server.address(),
                                  " --tls-ca ", pki.ca(), " collections list >", out, " 2>&1")),
            0)
      << testing::ReadFileBytes(out);
  // Without the CA the server's certificate is not trusted: unreachable (exit 3).
  EXPECT_EQ(RunShell(absl::StrCat(testing::CliBinary(), " --server ", server.address(),
                                  " --tls collections list >", out, " 2>&1")),
            3)
      << testing::ReadFileBytes(out);
}

TEST(TlsTest, TheHttpApiSpeaksTlsWithTheSameCertificates) {
  SKIP_WITHOUT_MODELS();
  const Pki pki = Pki::Make();
  ServerOptions options{FixtureDir() + "/demo",
                        testing::NewTempDir("tls-http"),
                        {"--tls-cert", pki.server_cert(), "--tls-key", pki.server_key()}};
  options.credentials = TlsCredentials(pki, false);
  options.http = true;
  ServerProcess server(options);
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  EXPECT_TRUE(absl::StrContains(server.Log(), "https://127.0.0.1:")) << server.LogTail();

  httplib::SSLClient https("127.0.0.1", server.http_port());
  https.set_ca_cert_path(pki.ca().c_str());
  https.enable_server_certificate_verification(true);
  auto answer = https.Get("/v1/collections");
  ASSERT_TRUE(answer) << httplib::to_string(answer.error());
  EXPECT_EQ(answer->status, 200) << answer->body;

  httplib::Client plaintext("127.0.0.1", server.http_port());
  plaintext.set_read_timeout(5);
  auto refused = plaintext.Get("/v1/collections");
  EXPECT_TRUE(!refused || refused->status != 200);
}

TEST(TlsTest, ClientCertificatesAreRequiredWhenAClientCaIsGiven) {
  SKIP_WITHOUT_MODELS();
  const Pki pki = Pki::Make();
  ServerOptions options{FixtureDir() + "/demo",
                        testing::NewTempDir("mtls"),
                        {"--tls-cert", pki.server_cert(), "--tls-key", pki.server_key(),
                         "--tls-client-ca", pki.ca()}};
  options.credentials = TlsCredentials(pki, /*client_cert=*/true);
  ServerProcess server(options);
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  EXPECT_TRUE(ListCollections(server.channel()).ok());

  auto no_cert = grpc::CreateChannel(server.address(), TlsCredentials(pki, false));
  EXPECT_EQ(ListCollections(no_cert).error_code(), grpc::StatusCode::UNAVAILABLE);
  const std::string out = server.address() + ".cli.out";
  EXPECT_EQ(
      RunShell(absl::StrCat(testing::CliBinary(), " --server ", server.address(), " --tls-ca ",
                            pki.ca(), " --tls-cert ", pki.client_cert(), " --tls-key ",
                            pki.client_key(), " collections list >", out, " 2>&1")),
      0)
      << testing::ReadFileBytes(out);
}

TEST(TlsTest, BadTlsConfigurationStopsTheStartWithAClearMessage) {
  SKIP_WITHOUT_MODELS();
  const Pki pki = Pki::Make();
  ServerProcess only_cert(
      {FixtureDir() + "/demo", testing::NewTempDir("tls-bad"), {"--tls-cert", pki.server_cert()}});
  EXPECT_FALSE(only_cert.Start().ok());
  EXPECT_TRUE(absl::StrContains(only_cert.LogTail(), "security.tls_cert and security.tls_key"))
      << only_cert.LogTail();
  ServerProcess not_pem({FixtureDir() + "/demo",
                         testing::NewTempDir("tls-bad"),
                         {"--tls-cert", pki.dir + "/server.ext", "--tls-key", pki.server_key()}});
  EXPECT_FALSE(not_pem.Start().ok());
  EXPECT_TRUE(absl::StrContains(not_pem.LogTail(), "is not a PEM file")) << not_pem.LogTail();
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens

class AuthTest : public ::testing::Test {
 protected:
  // Tokens: the secrets; the file lists only their hashes.
  const std::string admin_ = "admin-secret-7f3a9c";
  const std::string searcher_ = "searcher-secret-1b2c3d";
  const std::string indexer_ = "indexer-secret-4e5f6a";

  void SetUp() override {
    SKIP_WITHOUT_MODELS();
    const std::string dir = testing::NewTempDir("auth");
    tokens_file_ = dir + "/tokens.txtpb";
    WriteFile(
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
  SKIP_WITHOUT_MODELS();
  const std::string dir = testing::NewTempDir("auth-bad");
  WriteFile(dir + "/tokens.txtpb", "tokens { name: 'x' sha256: 'abc' scopes: 'search' }\n");
  ServerProcess server(
      {FixtureDir() + "/demo", dir + "/data", {"--auth-tokens", dir + "/tokens.txtpb"}});
  EXPECT_FALSE(server.Start().ok());
  EXPECT_TRUE(absl::StrContains(server.LogTail(), "tokens[0].sha256: expected 64 hex digits"))
      << server.LogTail();
}

// ---------------------------------------------------------------------------------------------
// Limits

class LimitsTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& config, std::vector<std::string> extra = {}) {
    const std::string dir = testing::NewTempDir("limits");
    WriteFile(dir + "/config.txtpb", config);
    extra.insert(extra.begin(), {"--config", dir + "/config.txtpb"});
    server_ = std::make_unique<ServerProcess>(
        ServerOptions{FixtureDir() + "/demo", dir + "/data", extra});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    stub_ = server_->NewStub();
    grpc::ClientContext context;  // with a deadline of its own: the server's may be 1 ms
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name("c");
    v1::Collection response;
    ASSERT_TRUE(stub_->CreateCollection(&context, request, &response).ok());
  }

  static v1::IndexRequest Request(std::vector<std::string> ids) {
    v1::IndexRequest request;
    request.set_collection("c");
    for (size_t i = 0; i < ids.size(); ++i) {
      v1::Item* item = request.add_items();
      item->set_id(ids[i]);
      item->set_image(NoiseImage(32, 24, static_cast<int>(i) + 1, ".png"));
      item->set_caption("noise");
    }
    return request;
  }

  // SearchBurst sends `n` concurrent image searches (with `deadline_s` > 0, else none) and
  // returns their status codes.
  std::multiset<grpc::StatusCode> SearchBurst(int n, int deadline_s, std::string* message) {
    std::vector<std::future<grpc::Status>> calls;
    const std::string image = NoiseImage(200, 150, 3, ".jpg");
    for (int i = 0; i < n; ++i) {
      calls.push_back(std::async(std::launch::async, [&, i] {
        grpc::ClientContext context;
        if (deadline_s > 0) {
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(deadline_s));
        }
        v1::SearchRequest request;
        request.set_collection("c");
        request.set_image(image);
        v1::SearchResponse response;
        return stub_->Search(&context, request, &response);
      }));
    }
    std::multiset<grpc::StatusCode> codes;
    for (auto& call : calls) {
      grpc::Status status = call.get();
      if (!status.ok()) *message = status.error_message();
      codes.insert(status.error_code());
    }
    return codes;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Retrace::Stub> stub_;
};

TEST_F(LimitsTest, IndexStreamsAtOnceAreBounded) {
  SKIP_WITHOUT_MODELS();
  StartServer("limits { max_index_streams: 1 }");
  grpc::ClientContext first_context;
  auto first = stub_->Index(&first_context);
  ASSERT_TRUE(first->Write(Request({"a"})));
  v1::IndexResponse response;
  ASSERT_TRUE(first->Read(&response));  // the first stream is open and admitted

  grpc::ClientContext second_context;
  auto second = stub_->Index(&second_context);
  second->Write(Request({"b"}));
  second->WritesDone();
  while (second->Read(&response)) {
  }
  grpc::Status refused = second->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "limits.max_index_streams"))
      << refused.error_message();

  first->WritesDone();
  EXPECT_TRUE(first->Finish().ok());
  // The slot is given back once the first stream is done.
  grpc::Status later;
  for (int attempt = 0; attempt < 50; ++attempt) {
    grpc::ClientContext context;
    auto third = stub_->Index(&context);
    third->Write(Request({"c"}));
    third->WritesDone();
    while (third->Read(&response)) {
    }
    later = third->Finish();
    if (later.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(later.ok()) << later.error_message();
}

TEST_F(LimitsTest, AStreamOverItsItemBoundKeepsWhatItStored) {
  SKIP_WITHOUT_MODELS();
  StartServer("limits { max_items_per_stream: 3 }");
  grpc::ClientContext context;
  auto stream = stub_->Index(&context);
  v1::IndexResponse response;
  ASSERT_TRUE(stream->Write(Request({"s1", "s2"})));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.results_size(), 2);
  stream->Write(Request({"s3", "s4"}));
  stream->WritesDone();
  while (stream->Read(&response)) {
  }
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "limits.max_items_per_stream"))
      << status.error_message();

  grpc::ClientContext get_context;
  v1::GetRequest get;
  get.set_collection("c");
  for (const char* id : {"s1", "s2", "s3", "s4"}) get.add_ids(id);
  v1::GetResponse got;
  ASSERT_TRUE(stub_->Get(&get_context, get, &got).ok());
  ASSERT_EQ(got.results_size(), 4);
  EXPECT_EQ(got.results(0).status().code(), 0);
  EXPECT_EQ(got.results(1).status().code(), 0);
  EXPECT_EQ(got.results(2).status().code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(got.results(3).status().code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
}

TEST_F(LimitsTest, QueuedWorkPastTheDefaultDeadlineIsDroppedAndClientDeadlinesWin) {
  SKIP_WITHOUT_MODELS();
  // One worker, and 1 ms for calls without a deadline: of 16 concurrent searches, those that
  // queue behind another are dropped.
  StartServer("limits { default_deadline_ms: 1 }", {"--workers", "1"});
  std::string message;
  std::multiset<grpc::StatusCode> codes = SearchBurst(16, 0, &message);
  EXPECT_GE(codes.count(grpc::StatusCode::DEADLINE_EXCEEDED), 1u) << message;
  EXPECT_EQ(codes.count(grpc::StatusCode::DEADLINE_EXCEEDED) + codes.count(grpc::StatusCode::OK),
            16u);
  // A client's own deadline replaces the default.
  codes = SearchBurst(8, 60, &message);
  EXPECT_EQ(codes.count(grpc::StatusCode::OK), 8u) << message;
  EXPECT_EQ(server_->HealthStatus(), "SERVING");
}

TEST_F(LimitsTest, AFullQueueAnswersResourceExhausted) {
  SKIP_WITHOUT_MODELS();
  StartServer("limits { max_pending_calls: 1 }", {"--workers", "1"});
  std::string message;
  std::multiset<grpc::StatusCode> codes = SearchBurst(24, 60, &message);
  EXPECT_GE(codes.count(grpc::StatusCode::RESOURCE_EXHAUSTED), 1u);
  EXPECT_GE(codes.count(grpc::StatusCode::OK), 1u);
  EXPECT_EQ(codes.count(grpc::StatusCode::RESOURCE_EXHAUSTED) + codes.count(grpc::StatusCode::OK),
            24u);
  EXPECT_TRUE(absl::StrContains(message, "limits.max_pending_calls")) << message;
}

TEST_F(LimitsTest, IndexRequestsPassTheSameQueueBoundAsUnaryCalls) {
  SKIP_WITHOUT_MODELS();
  const int metrics_port = FreePort();
  StartServer("limits { max_pending_calls: 1 }",
              {"--workers", "1", "--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port)});
  // One worker per lane and one queue slot: a burst of Index streams (with searches beside them)
  // finds the bulk lane's queue full, and is refused as unary calls are rather than queued.
  // Bursts repeat until one is.
  grpc::Status refused;
  for (int attempt = 0; attempt < 20 && refused.ok(); ++attempt) {
    std::vector<std::future<grpc::Status>> streams;
    for (int i = 0; i < 8; ++i) {
      streams.push_back(std::async(std::launch::async, [this, attempt, i] {
        grpc::ClientContext context;
        auto stream = stub_->Index(&context);
        stream->Write(Request({absl::StrCat("burst-", attempt, "-", i)}));
        stream->WritesDone();
        v1::IndexResponse response;
        while (stream->Read(&response)) {
        }
        return stream->Finish();
      }));
    }
    std::string message;
    SearchBurst(16, 60, &message);
    for (auto& stream : streams) {
      grpc::Status status = stream.get();
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        refused = status;
      } else {
        EXPECT_TRUE(status.ok()) << status.error_message();
      }
    }
  }
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "limits.max_pending_calls"))
      << refused.error_message();

  // Every call of the bursts was answered, so nothing is queued: Index works again.
  grpc::ClientContext context;
  auto stream = stub_->Index(&context);
  ASSERT_TRUE(stream->Write(Request({"after"})));
  stream->WritesDone();
  v1::IndexResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).status().code(), 0) << response.results(0).status().message();
  EXPECT_TRUE(stream->Finish().ok());

  // The refusal counts where a unary call's does.
  httplib::Client http("127.0.0.1", metrics_port);
  auto scraped = http.Get("/metrics");
  ASSERT_TRUE(scraped) << "no answer from the metrics endpoint";
  EXPECT_TRUE(absl::StrContains(
      scraped->body, "retrace_rpc_calls_total{rpc=\"Index\",code=\"RESOURCE_EXHAUSTED\"}"))
      << scraped->body;
}

// MetricValue: the value of `series` (name and labels, as rendered) in a /metrics text; -1 when
// absent.
double MetricValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, series + " ")) {
      double value = 0;
      if (absl::SimpleAtod(line, &value)) return value;
    }
  }
  return -1;
}

// Lanes hold end to end: a search waits for no Index request, however many are queued. With one
// worker per lane, a search sent while D Index requests wait would, in one shared FIFO pool,
// finish only after all D had; here it finishes while they still wait.
TEST_F(LimitsTest, SearchesDoNotWaitBehindQueuedIngest) {
  SKIP_WITHOUT_MODELS();
  const int metrics_port = FreePort();
  StartServer("", {"--workers", "1", "--index-workers", "1", "--metrics-listen",
                   absl::StrCat("127.0.0.1:", metrics_port)});
  std::atomic<bool> stop{false};
  std::vector<std::future<void>> writers;
  for (int w = 0; w < 6; ++w) {
    writers.push_back(std::async(std::launch::async, [this, &stop, w] {
      grpc::ClientContext context;
      auto stream = stub_->Index(&context);
      for (int r = 0; !stop; ++r) {
        v1::IndexRequest request;
        request.set_collection("c");
        for (int i = 0; i < 8; ++i) {  // no captions: the captioner runs, so each request is slow
          v1::Item* item = request.add_items();
          item->set_id(absl::StrCat("w", w, "-", r, "-", i));
          item->set_image(NoiseImage(320, 240, w * 1000 + r * 10 + i, ".jpg"));
        }
        v1::IndexResponse response;
        if (!stream->Write(request) || !stream->Read(&response)) break;
      }
      stream->WritesDone();
      v1::IndexResponse response;
      while (stream->Read(&response)) {
      }
      (void)stream->Finish();
    }));
  }
  httplib::Client http("127.0.0.1", metrics_port);
  const std::string kDepth = "retrace_worker_queue_depth{lane=\"bulk\"}";
  const std::string kIndexed = "retrace_rpc_calls_total{rpc=\"Index\",code=\"OK\"}";
  std::string before;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < give_up) {
    auto scraped = http.Get("/metrics");
    if (scraped && MetricValue(scraped->body, kDepth) >= 2) {
      before = scraped->body;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(before.empty()) << "Index requests never queued";
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::SearchRequest search;
  search.set_collection("c");
  search.set_text("a noisy picture");
  v1::SearchResponse response;
  const grpc::Status searched = stub_->Search(&context, search, &response);
  auto after = http.Get("/metrics");
  stop = true;
  for (auto& writer : writers) writer.get();
  ASSERT_TRUE(searched.ok()) << searched.error_message();
  ASSERT_TRUE(after);
  const double queued = MetricValue(before, kDepth);
  const double indexed_meanwhile =
      std::max(0.0, MetricValue(after->body, kIndexed)) - std::max(0.0, MetricValue(before, kIndexed));
  EXPECT_LT(indexed_meanwhile, queued)
      << "the search waited for the Index requests queued before it";
}

// ---------------------------------------------------------------------------------------------
// Readiness, logs, metrics

TEST(ReadinessTest, NotServingUntilTheModelsAreLoaded) {
  SKIP_WITHOUT_MODELS();
  // A copy of the demo models whose clip/manifest.json is a FIFO: the server blocks reading it
  // until the test writes it, so "still loading" lasts exactly as long as the test wants.
  const std::string dir = testing::NewTempDir("ready");
  const std::string models = dir + "/models";
  for (const auto& entry : fs::recursive_directory_iterator(FixtureDir() + "/demo")) {
    const fs::path relative = fs::relative(entry.path(), FixtureDir() + "/demo");
    if (entry.is_directory()) {
      fs::create_directories(fs::path(models) / relative);
    } else if (relative != fs::path("clip/manifest.json")) {
      fs::create_symlink(fs::absolute(entry.path()), fs::path(models) / relative);
    }
  }
  const std::string fifo = models + "/clip/manifest.json";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const int metrics_port = FreePort();
  ServerOptions options{
      models, dir + "/data", {"--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port)}};
  options.wait_until_serving = false;
  ServerProcess server(options);
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();

  // EXPECT, not ASSERT, until the FIFO is written: the server cannot stop while it blocks.
  EXPECT_EQ(server.HealthStatus(), "NOT_SERVING");
  // `retrace health` (the container image's HEALTHCHECK) fails while the server loads.
  const std::string health_command =
      absl::StrCat(testing::CliBinary(), " health --server ", server.address(), " >/dev/null");
  int health = std::system(health_command.c_str());
  EXPECT_TRUE(WIFEXITED(health) && WEXITSTATUS(health) == 1) << health;
  grpc::Status starting = ListCollections(server.channel());
  EXPECT_EQ(starting.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(starting.error_message(), "starting")) << starting.error_message();
  httplib::Client http("127.0.0.1", metrics_port);
  auto readyz = http.Get("/readyz");
  EXPECT_TRUE(readyz && readyz->status == 503);

  {
    std::ofstream writer(fifo, std::ios::binary);  // opens once the server reads
    writer << testing::ReadFileBytes(FixtureDir() + "/demo/clip/manifest.json");
  }
  ASSERT_TRUE(server.WaitUntilServing().ok()) << server.LogTail();
  EXPECT_TRUE(ListCollections(server.channel()).ok());
  health = std::system(health_command.c_str());
  EXPECT_TRUE(WIFEXITED(health) && WEXITSTATUS(health) == 0) << health;
  readyz = http.Get("/readyz");
  ASSERT_TRUE(readyz);
  EXPECT_EQ(readyz->status, 200);
}

TEST(ObservabilityTest, JsonLogsCarryRequestIdsAndMetricsCountCallsAndStages) {
  SKIP_WITHOUT_MODELS();
  const int metrics_port = FreePort();
  ServerProcess server({FixtureDir() + "/demo",
                        testing::NewTempDir("observe"),
                        {"--log-format", "json", "--access-log", "--metrics-listen",
                         absl::StrCat("127.0.0.1:", metrics_port)}});
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  auto stub = server.NewStub();

  // The client's request id is echoed; without one the server makes one.
  {
    grpc::ClientContext context;
    context.AddMetadata("x-request-id", "audit-run-42");
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name("c");
    v1::Collection response;
    ASSERT_TRUE(stub->CreateCollection(&context, request, &response).ok());
    auto echoed = context.GetServerInitialMetadata().find("x-request-id");
    ASSERT_NE(echoed, context.GetServerInitialMetadata().end());
    EXPECT_EQ(std::string(echoed->second.data(), echoed->second.size()), "audit-run-42");
  }
  {
    grpc::ClientContext context;
    v1::ListCollectionsResponse response;
    ASSERT_TRUE(stub->ListCollections(&context, {}, &response).ok());
    auto made = context.GetServerInitialMetadata().find("x-request-id");
    ASSERT_NE(made, context.GetServerInitialMetadata().end());
    EXPECT_EQ(made->second.size(), 16u);
  }
  // Two items indexed, one search, one search of a missing collection.
  {
    grpc::ClientContext context;
    auto stream = stub->Index(&context);
    v1::IndexRequest request;
    request.set_collection("c");
    for (int i = 0; i < 2; ++i) {
      v1::Item* item = request.add_items();
      item->set_id(absl::StrCat("item-", i));
      item->set_image(NoiseImage(48, 32, i + 1, ".jpg"));
    }
    stream->Write(request);
    stream->WritesDone();
    v1::IndexResponse response;
    while (stream->Read(&response)) {
    }
    ASSERT_TRUE(stream->Finish().ok());
  }
  for (const char* collection : {"c", "missing"}) {
    grpc::ClientContext context;
    v1::SearchRequest request;
    request.set_collection(collection);
    request.set_image(NoiseImage(48, 32, 9, ".png"));
    v1::SearchResponse response;
    stub->Search(&context, request, &response);
  }

  httplib::Client http("127.0.0.1", metrics_port);
  auto scraped = http.Get("/metrics");
  ASSERT_TRUE(scraped);
  ASSERT_EQ(scraped->status, 200);
  EXPECT_TRUE(absl::StartsWith(scraped->get_header_value("Content-Type"), "text/plain"));
  const std::string& text = scraped->body;
  for (const char* line : {
           "retrace_rpc_calls_total{rpc=\"Search\",code=\"OK\"} 1\n",
           "retrace_rpc_calls_total{rpc=\"Search\",code=\"NOT_FOUND\"} 1\n",
           "retrace_rpc_calls_total{rpc=\"Index\",code=\"OK\"} 1\n",
           "retrace_rpc_calls_total{rpc=\"CreateCollection\",code=\"OK\"} 1\n",
           "retrace_rpc_duration_seconds_count{rpc=\"Search\"} 2\n",
           "retrace_collection_items{collection=\"c\"} 2\n",
           "retrace_ready 1\n",
           "retrace_index_streams_open 0\n",
           "retrace_batcher_queue_depth{batcher=\"CLIP image\",lane=\"interactive\"} 0\n",
           "retrace_batcher_queue_depth{batcher=\"vector search\",lane=\"bulk\"} 0\n",
           // Decoded: 2 indexed images and 1 query; the missing collection fails before decoding.
           "retrace_stage_duration_seconds_count{stage=\"decode\"} 3\n",
           "retrace_stage_batch_size_sum{stage=\"caption\"} 2\n",
           "retrace_stage_duration_seconds_count{stage=\"search\"} 1\n",
           "retrace_stage_batch_size_sum{stage=\"store\"} 2\n",
       }) {
    EXPECT_TRUE(absl::StrContains(text, line)) << "missing: " << line << "\n" << text;
  }
  EXPECT_TRUE(absl::StrContains(text, "# TYPE retrace_worker_queue_depth gauge"));

  // Every log line is a JSON object; the call lines carry rpc, code and request id.
  bool found_request = false;
  for (absl::string_view line : absl::StrSplit(server.Log(), '\n', absl::SkipEmpty())) {
    nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(json.is_discarded()) << "not JSON: " << line;
    ASSERT_TRUE(json.contains("ts") && json.contains("level")) << line;
    if (json.value("request_id", "") == "audit-run-42") {
      found_request = true;
      EXPECT_EQ(json.value("rpc", ""), "CreateCollection");
      EXPECT_EQ(json.value("code", ""), "OK");
      EXPECT_EQ(json.value("principal", ""), "anonymous");
    }
  }
  EXPECT_TRUE(found_request) << server.LogTail();
}

}  // namespace
}  // namespace retrace
