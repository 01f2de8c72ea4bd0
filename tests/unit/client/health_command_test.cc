// `retrace health` (client/cli/health_command.cc) against an in-process grpc.health.v1 service
// whose answer the test sets: the exit status is 0 only for SERVING, whatever else the server
// says or however it fails.
#include <grpcpp/grpcpp.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/cli/cli.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace retrace::cli {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

// FakeHealth answers Check for service "" with the status set, NOT_FOUND for any other name, and
// records the last service asked about.
class FakeHealth final : public grpc::health::v1::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext*, const HealthCheckRequest* request,
                     HealthCheckResponse* response) override {
    absl::MutexLock lock(&mu_);
    last_service_ = request->service();
    if (!request->service().empty()) return {grpc::StatusCode::NOT_FOUND, "unknown service"};
    response->set_status(status_);
    return grpc::Status::OK;
  }
  void set_status(HealthCheckResponse::ServingStatus status) {
    absl::MutexLock lock(&mu_);
    status_ = status;
  }
  std::string last_service() {
    absl::MutexLock lock(&mu_);
    return last_service_;
  }

 private:
  absl::Mutex mu_;
  HealthCheckResponse::ServingStatus status_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::SERVING;
  std::string last_service_ ABSL_GUARDED_BY(mu_);
};

struct CliRun {
  int status;
  std::string out;
  std::string err;
};

class HealthCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&health_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
  }
  void TearDown() override { server_->Shutdown(); }

  CliRun Run(const std::vector<std::string>& args, const std::string& env_server = "") {
    std::ostringstream out, err;
    const int status = RunCli(args, env_server, /*stderr_is_terminal=*/false, out, err);
    return {status, out.str(), err.str()};
  }

  FakeHealth health_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(HealthCommandTest, ExitsZeroOnlyWhenServing) {
  CliRun run = Run({"--server", address_, "health"});
  EXPECT_EQ(run.status, kExitOk) << run.err;
  EXPECT_EQ(run.out, "SERVING\n");
  EXPECT_EQ(health_.last_service(), "");

  for (auto status : {HealthCheckResponse::NOT_SERVING, HealthCheckResponse::UNKNOWN,
                      HealthCheckResponse::SERVICE_UNKNOWN}) {
    health_.set_status(status);
    run = Run({"--server", address_, "health"});
    EXPECT_EQ(run.status, kExitFailed) << HealthCheckResponse::ServingStatus_Name(status);
    EXPECT_EQ(run.out, HealthCheckResponse::ServingStatus_Name(status) + "\n");
  }
}

TEST_F(HealthCommandTest, ServerAfterTheCommandAndFromTheEnvironment) {
  // As a container's HEALTHCHECK writes it: the address after the command...
  CliRun run = Run({"health", "--server", address_});
  EXPECT_EQ(run.status, kExitOk) << run.err;
  // ...and it wins over the global option and $RETRACE_SERVER.
  run = Run({"--server", "127.0.0.1:1", "health", "--server", address_}, "127.0.0.1:1");
  EXPECT_EQ(run.status, kExitOk) << run.err;
  run = Run({"health"}, address_);
  EXPECT_EQ(run.status, kExitOk) << run.err;
}

TEST_F(HealthCommandTest, JsonAndNamedService) {
  CliRun run = Run({"--json", "--server", address_, "health"});
  EXPECT_EQ(run.status, kExitOk) << run.err;
  EXPECT_EQ(run.out, "{\"status\":\"SERVING\"}\n");

  run = Run({"--server", address_, "health", "--service", "retrace.v1.Retrace"});
  EXPECT_EQ(health_.last_service(), "retrace.v1.Retrace");
  EXPECT_EQ(run.status, kExitFailed);
  EXPECT_THAT(run.err, HasSubstr("retrace: health: NOT_FOUND: unknown service"));
}

TEST_F(HealthCommandTest, UnreachableAndUsage) {
  server_->Shutdown();
  CliRun run = Run({"--timeout", "5", "--server", address_, "health"});
  EXPECT_EQ(run.status, kExitUnavailable);
  EXPECT_THAT(run.err, HasSubstr("retrace: health: UNAVAILABLE"));
  EXPECT_EQ(run.out, "");

  EXPECT_EQ(Run({"health", "extra"}).status, kExitUsage);
  EXPECT_EQ(Run({"health", "--server="}).status, kExitUsage);
  EXPECT_EQ(Run({"health", "--bogus"}).status, kExitUsage);
  run = Run({"health", "--help"});
  EXPECT_EQ(run.status, kExitOk);
  EXPECT_THAT(run.out, HasSubstr("usage: retrace health"));
}

}  // namespace
}  // namespace retrace::cli
