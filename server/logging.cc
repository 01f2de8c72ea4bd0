#include "server/logging.h"

#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace retrace::server {
namespace {

constexpr std::string_view kCallLogger = "retrace.call";

// abseil here has its own string_view, which StrCat and StrFormat take; std's is converted.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Utf8SequenceLength: the length of the valid UTF-8 sequence at `s[i]`, or 0 if invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  if (n == 2 && c < 0xC2) return 0;                          // overlong
  if (n == 3 && c == 0xE0 && byte(i + 1) < 0xA0) return 0;   // overlong
  if (n == 3 && c == 0xED && byte(i + 1) >= 0xA0) return 0;  // surrogate
  if (n == 4 &&
      (c > 0xF4 || (c == 0xF0 && byte(i + 1) < 0x90) || (c == 0xF4 && byte(i + 1) >= 0x90))) {
    return 0;
  }
  return n;
}

std::string Iso8601(std::chrono::system_clock::time_point t) {
  const auto since_epoch = t.time_since_epoch();
  const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
  const int millis = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

// JsonLineFormatter: one JSON object per line. A call line's payload is already a list of JSON
// members (LogCall writes it so); any other payload becomes "msg".
class JsonLineFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view logger(msg.logger_name.data(), msg.logger_name.size());
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    const auto level = spdlog::level::to_string_view(msg.level);
    std::string line = absl::StrCat("{\"ts\":\"", Iso8601(msg.time), "\",\"level\":\"",
                                    absl::string_view(level.data(), level.size()),
                                    "\",\"logger\":\"", JsonEscape(logger), "\",");
    if (logger == kCallLogger) {
      absl::StrAppend(&line, Av(payload), "}\n");
    } else {
      absl::StrAppend(&line, "\"msg\":\"", JsonEscape(payload), "\"}\n");
    }
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonLineFormatter>();
  }
};

}  // namespace

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const size_t n = Utf8SequenceLength(text, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text, i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  return out;
}

ServerLoggers MakeServerLoggers(LogFormat format, spdlog::level::level_enum level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (format == LogFormat::kJson) sink->set_formatter(std::make_unique<JsonLineFormatter>());
  ServerLoggers loggers;
  loggers.events = std::make_shared<spdlog::logger>("retrace", sink);
  loggers.calls = std::make_shared<spdlog::logger>(std::string(kCallLogger), sink);
  loggers.events->set_level(level);
  loggers.calls->set_level(level);
  loggers.format = format;
  return loggers;
}

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "UNKNOWN";
  }
}

void LogCall(const ServerLoggers& loggers, const CallRecord& r, bool access_log) {
  const bool server_fault = r.code == grpc::StatusCode::INTERNAL ||
                            r.code == grpc::StatusCode::UNKNOWN ||
                            r.code == grpc::StatusCode::DATA_LOSS;
  const spdlog::level::level_enum level = server_fault ? spdlog::level::warn
                                          : access_log ? spdlog::level::info
                                                       : spdlog::level::debug;
  if (!loggers.calls->should_log(level)) return;
  std::string line;
  if (loggers.format == LogFormat::kJson) {
    line = absl::StrFormat(
        "\"rpc\":\"%s\",\"code\":\"%s\",\"ms\":%.3f,\"request_id\":\"%s\",\"principal\":\"%s\"",
        JsonEscape(r.rpc), StatusCodeName(r.code), r.milliseconds, JsonEscape(r.request_id),
        JsonEscape(r.principal));
    if (!r.message.empty()) absl::StrAppend(&line, ",\"error\":\"", JsonEscape(r.message), "\"");
  } else {
    line =
        absl::StrFormat("%s %s %.1f ms request_id=%s principal=%s", Av(r.rpc),
                        StatusCodeName(r.code), r.milliseconds, Av(r.request_id), Av(r.principal));
    if (!r.message.empty()) absl::StrAppend(&line, ": ", Av(r.message));
  }
  loggers.calls->log(level, "{}", line);
}

}  // namespace retrace::server
