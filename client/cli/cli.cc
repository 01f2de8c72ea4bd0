#include "client/cli/cli.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

constexpr char kUsage[] =
    R"(usage: retrace [--server HOST:PORT] [--token TOKEN] [--tls ...] [--json] [--timeout SECONDS]
               COMMAND [ARGS...]

Commands:
  caption FILE...                              caption images
  collections create|list|describe|drop ...    manage collections
  index --collection NAME PATH...              index image files and folders
  search --collection NAME QUERY               search a collection
  get --collection NAME ID...                  show stored items
  delete --collection NAME ID...|--filter EXPR delete items (by id, or all that match)
  export --collection NAME [--out FILE]        the items as JSON Lines (index --items reads them)
  mine-pairs --collection NAME --ids FILE --out FILE
                                               nearest-caption pairs for CS-SLIP training
  eval cm --data DIR ...                       the Caption-Matching evaluation protocol
  eval provenance --data DIR --refs DIR ...    the CS-SLIP provenance evaluation protocol
  eval build-similar --refs DIR --out DIR      build an evaluation query set (no server)
  bench --collection NAME ...                  load-test a collection (QPS, latency, errors)
  cluster status                               the replicas sharing the server's store
  health [--service NAME]                      the server's gRPC health (exit 0 when SERVING)

Global options (before the command):
  --server HOST:PORT   the server (default: $RETRACE_SERVER, else 127.0.0.1:50051); several,
                       comma-separated (replicas), spread calls over them (round robin)
  --json               print responses in protobuf's JSON mapping, proto field names
  --timeout SECONDS    deadline of each call (default 60); the index stream has none
  --token TOKEN        bearer token for a server that requires one (default: $RETRACE_TOKEN;
                       prefer the variable: a flag shows in the process list)
  --tls                connect with TLS, checking the server against the system's CAs
  --tls-ca FILE        ... against this PEM CA bundle instead (implies --tls)
  --tls-cert FILE      client certificate (PEM) for servers that require one, with --tls-key
  --tls-key FILE       its private key
  --tls-server-name N  the name the server's certificate must carry (default: the host)
  --request-id ID      sent as x-request-id, so the server's log lines can be found
  --help               this help; `retrace COMMAND --help` for a command's

Exit status: 0 ok, 1 a call or an item failed, 2 usage error, 3 server unreachable,
4 bench's --max-error-rate exceeded.
)";

struct Command {
  absl::string_view name;
  int (*run)(CliContext&, const std::vector<std::string>&);
};

constexpr Command kCommands[] = {
    {"caption", RunCaptionCommand}, {"collections", RunCollectionsCommand},
    {"index", RunIndexCommand},     {"search", RunSearchCommand},
    {"get", RunGetCommand},         {"delete", RunDeleteCommand},
    {"eval", RunEvalCommand},       {"bench", RunBenchCommand},
    {"cluster", RunClusterCommand}, {"mine-pairs", RunMinePairsCommand},
    {"health", RunHealthCommand},   {"export", RunExportCommand},
};

}  // namespace

client::RetraceClient& CliContext::client() {
  if (client_ == nullptr) client_ = client::RetraceClient::Connect(options_);
  return *client_;
}

int CliContext::RpcError(absl::string_view command, const grpc::Status& status) {
  err_ << "retrace: " << command << ": " << CodeName(status.error_code()) << ": "
       << status.error_message() << "\n";
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ? kExitUnavailable : kExitFailed;
}

int CliContext::UsageError(absl::string_view command, absl::string_view message,
                           absl::string_view usage) {
  err_ << "retrace: " << command << ": " << message << "\n" << usage;
  return kExitUsage;
}

int CliContext::Error(absl::string_view command, absl::string_view message) {
  err_ << "retrace: " << command << ": " << message << "\n";
  return kExitFailed;
}

int RunCli(const std::vector<std::string>& args, absl::string_view env_server,
           bool stderr_is_terminal, std::ostream& out, std::ostream& err,
           absl::string_view env_token) {
  auto parsed = ParseArgs(args,
                          {{"server", true},
                           {"json", false},
                           {"timeout", true},
                           {"help", false},
                           {"token", true},
                           {"tls", false},
                           {"tls-ca", true},
                           {"tls-cert", true},
                           {"tls-key", true},
                           {"tls-server-name", true},
                           {"request-id", true}},
                          /*stop_at_positional=*/true);
  if (!parsed.ok()) {
    err << "retrace: " << parsed.status().message() << "\n" << kUsage;
    return kExitUsage;
  }
  std::vector<std::string> rest = parsed->positional();
  if (parsed->Has("help")) {
    out << kUsage;
    return kExitOk;
  }
  if (rest.empty()) {
    err << kUsage;
    return kExitUsage;
  }
  if (rest[0] == "help") {  // "retrace help [COMMAND]"
    if (rest.size() == 1) {
      out << kUsage;
      return kExitOk;
    }
    rest = {rest[1], "--help"};
  }

  client::ClientOptions options;
  if (!env_server.empty()) options.server = std::string(env_server);
  if (parsed->Has("server")) options.server = parsed->Value("server");
  if (options.server.empty()) {
    err << "retrace: --server: expected HOST:PORT, got ''\n" << kUsage;
    return kExitUsage;
  }
  if (parsed->Has("timeout")) {
    absl::StatusOr<double> seconds = ParsePositiveSeconds("timeout", parsed->Value("timeout"));
    if (!seconds.ok()) {
      err << "retrace: " << seconds.status().message() << "\n" << kUsage;
      return kExitUsage;
    }
    options.timeout =
        std::chrono::milliseconds(static_cast<int64_t>(std::ceil(std::min(*seconds, 1e9) * 1000)));
  }

  options.token = std::string(env_token);
  if (parsed->Has("token")) options.token = parsed->Value("token");
  if (parsed->Has("request-id")) options.request_id = parsed->Value("request-id");
  options.tls = parsed->Has("tls") || parsed->Has("tls-ca") || parsed->Has("tls-cert");
  struct PemFlag {
    const char* flag;
    std::string* into;
  };
  for (const PemFlag& pem :
       {PemFlag{"tls-ca", &options.tls_root_certs}, PemFlag{"tls-cert", &options.tls_client_cert},
        PemFlag{"tls-key", &options.tls_client_key}}) {
    if (!parsed->Has(pem.flag)) continue;
    std::ifstream in(parsed->Value(pem.flag), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in || text.str().find("-----BEGIN ") == std::string::npos) {
      err << "retrace: --" << pem.flag << ": cannot read a PEM file at '" << parsed->Value(pem.flag)
          << "'\n";
      return kExitUsage;
    }
    *pem.into = text.str();
  }
  if (options.tls_client_cert.empty() != options.tls_client_key.empty()) {
    err << "retrace: --tls-cert and --tls-key go together\n" << kUsage;
    return kExitUsage;
  }
  if (parsed->Has("tls-server-name")) options.tls_server_name = parsed->Value("tls-server-name");

  for (const Command& command : kCommands) {
    if (command.name == rest[0]) {
      CliContext context(options, parsed->Has("json"), stderr_is_terminal, out, err);
      return command.run(context, std::vector<std::string>(rest.begin() + 1, rest.end()));
    }
  }
  err << "retrace: unknown command '" << rest[0] << "'\n" << kUsage;
  return kExitUsage;
}

}  // namespace retrace::cli
