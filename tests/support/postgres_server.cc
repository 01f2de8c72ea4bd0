#include "tests/support/postgres_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/store/internal/pg_connection.h"
#include "gtest/gtest.h"

namespace retrace::testing {
namespace {

namespace fs = std::filesystem;

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace

int PostgresServer::Run(const std::string& program, const std::string& args) const {
  const std::string command =
      absl::StrCat(as_postgres_ ? "runuser -u postgres -- " : "", program, " ", args, " >>", dir_,
                   "/tool.log 2>&1");
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(bool durable) {
  if (!fs::exists(absl::StrCat(kPostgresBin, "/initdb"))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL is not installed (", kPostgresBin,
        "/initdb is missing); tools/install_deps.sh installs Debian's postgresql"));
  }
  char pattern[] = "/tmp/retrace-pg-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) return absl::InternalError("mkdtemp failed");
  const bool root = ::geteuid() == 0;
  std::unique_ptr<PostgresServer> server(new PostgresServer(pattern, FreePort(), root, durable));
  if (root) {
    // PostgreSQL refuses to run as root: the folder belongs to `postgres`, which runs it.
    const std::string chown = absl::StrCat("chown postgres: ", server->dir_);
    if (std::system(chown.c_str()) != 0) return absl::InternalError("chown postgres failed");
  }
  // initdb takes seconds; it runs once per machine into a template that each server copies.
  const std::string template_dir = absl::StrCat("/tmp/retrace-pg-template-", ::geteuid());
  {
    const std::string lock_path = template_dir + ".lock";
    const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) return absl::InternalError("lock " + lock_path);
    absl::Status made = absl::OkStatus();
    if (!fs::exists(template_dir + "/data/PG_VERSION")) {
      std::error_code ec;
      fs::remove_all(template_dir, ec);
      fs::create_directories(template_dir, ec);
      PostgresServer maker(template_dir, 0, root, false);
      if (root) {
        const std::string chown = absl::StrCat("chown postgres: ", template_dir);
        if (std::system(chown.c_str()) != 0) made = absl::InternalError("chown postgres failed");
      }
      // Loopback connections as `secured` need a password (the tests of a wrong one); every
      // other role is trusted.
      if (made.ok() &&
          maker.Run("/usr/lib/postgresql/15/bin/initdb", absl::StrCat("-D ", template_dir, "/data -A trust -U retrace "
                                           "--no-sync --no-instructions -E UTF8")) != 0) {
        made = absl::InternalError(absl::StrCat("initdb failed: ", maker.Log()));
      }
      if (made.ok()) {
        const std::string hba = template_dir + "/data/pg_hba.conf";
        std::ifstream in(hba);
        std::ostringstream text;
        text << "host all secured 127.0.0.1/32 scram-sha-256\n" << in.rdbuf();
        in.close();
        std::ofstream(hba) << text.str();
      }
      maker.dir_.clear();  // its destructor must not remove the template
      if (!made.ok()) fs::remove_all(template_dir, ec);
    }
    ::close(lock);
    if (!made.ok()) return made;
  }
  const std::string copy = absl::StrCat("cp -a ", template_dir, "/data ", server->dir_, "/data");
  if (std::system(copy.c_str()) != 0) return absl::InternalError("copying the template failed");
  // A free port can be taken by another test's server between FreePort and the start; that
  // server would then answer on it (PostgreSQL starts with its socket alone when the port is
  // taken). Check that the port is ours, else try another.
  absl::StatusOr<std::unique_ptr<store::internal::pg::Connection>> conn;
  for (int attempt = 0;; ++attempt) {
    if (absl::Status s = server->Restart(); !s.ok()) return s;
    conn = store::internal::pg::Connection::Open(server->Uri("postgres"), 10);
    if (conn.ok()) {
      auto dir = (*conn)->Exec("SELECT setting FROM pg_settings WHERE name = 'data_directory'",
                               {}, "data directory");
      if (dir.ok() && dir->rows() == 1 &&
          fs::equivalent(std::string(dir->Bytes(0, 0)), server->dir_ + "/data")) {
        break;
      }
    }
    if (attempt == 5) {
      return absl::InternalError(absl::StrCat("no free port for PostgreSQL: ", server->Log()));
    }
    (void)server->Stop("immediate");
    server->port_ = FreePort();
  }
  if (absl::Status s = (*conn)->ExecSimple("CREATE ROLE secured LOGIN PASSWORD 'right'", "role");
      !s.ok()) {
    return s;
  }
  // A test that dies (a crash, a timeout's SIGKILL) runs no destructor: a watchdog stops the
  // server and removes its folder once this process is gone, so no server outlives its test.
  const std::string watchdog = absl::StrCat(
      "setsid sh -c 'while kill -0 ", ::getpid(), " 2>/dev/null; do sleep 1; done; ",
      root ? "runuser -u postgres -- " : "", "/usr/lib/postgresql/15/bin/pg_ctl -D ",
      server->dir_, "/data -m immediate stop; rm -rf ", server->dir_,
      "' >/dev/null 2>&1 </dev/null &");
  (void)std::system(watchdog.c_str());
  return server;
}

PostgresServer::~PostgresServer() {
  if (running_) (void)Stop("immediate");
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

absl::Status PostgresServer::Restart() {
  const std::string options =
      absl::StrCat("-k ", dir_, " -p ", port_, " -c listen_addresses=127.0.0.1",
                   durable_ ? "" : " -c fsync=off -c full_page_writes=off",
                   " -c max_connections=200");
  if (Run("/usr/lib/postgresql/15/bin/pg_ctl", absl::StrCat("-D ", dir_, "/data -o '", options, "' -w -t 60 -l ", dir_,
                                 "/server.log start")) != 0) {
    return absl::InternalError(absl::StrCat("pg_ctl start failed: ", Log()));
  }
  running_ = true;
  return absl::OkStatus();
}

absl::Status PostgresServer::Stop(const std::string& mode) {
  if (Run("/usr/lib/postgresql/15/bin/pg_ctl", absl::StrCat("-D ", dir_, "/data -m ", mode, " -w -t 60 stop")) != 0) {
    return absl::InternalError(absl::StrCat("pg_ctl stop failed: ", Log()));
  }
  running_ = false;
  return absl::OkStatus();
}

std::string PostgresServer::Uri(const std::string& db) const {
  return absl::StrCat("postgresql://retrace@127.0.0.1:", port_, "/", db);
}

std::string PostgresServer::NewDatabase(const std::string& prefix) {
  const std::string name = absl::StrCat(prefix, "_", ++databases_);
  auto conn = store::internal::pg::Connection::Open(Uri("postgres"), 10);
  if (!conn.ok()) {
    ADD_FAILURE() << conn.status();
    return "";
  }
  if (absl::Status s = (*conn)->ExecSimple(absl::StrCat("CREATE DATABASE ", name), "create db");
      !s.ok()) {
    ADD_FAILURE() << s;
    return "";
  }
  return Uri(name);
}

std::string PostgresServer::Log() const {
  std::ostringstream text;
  for (const char* file : {"/tool.log", "/server.log"}) {
    std::ifstream in(dir_ + file);
    text << in.rdbuf();
  }
  return text.str();
}

}  // namespace retrace::testing
