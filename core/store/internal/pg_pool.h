// pg_pool.h — PostgresItemStore's connections for calls.
//
// Pool makes connections on demand up to its size and lends them out (Lease returns its
// connection when destroyed); a broken one is reset when it is next taken, so the store
// reconnects by itself after the server comes back, and one left in a transaction is rolled back.
//
// Thread-safety: Acquire and Add are safe from any thread; a Lease is one caller's.
//
//   RETRACE_ASSIGN_OR_RETURN(Pool::Lease conn, pool.Acquire());
//   RETRACE_ASSIGN_OR_RETURN(Result r, conn->Exec("SELECT 1", {}, "ping"));
#ifndef RETRACE_CORE_STORE_INTERNAL_PG_POOL_H_
#define RETRACE_CORE_STORE_INTERNAL_PG_POOL_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/store/internal/pg_connection.h"

namespace retrace::store::internal::pg {

// Pool: connections for calls, made on demand up to pool_size; a broken one is reset when it is
// next taken, so the store reconnects by itself after the server comes back.
class Pool {
 public:
  Pool(std::string conninfo, int size, int timeout)
      : conninfo_(std::move(conninfo)), size_(size), timeout_(timeout) {}

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (conn_ != nullptr) pool_->Return(std::move(conn_));
    }
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  void Add(std::unique_ptr<Connection> conn) {
    absl::MutexLock lock(&mu_);
    ++open_;
    idle_.push_back(std::move(conn));
  }

  absl::StatusOr<Lease> Acquire() {
    std::unique_ptr<Connection> conn;
    {
      absl::MutexLock lock(&mu_);
      auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !idle_.empty() || open_ < size_;
      };
      mu_.Await(absl::Condition(&available));
      if (!idle_.empty()) {
        conn = std::move(idle_.back());
        idle_.pop_back();
      } else {
        ++open_;
      }
    }
    if (conn == nullptr) {
      auto opened = Connection::Open(conninfo_, timeout_);
      if (!opened.ok()) {
        absl::MutexLock lock(&mu_);
        --open_;
        return opened.status();
      }
      conn = std::move(*opened);
    } else if (!conn->Healthy()) {
      if (absl::Status s = conn->Reset(); !s.ok()) {
        Return(std::move(conn));
        return s;
      }
    } else if (conn->InTransaction()) {
      (void)conn->ExecSimple("ROLLBACK", "roll back");
    }
    return Lease(this, std::move(conn));
  }

 private:
  void Return(std::unique_ptr<Connection> conn) {
    absl::MutexLock lock(&mu_);
    idle_.push_back(std::move(conn));
  }

  const std::string conninfo_;
  const int size_;
  const int timeout_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace retrace::store::internal::pg

#endif  // RETRACE_CORE_STORE_INTERNAL_PG_POOL_H_
