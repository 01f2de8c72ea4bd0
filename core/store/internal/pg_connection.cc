#include "core/store/internal/pg_connection.h"

#include <endian.h>
#include <libpq-fe.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace retrace::store::internal::pg {
namespace {

std::string Message(const char* text) {
  std::string m = text == nullptr ? "" : text;
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

// CodeFor maps a SQLSTATE to a status code: connection trouble and a server shutting down are
// UNAVAILABLE (retry), serialization failures and deadlocks ABORTED, resource limits
// RESOURCE_EXHAUSTED, unique violations ALREADY_EXISTS, the rest INTERNAL.
absl::StatusCode CodeFor(absl::string_view sqlstate) {
  if (sqlstate.empty()) return absl::StatusCode::kUnavailable;  // no server answer at all
  if (absl::StartsWith(sqlstate, "08") || sqlstate == "57P01" || sqlstate == "57P02" ||
      sqlstate == "57P03") {
    return absl::StatusCode::kUnavailable;
  }
  if (sqlstate == "40001" || sqlstate == "40P01") return absl::StatusCode::kAborted;
  if (absl::StartsWith(sqlstate, "53")) return absl::StatusCode::kResourceExhausted;
  if (sqlstate == "23505") return absl::StatusCode::kAlreadyExists;
  if (sqlstate == "28P01" || sqlstate == "28000") return absl::StatusCode::kUnauthenticated;
  if (sqlstate == "3D000") return absl::StatusCode::kNotFound;
  return absl::StatusCode::kInternal;
}

}  // namespace

Result::Result(pg_result* result) : result_(result) {}
Result::Result(Result&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}
Result::~Result() {
  if (result_ != nullptr) PQclear(result_);
}
int Result::rows() const { return PQntuples(result_); }
bool Result::IsNull(int row, int col) const { return PQgetisnull(result_, row, col) != 0; }
absl::string_view Result::Bytes(int row, int col) const {
  return absl::string_view(PQgetvalue(result_, row, col), PQgetlength(result_, row, col));
}
int64_t Result::Int64(int row, int col) const {
  uint64_t big;
  std::memcpy(&big, PQgetvalue(result_, row, col), sizeof big);
  return static_cast<int64_t>(be64toh(big));
}
int32_t Result::Int32(int row, int col) const {
  uint32_t big;
  std::memcpy(&big, PQgetvalue(result_, row, col), sizeof big);
  return static_cast<int32_t>(be32toh(big));
}
double Result::Float8(int row, int col) const {
  // The binary format of float8 is the IEEE 754 double's bits, big-endian.
  uint64_t big;
  std::memcpy(&big, PQgetvalue(result_, row, col), sizeof big);
  const uint64_t bits = be64toh(big);
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
int64_t Result::affected() const {
  const char* n = PQcmdTuples(result_);
  return n == nullptr || *n == '\0' ? 0 : std::strtoll(n, nullptr, 10);
}

std::string ConnectionTarget::ToString() const {
  return absl::StrCat(user.empty() ? "" : user + "@", host.empty() ? "(local socket)" : host,
                      port.empty() ? "" : ":" + port, "/", dbname);
}

absl::StatusOr<ConnectionTarget> ParseTarget(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    std::string message = error != nullptr ? Message(error) : "out of memory";
    if (error != nullptr) PQfreemem(error);
    return absl::InvalidArgumentError(
        absl::StrCat("not a PostgreSQL connection URI or string: ", message,
                     " (expected e.g. postgresql://user@host:5432/dbname)"));
  }
  ConnectionTarget target;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const absl::string_view key = o->keyword;
    if (key == "host" || key == "hostaddr") {
      if (target.host.empty()) target.host = o->val;
    } else if (key == "port") {
      target.port = o->val;
    } else if (key == "dbname") {
      target.dbname = o->val;
    } else if (key == "user") {
      target.user = o->val;
    }
  }
  PQconninfoFree(options);
  return target;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& conninfo,
                                                             int connect_timeout_seconds) {
  absl::StatusOr<ConnectionTarget> target = ParseTarget(conninfo);
  if (!target.ok()) return target.status();
  const std::string timeout = std::to_string(connect_timeout_seconds);
  // Later parameters override earlier ones, so the caller's string wins over these defaults.
  const char* keywords[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "retrace-server", conninfo.c_str(), nullptr};
  pg_conn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("postgresql: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string message = Message(PQerrorMessage(conn));
    PQfinish(conn);
    absl::StatusCode code = absl::StatusCode::kUnavailable;
    std::string hint;
    if (message.find("invalid") != std::string::npos &&
        message.find("for connection option") != std::string::npos) {
      code = absl::StatusCode::kInvalidArgument;
      hint = " (expected e.g. postgresql://user@host:5432/dbname)";
    } else if (message.find("password authentication failed") != std::string::npos ||
        message.find("no password supplied") != std::string::npos ||
        message.find("role \"") != std::string::npos) {
      code = absl::StatusCode::kUnauthenticated;
    } else if (message.find("database \"") != std::string::npos &&
               message.find("does not exist") != std::string::npos) {
      code = absl::StatusCode::kNotFound;
    }
    return absl::Status(code, absl::StrCat("cannot connect to PostgreSQL at ",
                                           target->ToString(), ": ", message, hint));
  }
  // Notices (e.g. "relation already exists, skipping") are not errors; keep them out of stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Connection>(new Connection(conn, std::move(*target)));
}

Connection::~Connection() { PQfinish(conn_); }

absl::Status Connection::Error(absl::string_view op, pg_result* result) const {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message =
      result != nullptr ? Message(PQresultErrorMessage(result)) : Message(PQerrorMessage(conn_));
  if (message.empty()) message = Message(PQerrorMessage(conn_));
  absl::StatusCode code = CodeFor(state == nullptr ? "" : state);
  if (PQstatus(conn_) != CONNECTION_OK) code = absl::StatusCode::kUnavailable;
  return absl::Status(code, absl::StrCat("postgresql (", target_.ToString(), "): ", op, ": ",
                                         message.empty() ? "the connection was lost" : message));
}

absl::StatusOr<Result> Connection::Exec(const std::string& sql, const std::vector<Param>& params,
                                        absl::string_view op) {
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size()), formats(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    values[i] = params[i].value.data();
    lengths[i] = static_cast<int>(params[i].value.size());
    formats[i] = params[i].binary ? 1 : 0;
  }
  pg_result* raw = PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                                values.data(), lengths.data(), formats.data(),
                                /*resultFormat=*/1);
  Result result(raw);
  const ExecStatusType status = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return Error(op, raw);
  return result;
}

absl::Status Connection::ExecSimple(const std::string& sql, absl::string_view op) {
  pg_result* raw = PQexec(conn_, sql.c_str());
  Result result(raw);
  const ExecStatusType status = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return Error(op, raw);
  return absl::OkStatus();
}

bool Connection::Healthy() const { return PQstatus(conn_) == CONNECTION_OK; }

absl::Status Connection::Reset() {
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("cannot reconnect to PostgreSQL at ",
                                               target_.ToString(), ": ",
                                               Message(PQerrorMessage(conn_))));
  }
  return absl::OkStatus();
}

bool Connection::InTransaction() const {
  return PQtransactionStatus(conn_) != PQTRANS_IDLE;
}

int Connection::Socket() const { return PQsocket(conn_); }

absl::Status Connection::ConsumeInput() {
  if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("postgresql (", target_.ToString(),
                                               "): the connection was lost: ",
                                               Message(PQerrorMessage(conn_))));
  }
  return absl::OkStatus();
}

bool Connection::NextNotification(std::string* payload) {
  PGnotify* notify = PQnotifies(conn_);
  if (notify == nullptr) return false;
  *payload = notify->extra != nullptr ? notify->extra : "";
  PQfreemem(notify);
  return true;
}

Transaction::~Transaction() {
  if (open_) (void)conn_->ExecSimple("ROLLBACK", "roll back");
}

absl::Status Transaction::Begin(absl::string_view mode) {
  absl::Status s = conn_->ExecSimple(absl::StrCat("BEGIN ", mode), "begin");
  open_ = s.ok();
  return s;
}

absl::Status Transaction::Commit() {
  open_ = false;
  return conn_->ExecSimple("COMMIT", "commit");
}

}  // namespace retrace::store::internal::pg
