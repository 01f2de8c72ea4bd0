// cli: the `retrace` command line — global options, dispatch, and what commands share.
//
// RunCli is the whole program minus main(): it parses the global options, picks the command
// and returns the exit status, writing only to the streams it is given, so tests can drive it.
// A CliContext is used by one command on one thread; it is not thread-safe.
//
// Example:
//   std::vector<std::string> args = {"--server", "10.0.0.5:50051", "collections", "list"};
//   int status = RunCli(args, /*env_server=*/"", /*stderr_is_terminal=*/false, std::cout,
//   std::cerr);
#ifndef RETRACE_CLIENT_CLI_CLI_H_
#define RETRACE_CLIENT_CLI_CLI_H_

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/retrace_client.h"

namespace retrace::cli {

namespace v1 = ::retrace::v1;

// Exit statuses of the CLI.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       // a call failed, or an item of a batch did
  kExitUsage = 2,        // unknown option, missing or malformed argument
  kExitUnavailable = 3,  // the server could not be reached (UNAVAILABLE)
  kExitErrorRate = 4,    // bench: the run's error rate passed --max-error-rate
};

// CliContext: what a command gets: the global options, a client made on first use, the output
// streams, and the error conventions.
class CliContext {
 public:
  CliContext(const client::ClientOptions& options, bool json, bool stderr_is_terminal,
             std::ostream& out, std::ostream& err)
      : options_(options),
        json_(json),
        stderr_is_terminal_(stderr_is_terminal),
        out_(out),
        err_(err) {}

  // client: the client for the --server given; connects (lazily) on the first call.
  client::RetraceClient& client();
  // options: the global options (server, deadline, token, TLS).
  const client::ClientOptions& options() const { return options_; }
  // json: whether --json was given.
  bool json() const { return json_; }
  // stderr_is_terminal: whether a progress line may be drawn on err().
  bool stderr_is_terminal() const { return stderr_is_terminal_; }
  // max_image_bytes: the biggest image file worth sending: one that fits in a message.
  int64_t max_image_bytes() const { return options_.max_message_bytes - 4096; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // RpcError: prints "retrace: COMMAND: CODE: message" to err(); returns kExitUnavailable for
  // UNAVAILABLE, else kExitFailed.
  int RpcError(absl::string_view command, const grpc::Status& status);
  // UsageError: prints "retrace: COMMAND: message", then `usage`, to err(); returns kExitUsage.
  int UsageError(absl::string_view command, absl::string_view message, absl::string_view usage);
  // Error: prints "retrace: COMMAND: message" to err(); returns kExitFailed.
  int Error(absl::string_view command, absl::string_view message);

 private:
  const client::ClientOptions options_;
  const bool json_;
  const bool stderr_is_terminal_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<client::RetraceClient> client_;
};

// RunCli: runs the CLI on `args` (argv without argv[0]); `env_server` is $RETRACE_SERVER and
// `env_token` $RETRACE_TOKEN, or "". Returns the exit status.
int RunCli(const std::vector<std::string>& args, absl::string_view env_server,
           bool stderr_is_terminal, std::ostream& out, std::ostream& err,
           absl::string_view env_token = "");

// The commands: each gets the arguments after its name and returns the exit status. Each
// prints its usage for --help (status 0) and on a usage error (status 2).
int RunCaptionCommand(CliContext& context, const std::vector<std::string>& args);
int RunCollectionsCommand(CliContext& context, const std::vector<std::string>& args);
int RunIndexCommand(CliContext& context, const std::vector<std::string>& args);
int RunSearchCommand(CliContext& context, const std::vector<std::string>& args);
int RunGetCommand(CliContext& context, const std::vector<std::string>& args);
int RunDeleteCommand(CliContext& context, const std::vector<std::string>& args);
// RunMinePairsCommand: `retrace mine-pairs`, CS-SLIP's conceptual-similar pairs (client/mining/).
int RunMinePairsCommand(CliContext& context, const std::vector<std::string>& args);
// RunHealthCommand: `retrace health`, the grpc.health.v1 Check; exit 0 only when SERVING.
int RunHealthCommand(CliContext& context, const std::vector<std::string>& args);

// RunExportCommand: `retrace export`, a collection's items as JSON Lines (List, page by page).
int RunExportCommand(CliContext& context, const std::vector<std::string>& args);
// RunBenchCommand: `retrace bench`, the load generator (client/bench/).
int RunBenchCommand(CliContext& context, const std::vector<std::string>& args);
// RunClusterCommand: `retrace cluster status`, the replicas sharing the server's store.
int RunClusterCommand(CliContext& context, const std::vector<std::string>& args);
// RunEvalCommand: `retrace eval SUBCOMMAND`: build-similar runs locally; cm and provenance
// run the papers' protocols against the server.
int RunEvalCommand(CliContext& context, const std::vector<std::string>& args);
int RunEvalCmCommand(CliContext& context, const std::vector<std::string>& args);
int RunEvalProvenanceCommand(CliContext& context, const std::vector<std::string>& args);

// ParseSearchMode: "caption", "provenance" or "hybrid", in any case, as the SearchMode enum;
// INVALID_ARGUMENT naming the accepted values otherwise.
absl::StatusOr<v1::SearchMode> ParseSearchMode(absl::string_view name);

}  // namespace retrace::cli

#endif  // RETRACE_CLIENT_CLI_CLI_H_
