#include "server/http/http_listener.h"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace retrace::http {
namespace {

struct HostPort {
  std::string host;
  int port = 0;
};

// ParseAddress splits "host:port" or "[ipv6]:port".
absl::StatusOr<HostPort> ParseAddress(absl::string_view address, absl::string_view what) {
  const auto invalid = [address, what](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " address \"", address, "\" is not valid: ", why));
  };
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return invalid("expected host:port");
  absl::string_view host = address.substr(0, colon);
  const absl::string_view port_text = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != absl::string_view::npos) {
    return invalid("an IPv6 host goes in brackets, as in [::1]:9090");
  }
  if (host.empty()) return invalid("the host is empty (use 0.0.0.0 for every interface)");
  int port = -1;
  if (port_text.empty() || !std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return invalid("the port must be a number from 0 to 65535");
  }
  return HostPort{std::string(host), port};
}

// CheckResolves tells a host that cannot be resolved (InvalidArgument) from a port that cannot
// be bound, which httplib reports alike.
absl::Status CheckResolves(const std::string& host, absl::string_view address,
                           absl::string_view what) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " address \"", address,
                                                   "\": cannot resolve the host: ",
                                                   gai_strerror(rc)));
  }
  freeaddrinfo(result);
  return absl::OkStatus();
}

// BindError turns the errno left by a failed bind into a status naming the address.
absl::Status BindError(int error, absl::string_view address, absl::string_view what) {
  const std::string reason = error != 0 ? std::strerror(error) : "bind failed";
  const std::string message =
      absl::StrCat(what, " HTTP server cannot listen on ", address, ": ", reason);
  switch (error) {
    case EADDRNOTAVAIL:
      return absl::InvalidArgumentError(message);
    case EACCES:
      return absl::PermissionDeniedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

std::unique_ptr<httplib::Server> MakeServer(const HttpListener::Options& options) {
  if (options.tls_cert.empty()) return std::make_unique<httplib::Server>();
  return std::make_unique<httplib::SSLServer>(
      options.tls_cert.c_str(), options.tls_key.c_str(),
      options.tls_client_ca.empty() ? nullptr : options.tls_client_ca.c_str());
}

}  // namespace

struct HttpListener::Impl {
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
  int port = 0;
  absl::Mutex stop_mu;
  bool stopped ABSL_GUARDED_BY(stop_mu) = false;
};

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Start(
    absl::string_view address, const Options& options,
    const std::function<void(httplib::Server&)>& routes) {
  const absl::string_view what = options.what;
  absl::StatusOr<HostPort> host_port = ParseAddress(address, what);
  if (!host_port.ok()) return host_port.status();
  if (absl::Status s = CheckResolves(host_port->host, address, what); !s.ok()) return s;

  auto impl = std::make_unique<Impl>();
  impl->server = MakeServer(options);
  httplib::Server& server = *impl->server;
  if (!server.is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " HTTP server on ", address, ": cannot use the TLS certificate \"",
                     options.tls_cert, "\", key \"", options.tls_key, "\"",
                     options.tls_client_ca.empty() ? "" : " or client CA \"",
                     options.tls_client_ca, options.tls_client_ca.empty() ? "" : "\""));
  }
  const size_t threads = std::max<size_t>(1, options.threads);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib's default sets SO_REUSEPORT, which would let a second server bind the same port
  // and share its traffic; SO_REUSEADDR alone still allows a quick restart.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.set_keep_alive_timeout(options.keep_alive_seconds);
  if (options.max_body_bytes > 0) server.set_payload_max_length(options.max_body_bytes);
  routes(server);

  errno = 0;
  if (host_port->port == 0) {
    impl->port = server.bind_to_any_port(host_port->host);
    if (impl->port < 0) return BindError(errno, address, what);
  } else {
    if (!server.bind_to_port(host_port->host, host_port->port)) {
      return BindError(errno, address, what);
    }
    impl->port = host_port->port;
  }

  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    raw->server->listen_after_bind();
    raw->listen_returned = true;
  });
  // httplib's stop() does nothing until the listen loop runs, so a Stop right after Start
  // would be lost; wait for the loop.
  while (!server.is_running() && !raw->listen_returned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server.is_running()) {
    impl->thread.join();
    return absl::UnavailableError(
        absl::StrCat(what, " HTTP server on ", address, " stopped as soon as it started"));
  }
  return std::unique_ptr<HttpListener>(new HttpListener(std::move(impl)));
}

HttpListener::HttpListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpListener::~HttpListener() { Stop(); }

int HttpListener::port() const { return impl_->port; }

void HttpListener::Stop() {
  absl::MutexLock lock(&impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->server->stop();
  impl_->thread.join();
}

}  // namespace retrace::http
