// TLS, end to end against the real server on 127.0.0.1 (demo models): TLS and mutual TLS for
// gRPC, the CLI and the HTTP API, with a throw-away PKI made by the openssl command; a bad TLS
// configuration stops the start.
#include <sys/wait.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

using testing::FixtureDir;
using testing::ListCollections;
using testing::ServerOptions;
using testing::ServerProcess;

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
    testing::WriteFileBytes(d + "/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
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

TEST(TlsTest, TlsServerRefusesPlaintextAndServesTlsClients) {
  RETRACE_REQUIRE_DEMO_MODELS();
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
  RETRACE_REQUIRE_DEMO_MODELS();
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
  RETRACE_REQUIRE_DEMO_MODELS();
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
  RETRACE_REQUIRE_DEMO_MODELS();
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

}  // namespace
}  // namespace retrace
