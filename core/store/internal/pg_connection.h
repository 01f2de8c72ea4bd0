// pg_connection.h — a thin C++ face on libpq for PostgresItemStore: one connection, parameterised
// statements with binary byte strings, results read in binary, and libpq's errors turned into
// statuses with the right code (a lost server is UNAVAILABLE, so callers can retry).
//
// Thread-safety: a Connection is used by one thread at a time (the store's pool hands them out).
//
//   RETRACE_ASSIGN_OR_RETURN(auto conn, Connection::Open(conninfo));
//   RETRACE_ASSIGN_OR_RETURN(Result r, conn->Exec("SELECT id FROM items WHERE collection = $1",
//                                                 {Param::Bytes(name)}, "list ids"));
//   for (int row = 0; row < r.rows(); ++row) use(r.Bytes(row, 0));
#ifndef RETRACE_CORE_STORE_INTERNAL_PG_CONNECTION_H_
#define RETRACE_CORE_STORE_INTERNAL_PG_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct pg_conn;
struct pg_result;

namespace retrace::store::internal::pg {

// Param: one statement parameter: bytes sent as-is (bytea) or text (numbers), never NULL.
struct Param {
  std::string value;
  bool binary = false;
  static Param Bytes(absl::string_view bytes) { return {std::string(bytes), true}; }
  static Param Int(int64_t v) { return {std::to_string(v), false}; }
  static Param Text(absl::string_view text) { return {std::string(text), false}; }
};

// Result: a statement's rows, read in binary format. Column types the store reads: bytea and
// text (Bytes), int8 (Int64), int4 (Int32), float8 (Float8), bool.
class Result {
 public:
  explicit Result(pg_result* result);
  Result(Result&&) noexcept;
  Result& operator=(Result&&) noexcept;
  ~Result();
  int rows() const;
  bool IsNull(int row, int col) const;
  absl::string_view Bytes(int row, int col) const;
  int64_t Int64(int row, int col) const;  // an int8 column
  int32_t Int32(int row, int col) const;  // an int4 column
  double Float8(int row, int col) const;  // a float8 column
  // affected: how many rows an INSERT, UPDATE or DELETE touched.
  int64_t affected() const;

 private:
  pg_result* result_;
};

// ConnectionTarget: where a connection string points, for messages (never the password).
struct ConnectionTarget {
  std::string host, port, dbname, user;
  std::string ToString() const;  // "user@host:port/dbname"
};

// ParseTarget parses a libpq connection string or URI. INVALID_ARGUMENT with libpq's message
// when it is malformed.
absl::StatusOr<ConnectionTarget> ParseTarget(const std::string& conninfo);

class Connection {
 public:
  // Open connects. UNAVAILABLE when the server cannot be reached, UNAUTHENTICATED when it
  // refuses the credentials, NOT_FOUND when the database does not exist, each with libpq's
  // message and the target (never the password).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& conninfo,
                                                          int connect_timeout_seconds);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Exec runs one statement with parameters ($1, $2, ...). `op` names it in errors.
  absl::StatusOr<Result> Exec(const std::string& sql, const std::vector<Param>& params,
                              absl::string_view op);
  // ExecSimple runs one or more statements without parameters (schema, BEGIN, COMMIT).
  absl::Status ExecSimple(const std::string& sql, absl::string_view op);

  // Healthy: the connection is up (libpq's CONNECTION_OK).
  bool Healthy() const;
  // Reset reconnects a broken connection. UNAVAILABLE when the server is still unreachable.
  absl::Status Reset();
  // InTransaction: a transaction is open (so the pool rolls it back before reuse).
  bool InTransaction() const;

  // Socket, ConsumeInput and NextNotification serve LISTEN: the socket to wait on, reading what
  // arrived (UNAVAILABLE when the connection broke), and the next notification's payload.
  int Socket() const;
  absl::Status ConsumeInput();
  bool NextNotification(std::string* payload);

  const ConnectionTarget& target() const { return target_; }

 private:
  Connection(pg_conn* conn, ConnectionTarget target) : conn_(conn), target_(std::move(target)) {}
  absl::Status Error(absl::string_view op, pg_result* result) const;
  pg_conn* conn_;
  ConnectionTarget target_;
};

// Transaction: BEGIN in the constructor's Begin, ROLLBACK in the destructor unless committed.
class Transaction {
 public:
  explicit Transaction(Connection* conn) : conn_(conn) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  // Begin starts the transaction; `mode` is appended to BEGIN (e.g. "ISOLATION LEVEL
  // REPEATABLE READ READ ONLY").
  absl::Status Begin(absl::string_view mode = "");
  absl::Status Commit();

 private:
  Connection* conn_;
  bool open_ = false;
};

}  // namespace retrace::store::internal::pg

#endif  // RETRACE_CORE_STORE_INTERNAL_PG_CONNECTION_H_
