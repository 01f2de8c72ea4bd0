// postgres_server.h — a real PostgreSQL server that a test starts for itself: initdb into a
// fresh temporary folder, pg_ctl on a free loopback port (its socket in that folder), never a
// system service. As root (CI's fresh root) the server runs as the `postgres` user, which
// PostgreSQL requires; otherwise as the caller.
//
// Each test takes a database of its own (NewDatabase), so tests in one binary share one server
// without seeing each other's data. Stop and Start let fault tests take the server away and
// bring it back on the same port and data.
//
// Thread-safety: one test thread owns a PostgresServer.
//
//   auto pg = PostgresServer::Start();  ASSERT_TRUE(pg.ok()) << pg.status();
//   std::string uri = (*pg)->NewDatabase("contract");  // postgresql://retrace@127.0.0.1:P/contract_1
#ifndef RETRACE_TESTS_SUPPORT_POSTGRES_SERVER_H_
#define RETRACE_TESTS_SUPPORT_POSTGRES_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace retrace::testing {

// kPostgresBin: where Debian's postgresql package puts the server programs.
inline constexpr char kPostgresBin[] = "/usr/lib/postgresql/15/bin";

class PostgresServer {
 public:
  // Start makes a cluster (user `retrace`, trust authentication on loopback) and starts it.
  // fsync is off (tests lose nothing to a process crash; only an OS crash would) unless
  // `durable`. FAILED_PRECONDITION when the PostgreSQL programs are missing (install_deps.sh
  // installs them); INTERNAL with the server's log when it does not start.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start(bool durable = false);
  ~PostgresServer();  // stops the server (immediate) and removes the folder
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // NewDatabase creates a database named `<prefix>_<n>` and returns its URI; fails the test
  // (ADD_FAILURE) and returns "" on error.
  std::string NewDatabase(const std::string& prefix);
  // Uri: the URI of database `db` on this server.
  std::string Uri(const std::string& db) const;
  int port() const { return port_; }

  // Stop stops the server: "fast" (clean: clients are disconnected) or "immediate" (a crash).
  absl::Status Stop(const std::string& mode = "fast");
  // Start again after Stop, on the same port and data.
  absl::Status Restart();
  // Log: the server's log so far.
  std::string Log() const;

 private:
  PostgresServer(std::string dir, int port, bool as_postgres, bool durable)
      : dir_(std::move(dir)), port_(port), as_postgres_(as_postgres), durable_(durable) {}
  // Run runs a PostgreSQL program, given by its path, as `postgres` when root; returns its exit
  // status.
  int Run(const std::string& program, const std::string& args) const;

  std::string dir_;
  int port_;
  bool as_postgres_;
  bool durable_;
  bool running_ = false;
  int databases_ = 0;
};

// SharedPostgres<Base>: a fixture base whose test suite shares one PostgreSQL server, started
// before the suite's first test and stopped after its last; each test takes a database of its
// own (postgres()->NewDatabase), so tests never see each other's data. A server that does not
// start fails the suite's tests (postgres() is null then).
template <typename Base = ::testing::Test>
class SharedPostgres : public Base {
 protected:
  static void SetUpTestSuite() {
    auto started = PostgresServer::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    Server() = started->release();
  }
  static void TearDownTestSuite() {
    delete Server();
    Server() = nullptr;
  }
  static PostgresServer* postgres() { return Server(); }

 private:
  static PostgresServer*& Server() {
    static PostgresServer* server = nullptr;
    return server;
  }
};

}  // namespace retrace::testing

#endif  // RETRACE_TESTS_SUPPORT_POSTGRES_SERVER_H_
