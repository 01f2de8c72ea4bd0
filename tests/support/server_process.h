// server_process.h — starts the real build/retrace-server for a test and stops it.
//
// The server listens on 127.0.0.1 with an ephemeral port (reported through --port-file), keeps
// its data in the given folder, and is waited on until health says SERVING. Stop() sends
// SIGTERM and waits, so tests can restart a server on the same data directory. In a sanitizer
// build (`make test-asan`, `make test-tsan`) the server is that build's, and a sanitizer report
// in its log fails the running test when the server stops, whatever its exit status.
//
// Thread-safety: one test thread owns a ServerProcess.
//
//   ServerProcess server({.models_dir = OracleModelsDir(), .data_dir = TempDir("e2e")});
//   ASSERT_TRUE(server.Start().ok());  auto stub = server.NewStub();
#ifndef RETRACE_TESTS_SUPPORT_SERVER_PROCESS_H_
#define RETRACE_TESTS_SUPPORT_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "retrace/v1/retrace.grpc.pb.h"

namespace retrace::testing {

struct ServerOptions {
  std::string models_dir;
  std::string data_dir;
  std::vector<std::string> extra_args;  // e.g. {"--config", path}
  // credentials for the test's channel; null: plaintext. tls_server_name overrides the name the
  // server's certificate is checked against (the channel dials 127.0.0.1).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string tls_server_name;
  // wait_until_serving: Start returns once health says SERVING (the models are loaded); false:
  // as soon as the server listens.
  bool wait_until_serving = true;
  // http: serve the HTTP/JSON API on an ephemeral loopback port (http_port()); false: off, so
  // tests running side by side never contend for the default port.
  bool http = false;
};

class ServerProcess {
 public:
  explicit ServerProcess(ServerOptions options);
  ~ServerProcess();  // Stop()

  // Start launches the server and waits (up to 60 s) until it listens and, unless
  // options.wait_until_serving is false, until health reports SERVING. The error carries the
  // tail of the server's log.
  absl::Status Start();
  // Stop sends SIGTERM and waits; returns the exit status (0 for a clean drain), -1 if not running.
  int Stop();
  // Kill sends SIGKILL and waits.
  void Kill();

  const std::string& address() const { return address_; }
  int http_port() const { return http_port_; }  // options.http only
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  std::unique_ptr<v1::Retrace::Stub> NewStub() const { return v1::Retrace::NewStub(channel_); }
  std::string LogTail() const;  // the last lines the server wrote to stderr
  std::string Log() const;      // everything the server wrote to stderr
  // HealthStatus: "SERVING", "NOT_SERVING", ... for the whole server, or the call's error.
  std::string HealthStatus() const;
  // WaitUntilServing polls health for up to `seconds`.
  absl::Status WaitUntilServing(int seconds = 60) const;
  pid_t pid() const { return pid_; }

 private:
  // ExpectNoSanitizerReport fails the current test (ADD_FAILURE) when the log, from where this
  // run of the server started writing, holds an ASan, LSan, UBSan or TSan report.
  void ExpectNoSanitizerReport() const;

  ServerOptions options_;
  pid_t pid_ = -1;
  std::string address_;
  int http_port_ = 0;
  std::string log_path_;
  size_t log_start_ = 0;  // the log's size when this run started (restarts append to it)
  std::shared_ptr<grpc::Channel> channel_;
};

// ServerBinary and CliBinary: the built programs.
std::string ServerBinary();
std::string CliBinary();
// FixtureDir: where the CTest fixture step writes models and images: <build>/test_fixtures.
std::string FixtureDir();
// Context: a client context whose deadline is `seconds` from now.
std::unique_ptr<grpc::ClientContext> Context(int seconds = 30);

// NewTempDir makes a fresh empty directory for one test.
std::string NewTempDir(const std::string& name);
// FreePort: a loopback port nothing listens on now (bound to 0 and released), for the servers'
// side ports (--metrics-listen).
int FreePort();
// ReadFileBytes reads a whole file; empty when it cannot.
std::string ReadFileBytes(const std::string& path);
// WriteFileBytes writes `bytes` to `path` (a config, a tokens file), replacing what was there.
void WriteFileBytes(const std::string& path, const std::string& bytes);

// HaveDemoModels: whether the fixture step made the demo models (FixtureDir()/demo); it needs
// ../shared/data. Tests call RETRACE_REQUIRE_DEMO_MODELS() rather than fail without them.
bool HaveDemoModels();

// ListCollections calls ListCollections through `channel` with a 20 s deadline, sending
// `authorization` (e.g. "Bearer <token>") as that header unless it is empty; the answer goes to
// `response` unless it is null.
grpc::Status ListCollections(const std::shared_ptr<grpc::Channel>& channel,
                             const std::string& authorization = "",
                             v1::ListCollectionsResponse* response = nullptr);

// CliResult: what one run of the `retrace` CLI did.
struct CliResult {
  int exit_code;  // -1 when it did not exit normally
  std::string out, err;
};
// RunCli runs `retrace --server <servers> <args>` through the shell (args may quote and
// redirect), stdin from `stdin_file`; its output goes through files in `scratch`.
CliResult RunCli(const std::string& servers, const std::string& args, const std::string& scratch,
                 const std::string& stdin_file = "/dev/null");

// OracleImage: one of the fixture's images (FixtureDir()/images/<domain>/<label>/...) whose
// oracle class, and so its caption ("a picture of a <label>"), is known.
struct OracleImage {
  std::string label;
  std::string bytes;
};
// LoadOracleImages: every fixture image, in directory order.
std::vector<OracleImage> LoadOracleImages();

}  // namespace retrace::testing

// RETRACE_REQUIRE_DEMO_MODELS skips the running test, saying why, when the demo models are
// missing.
#define RETRACE_REQUIRE_DEMO_MODELS()                                                   \
  do {                                                                                  \
    if (!::retrace::testing::HaveDemoModels()) {                                        \
      GTEST_SKIP() << "test models not found in " << ::retrace::testing::FixtureDir()   \
                   << " (the make_test_fixtures step needs ../shared/data)";            \
    }                                                                                   \
  } while (0)

#endif  // RETRACE_TESTS_SUPPORT_SERVER_PROCESS_H_
