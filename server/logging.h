// logging.h — the server's loggers: human text or one JSON object per line, and the per-call log.
//
// Two loggers share one stderr sink: "retrace" for events, and "retrace.call" for one line per
// finished call (rpc, code, milliseconds, request id, token holder). In JSON mode an event is
// {"ts","level","logger","msg"} and a call line carries its fields as JSON members, so a log
// pipeline can filter by request id without parsing text. Tokens never reach a log line; only
// the holder's name does.
//
// Thread-safety: spdlog loggers and sinks are thread-safe; LogCall may be called from any thread.
//
//   ServerLoggers logs = MakeServerLoggers(LogFormat::kJson, spdlog::level::info);
//   LogCall(logs, {.rpc = "Search", .code = grpc::StatusCode::OK, ...}, /*access_log=*/true);
#ifndef RETRACE_SERVER_LOGGING_H_
#define RETRACE_SERVER_LOGGING_H_

#include <grpcpp/support/status.h>

#include <memory>
#include <string>
#include <string_view>

#include "spdlog/logger.h"

namespace retrace::server {

enum class LogFormat { kText, kJson };

struct ServerLoggers {
  std::shared_ptr<spdlog::logger> events;  // "retrace"
  std::shared_ptr<spdlog::logger> calls;   // "retrace.call"
  LogFormat format = LogFormat::kText;
};

// MakeServerLoggers: both loggers on one stderr sink in `format`, at `level`. They are not put
// in spdlog's global registry.
ServerLoggers MakeServerLoggers(LogFormat format, spdlog::level::level_enum level);

// CallRecord: one finished call (or one request of an Index stream).
struct CallRecord {
  std::string_view rpc;
  grpc::StatusCode code = grpc::StatusCode::OK;
  double milliseconds = 0;
  std::string_view request_id;
  std::string_view principal;  // the token's holder, "anonymous" without authentication
  std::string_view message;    // the error message; empty on OK
};

// LogCall writes `record` to the call logger: at info when `access_log`, else at debug, and at
// warn for server-side failures (INTERNAL, UNKNOWN, DATA_LOSS) either way.
void LogCall(const ServerLoggers& loggers, const CallRecord& record, bool access_log);

// StatusCodeName: "OK", "INVALID_ARGUMENT", ... as gRPC spells them.
const char* StatusCodeName(grpc::StatusCode code);

// JsonEscape: `text` as the inside of a JSON string (quotes, backslashes, control characters
// escaped; invalid UTF-8 bytes replaced with U+FFFD so the line stays valid JSON).
std::string JsonEscape(std::string_view text);

}  // namespace retrace::server

#endif  // RETRACE_SERVER_LOGGING_H_
