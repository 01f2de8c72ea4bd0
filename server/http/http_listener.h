// http_listener.h — an httplib server bound to "host:port", serving on its own thread until
// Stop: the one place the metrics endpoint and the HTTP/JSON API parse addresses, bind (with
// errors that name the address), speak TLS and shut down.
//
// Thread-safety: port() is safe from any thread; Stop may be called from any thread, more than
// once, and concurrently.
//
//   HttpListener::Options options{.what = "metrics", .threads = 2};
//   RETRACE_ASSIGN_OR_RETURN(auto http, HttpListener::Start("127.0.0.1:0", options,
//       [](httplib::Server& s) { s.Get("/x", ...); }));
//   int port = http->port();  http->Stop();  // or let the destructor stop it
#ifndef RETRACE_SERVER_HTTP_HTTP_LISTENER_H_
#define RETRACE_SERVER_HTTP_HTTP_LISTENER_H_

#include <cstddef>
#include <ctime>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace retrace::http {

class HttpListener {
 public:
  struct Options {
    // What listens, for error messages: "metrics" gives `metrics address "x" is not valid`.
    std::string what = "HTTP";
    size_t threads = 2;  // httplib worker threads: requests served at once
    // An idle keep-alive connection holds a worker, and Stop waits for it, up to this long.
    time_t keep_alive_seconds = 1;
    // The largest request body accepted; larger ones get 413. 0: httplib's default (unbounded).
    size_t max_body_bytes = 0;
    // PEM files: with tls_cert and tls_key the listener speaks HTTPS only; with tls_client_ca
    // too, every client must present a certificate signed by one of its CAs.
    std::string tls_cert;
    std::string tls_key;
    std::string tls_client_ca;
  };

  // Start binds `address`, "host:port" ("0.0.0.0:9090", "127.0.0.1:0", "[::]:9090"; port 0
  // picks a free port, see port()), lets `routes` add its handlers and serves until Stop.
  //
  // Errors: InvalidArgument when the address is malformed, the host does not resolve or is not
  // an address of this machine, or the TLS files cannot be used; Unavailable when the port
  // cannot be bound (already in use); PermissionDenied when binding is not allowed (a port below
  // 1024). Messages name the address.
  static absl::StatusOr<std::unique_ptr<HttpListener>> Start(
      absl::string_view address, const Options& options,
      const std::function<void(httplib::Server&)>& routes);

  ~HttpListener();  // stops the server (see Stop)
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  int port() const;  // the port listened on (the picked one when Start was given port 0)

  // Stop closes the listening socket, lets requests in progress finish and joins the server's
  // threads. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit HttpListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace retrace::http

#endif  // RETRACE_SERVER_HTTP_HTTP_LISTENER_H_
