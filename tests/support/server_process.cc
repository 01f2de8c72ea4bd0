#include "tests/support/server_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/shared_data.h"

namespace retrace::testing {
namespace fs = std::filesystem;

std::string ServerBinary() { return BinaryDir() + "/retrace-server"; }
std::string CliBinary() { return BinaryDir() + "/retrace"; }
std::string FixtureDir() { return BinaryDir() + "/test_fixtures"; }

std::string NewTempDir(const std::string& name) {
  static int counter = 0;
  fs::path dir = fs::path(BinaryDir()) / "test_tmp" /
                 absl::StrCat(name, "-", getpid(), "-", counter++);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

bool HaveDemoModels() { return fs::exists(FixtureDir() + "/demo/clip/model.pt"); }

grpc::Status ListCollections(const std::shared_ptr<grpc::Channel>& channel,
                             const std::string& authorization,
                             v1::ListCollectionsResponse* response) {
  auto stub = v1::Retrace::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  v1::ListCollectionsResponse unused;
  return stub->ListCollections(&context, v1::ListCollectionsRequest(),
                               response != nullptr ? response : &unused);
}

CliResult RunCli(const std::string& servers, const std::string& args, const std::string& scratch,
                 const std::string& stdin_file) {
  const std::string out = scratch + "/cli.out", err = scratch + "/cli.err";
  const std::string command = absl::StrCat(CliBinary(), " --server ", servers, " ", args, " >",
                                           out, " 2>", err, " <", stdin_file);
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFileBytes(out), ReadFileBytes(err)};
}

std::vector<OracleImage> LoadOracleImages() {
  const std::string root = FixtureDir() + "/images";
  std::vector<OracleImage> images;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    std::vector<std::string> parts =
        absl::StrSplit(fs::relative(entry.path(), root).string(), '/');
    images.push_back({parts[1], ReadFileBytes(entry.path().string())});
  }
  return images;
}

ServerProcess::ServerProcess(ServerOptions options) : options_(std::move(options)) {}

ServerProcess::~ServerProcess() { Stop(); }

absl::Status ServerProcess::Start() {
  const std::string port_file = options_.data_dir + ".port";
  log_path_ = options_.data_dir + ".log";
  log_start_ = ReadFileBytes(log_path_).size();
  fs::remove(port_file);
  std::vector<std::string> args = {ServerBinary(),       "--listen",    "127.0.0.1:0",
                                   "--models",           options_.models_dir,
                                   "--data-dir",         options_.data_dir,
                                   "--port_file",        port_file,
                                   "--workers",          "2"};
  const std::string http_port_file = options_.data_dir + ".http-port";
  fs::remove(http_port_file);
  if (options_.http) {
    args.insert(args.end(), {"--http-listen", "127.0.0.1:0", "--http-port-file", http_port_file});
  } else {
    args.insert(args.end(), {"--http-listen", "off"});
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  pid_ = fork();
  if (pid_ < 0) return absl::InternalError("fork failed");
  if (pid_ == 0) {
    FILE* log = freopen(log_path_.c_str(), "a", stderr);
    (void)log;
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::string port;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ExpectNoSanitizerReport();
      return absl::InternalError(absl::StrCat("the server exited at start:\n", LogTail()));
    }
    std::ifstream in(port_file);
    if (in >> port) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (port.empty()) return absl::DeadlineExceededError("the server did not start:\n" + LogTail());
  address_ = absl::StrCat("127.0.0.1:", port);
  if (options_.http) {  // written before the gRPC port file
    std::ifstream in(http_port_file);
    if (!(in >> http_port_)) return absl::InternalError("no HTTP port file:\n" + LogTail());
  }
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(64 << 20);
  channel_args.SetMaxSendMessageSize(64 << 20);
  if (!options_.tls_server_name.empty()) {
    channel_args.SetSslTargetNameOverride(options_.tls_server_name);
  }
  channel_ = grpc::CreateCustomChannel(
      address_, options_.credentials ? options_.credentials : grpc::InsecureChannelCredentials(),
      channel_args);
  if (!channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    return absl::UnavailableError("cannot connect to " + address_ + "\n" + LogTail());
  }
  if (options_.wait_until_serving) return WaitUntilServing();
  return absl::OkStatus();
}

std::string ServerProcess::HealthStatus() const {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health->Check(&context, request, &response);
  if (!status.ok())
    return absl::StrCat("error ", status.error_code(), ": ", status.error_message());
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

absl::Status ServerProcess::WaitUntilServing(int seconds) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = HealthStatus();
    if (last == "SERVING") return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("health is ", last, " after ", seconds, " s:\n", LogTail()));
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  // Under TSan the signal can stay undelivered: the kernel gives a process-directed signal to
  // the main thread, which waits in an uninstrumented futex (absl::Mutex in Server::Wait), and
  // TSan defers a handler until its thread enters an intercepted call. So after a while the
  // signal is sent to every thread as well; the server's waiter thread, blocked in read(), runs
  // the handler at once. A server that already received one ignores the copies.
  const auto resend_at = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  bool resent = false;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (!resent && std::chrono::steady_clock::now() > resend_at) {
      std::error_code ec;
      for (const auto& task : fs::directory_iterator(absl::StrCat("/proc/", pid_, "/task"), ec)) {
        syscall(SYS_tgkill, pid_, std::stoi(task.path().filename().string()), SIGTERM);
      }
      resent = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  channel_.reset();
  ExpectNoSanitizerReport();
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  channel_.reset();
  ExpectNoSanitizerReport();
}

void ServerProcess::ExpectNoSanitizerReport() const {
  const std::string log = ReadFileBytes(log_path_);
  if (log.size() <= log_start_) return;
  const std::string_view run = std::string_view(log).substr(log_start_);
  for (std::string_view marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                  "WARNING: ThreadSanitizer", "ThreadSanitizer: reported",
                                  "runtime error: "}) {
    const size_t at = run.find(marker);
    if (at == std::string_view::npos) continue;
    const size_t line = run.rfind('\n', at);
    const size_t from = line == std::string_view::npos ? 0 : line + 1;
    ADD_FAILURE() << "the server (" << ServerBinary() << ") reported a sanitizer error in "
                  << log_path_ << ":\n"
                  << run.substr(from, 6000);
    return;
  }
}

std::string ServerProcess::Log() const { return ReadFileBytes(log_path_); }

std::string ServerProcess::LogTail() const {
  std::string log = ReadFileBytes(log_path_);
  return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
}

std::unique_ptr<grpc::ClientContext> Context(int seconds) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace retrace::testing
