// `retrace health`: the grpc.health.v1 Check, for probes (the container image's HEALTHCHECK)
// and scripts: exit status 0 only when the server says SERVING.
#include <memory>
#include <string>
#include <vector>

#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "health";

constexpr char kHealthUsage[] =
    R"(usage: retrace health [--server HOST:PORT] [--service NAME]

Asks the server's standard gRPC health service (grpc.health.v1.Health/Check) and prints its
status: SERVING, NOT_SERVING (retrace-server while it loads its models, and while it drains
at shutdown) or UNKNOWN. --server here is the global option's, also accepted after the
command; --service checks one service instead of the whole server (""). With --json, prints
the HealthCheckResponse. Health needs no token.

Exit status: 0 SERVING; 1 anything else (or a service the server does not know);
3 the server could not be reached.
)";

}  // namespace

int RunHealthCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"server", true}, {"service", true}, {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kHealthUsage);
  if (parsed->Has("help")) {
    context.out() << kHealthUsage;
    return kExitOk;
  }
  if (!parsed->positional().empty()) {
    return context.UsageError(
        kCommand, "unexpected argument '" + parsed->positional()[0] + "'", kHealthUsage);
  }
  std::unique_ptr<client::RetraceClient> other_server;
  client::RetraceClient* client = &context.client();
  if (parsed->Has("server")) {
    if (parsed->Value("server").empty()) {
      return context.UsageError(kCommand, "--server: expected HOST:PORT, got ''", kHealthUsage);
    }
    client::ClientOptions options = context.options();
    options.server = parsed->Value("server");
    other_server = client::RetraceClient::Connect(options);
    client = other_server.get();
  }

  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = client->CheckHealth(parsed->Value("service"), &response);
  if (!status.ok()) return context.RpcError(kCommand, status);
  if (context.json()) {
    context.out() << ToJson(response, /*multiline=*/false) << "\n";
  } else {
    context.out() << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
                  << "\n";
  }
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                              : kExitFailed;
}

}  // namespace retrace::cli
