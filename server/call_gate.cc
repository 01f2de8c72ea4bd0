#include "server/call_gate.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/common/status_macros.h"
#include "server/status_mapping.h"

namespace retrace::server {
namespace {

constexpr size_t kMaxRequestIdBytes = 128;

// SafeRequestId: whether a client's request id is safe to log and echo.
bool SafeRequestId(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string NewRequestId() {
  thread_local std::mt19937_64 random(std::random_device{}());
  return absl::StrCat(absl::Hex(random(), absl::kZeroPad16));
}

}  // namespace

CallGate::CallGate(ThreadPool* interactive, ThreadPool* bulk, const TokenAuthorizer* auth,
                   ServiceMetrics* metrics, ServerLoggers logs, ServiceOptions options)
    : interactive_(interactive),
      bulk_(bulk),
      auth_(auth),
      metrics_(metrics),
      logs_(std::move(logs)),
      options_(options) {}

std::string CallGate::RequestId(const CallMeta& meta) {
  return SafeRequestId(meta.client_request_id) ? std::string(meta.client_request_id)
                                               : NewRequestId();
}

absl::StatusOr<Principal> CallGate::Admit(const CallMeta& meta, const RpcSpec& rpc,
                                          std::string_view collection) const {
  if (engine() == nullptr) {
    return absl::UnavailableError(
        "retrace-server is starting: the models and collections are loading (health reports "
        "NOT_SERVING until they are ready)");
  }
  RETRACE_ASSIGN_OR_RETURN(Principal who, auth_->Authenticate(meta.authorization));
  RETRACE_RETURN_IF_ERROR(auth_->Authorize(who, rpc.scope, collection));
  return who;
}

absl::Status CallGate::QueueFull(Lane lane) const {
  if (Pending(lane) < static_cast<size_t>(options_.max_pending_calls)) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the server is overloaded: ", options_.max_pending_calls, " calls already wait for a ",
      batching::LaneName(lane), " worker (limits.max_pending_calls); retry with backoff"));
}

std::chrono::system_clock::time_point CallGate::Deadline(const CallMeta& meta) const {
  if (meta.deadline.has_value()) return *meta.deadline;
  return std::chrono::system_clock::now() + options_.default_deadline;
}

void CallGate::Run(const RpcSpec& rpc, const Principal& who,
                   std::chrono::system_clock::time_point deadline, std::function<bool()> cancelled,
                   Work work, std::function<void(const absl::Status&)> done) {
  if (absl::Status full = QueueFull(rpc.lane); !full.ok()) {
    done(full);
    return;
  }
  pool(rpc.lane).Submit([this, who, deadline, cancelled = std::move(cancelled), work = std::move(work),
                 done = std::move(done)] {
    absl::Status status;
    if (cancelled()) {
      status = absl::CancelledError("the client cancelled the call");
    } else if (std::chrono::system_clock::now() > deadline) {
      status = absl::DeadlineExceededError(
          "the call's deadline passed while it waited for a worker; it was not run");
    } else {
      engine::CallOptions call;
      call.deadline = absl::FromChrono(deadline);
      call.scope = who.filter;  // a tenant token's filter binds every engine call it makes
      status = work(*engine(), who, call);
    }
    done(status);
  });
}

absl::Status CallGate::OpenIndexStream() {
  const int limit = options_.max_index_streams;
  if (index_streams_.fetch_add(1) < limit) return absl::OkStatus();
  index_streams_.fetch_sub(1);
  return absl::ResourceExhaustedError(absl::StrCat(
      "the server already serves ", limit, " Index streams (limits.max_index_streams); retry later"));
}

void CallGate::Finished(const RpcSpec& rpc, const absl::Status& status,
                        std::chrono::steady_clock::time_point start, std::string_view request_id,
                        std::string_view principal) const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto code = static_cast<grpc::StatusCode>(status.code());
  if (metrics_ != nullptr) metrics_->RecordCall(rpc.name, code, seconds);
  const std::string_view message(status.message().data(), status.message().size());
  LogCall(logs_, {rpc.name, code, seconds * 1e3, request_id, principal, message},
          options_.access_log);
}

}  // namespace retrace::server
