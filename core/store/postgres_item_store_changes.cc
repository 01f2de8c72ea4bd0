// PostgresItemStore's change feed: the position counter and its notifications, the feed
// followers page through, compaction of recorded deletions, and replicas' records.
#include <poll.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/store/internal/change_feed.h"
#include "core/store/internal/pg_connection.h"
#include "core/store/internal/pg_pool.h"
#include "core/store/internal/pg_rows.h"
#include "core/store/internal/record_codec.h"
#include "core/store/postgres_item_store.h"

namespace retrace::store {

using internal::Quote;
using internal::pg::Connection;
using internal::pg::kChannel;
using internal::pg::kItemColumns;
using internal::pg::kNowMillis;
using internal::pg::Param;
using internal::pg::ReadItem;
using internal::pg::Result;
using internal::pg::Transaction;

void PostgresItemStore::Saw(int64_t position) const {
  absl::MutexLock lock(&seen_mu_);
  last_seen_ = std::max(last_seen_, position);
}

// Listen keeps one connection on LISTEN retrace_changes, and polls the counter every
// poll_interval besides (and reconnects, at that pace, when the connection is lost).
void PostgresItemStore::Listen() {
  std::unique_ptr<Connection> conn;
  absl::Time next_poll = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&seen_mu_);
      if (stopping_) return;
    }
    if (conn == nullptr || !conn->Healthy()) {
      conn.reset();
      auto opened = Connection::Open(options_.conninfo, options_.connect_timeout_seconds);
      if (opened.ok() && (*opened)->ExecSimple(absl::StrCat("LISTEN ", kChannel), "listen").ok()) {
        conn = std::move(*opened);
      }
    }
    if (conn != nullptr) {
      // Wait for a notification, up to the poll interval (in slices, to notice stopping_).
      pollfd fd{conn->Socket(), POLLIN, 0};
      const int ms = static_cast<int>(
          std::min<int64_t>(absl::ToInt64Milliseconds(options_.poll_interval), 200));
      if (::poll(&fd, 1, ms) > 0 && conn->ConsumeInput().ok()) {
        std::string payload;
        while (conn->NextNotification(&payload)) {
          int64_t position = 0;
          if (absl::SimpleAtoi(payload, &position)) Saw(position);
        }
      }
    } else {
      absl::SleepFor(absl::Milliseconds(200));
    }
    if (absl::Now() >= next_poll) {
      next_poll = absl::Now() + options_.poll_interval;
      if (auto last = LastPosition(); last.ok()) Saw(*last);
    }
  }
}

absl::StatusOr<int64_t> PostgresItemStore::WaitForChange(int64_t after,
                                                         absl::Duration timeout) const {
  absl::MutexLock lock(&seen_mu_);
  auto changed = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(seen_mu_) {
    return last_seen_ > after || stopping_;
  };
  seen_mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return last_seen_;
}

absl::StatusOr<int64_t> PostgresItemStore::LastPosition() const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  RETRACE_ASSIGN_OR_RETURN(
      Result r,
      conn->Exec("SELECT value FROM retrace_meta WHERE key = 'last_position'", {}, "read position"));
  return r.Int64(0, 0);
}

absl::StatusOr<ChangePage> PostgresItemStore::ReadChanges(const std::string& collection,
                                                          int64_t created_position,
                                                          const ChangeCursor& cursor,
                                                          int limit) const {
  if (limit < 1) return absl::InvalidArgumentError("ReadChanges: limit must be at least 1");
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  ChangePage page;
  {
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec("SELECT created_position, compacted_position, "
                             "(SELECT value FROM retrace_meta WHERE key = 'last_position') "
                             "FROM collections WHERE name = $1",
                             {Param::Bytes(collection)}, "look up collection"));
    if (r.rows() == 0) {
      return absl::NotFoundError(absl::StrCat("collection ", Quote(collection), " not found"));
    }
    RETRACE_RETURN_IF_ERROR(internal::CheckFeedState(collection, created_position,
                                                     cursor.position, r.Int64(0, 0),
                                                     r.Int64(0, 1)));
    page.last_position = r.Int64(0, 2);
  }
  std::vector<Change> puts, deletions;
  for (bool is_put : {true, false}) {
    std::vector<Change>& out = is_put ? puts : deletions;
    const std::string select =
        is_put ? absl::StrCat("SELECT position, ", kItemColumns, " FROM items")
               : std::string("SELECT position, id FROM deletions");
    // $1 collection, $2 the cursor's position, $3 the limit, $4 the cursor's id (first query).
    for (const char* rest : {"position = $2 AND id > $4 ORDER BY id",
                             "position > $2 ORDER BY position, id"}) {
      if (out.size() >= static_cast<size_t>(limit)) break;
      const bool rest_of_position = absl::string_view(rest).find("$4") != absl::string_view::npos;
      if (rest_of_position && !cursor.id.has_value()) continue;
      std::vector<Param> params = {Param::Bytes(collection), Param::Int(cursor.position),
                                   Param::Int(limit - static_cast<int64_t>(out.size()))};
      if (rest_of_position) params.push_back(Param::Bytes(*cursor.id));
      RETRACE_ASSIGN_OR_RETURN(
          Result r, conn->Exec(absl::StrCat(select, " WHERE collection = $1 AND ", rest,
                                            " LIMIT $3"),
                               params, absl::StrCat("read the changes of ", Quote(collection))));
      for (int row = 0; row < r.rows(); ++row) {
        Change& change = out.emplace_back();
        change.position = r.Int64(row, 0);
        if (is_put) {
          change.kind = Change::Kind::kPut;
          RETRACE_ASSIGN_OR_RETURN(change.item, ReadItem(r, row, 1, true, collection));
          change.id = change.item.id;
        } else {
          change.kind = Change::Kind::kDelete;
          change.id = std::string(r.Bytes(row, 1));
        }
      }
    }
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  Saw(page.last_position);
  page.more = puts.size() >= static_cast<size_t>(limit) ||
              deletions.size() >= static_cast<size_t>(limit);
  page.changes = internal::MergeChanges(std::move(puts), std::move(deletions), limit);
  page.next = page.changes.empty()
                  ? cursor
                  : ChangeCursor{page.changes.back().position,
                                 std::optional<std::string>(page.changes.back().id)};
  return page;
}

absl::Status PostgresItemStore::CompactDeletions(const std::string& collection, int64_t up_to) {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin());
  RETRACE_RETURN_IF_ERROR(CheckCollection(*conn, collection));
  RETRACE_ASSIGN_OR_RETURN(
      Result last, conn->Exec("SELECT value FROM retrace_meta WHERE key = 'last_position'", {},
                              "read position"));
  if (up_to > last.Int64(0, 0)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot compact the deletions of ",
                                                   Quote(collection), " up to position ", up_to,
                                                   ": the latest is ", last.Int64(0, 0)));
  }
  RETRACE_RETURN_IF_ERROR(
      conn->Exec("DELETE FROM deletions WHERE collection = $1 AND position <= $2",
                 {Param::Bytes(collection), Param::Int(up_to)}, "compact deletions")
          .status());
  RETRACE_RETURN_IF_ERROR(
      conn->Exec("UPDATE collections SET compacted_position = greatest(compacted_position, $2) "
                 "WHERE name = $1",
                 {Param::Bytes(collection), Param::Int(up_to)}, "record compaction")
          .status());
  return txn.Commit();
}

absl::Status PostgresItemStore::ReportReplica(const ReplicaRecord& replica) {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin());
  RETRACE_RETURN_IF_ERROR(
      conn->Exec(absl::StrCat("INSERT INTO replicas(replica, address, started_at, heartbeat_at) "
                              "VALUES ($1, $2, $3, ", kNowMillis, ") ON CONFLICT (replica) DO "
                              "UPDATE SET address = excluded.address, "
                              "started_at = excluded.started_at, "
                              "heartbeat_at = excluded.heartbeat_at"),
                 {Param::Bytes(replica.replica), Param::Bytes(replica.address),
                  Param::Int(absl::ToUnixMillis(replica.started))},
                 "report replica")
          .status());
  RETRACE_RETURN_IF_ERROR(conn->Exec("DELETE FROM replica_positions WHERE replica = $1",
                                     {Param::Bytes(replica.replica)}, "clear replica positions")
                              .status());
  if (!replica.positions.empty()) {
    std::vector<Param> params = {Param::Bytes(replica.replica)};
    std::string values;
    for (const ReplicaCollectionPosition& p : replica.positions) {
      const size_t k = params.size() + 1;
      absl::StrAppend(&values, values.empty() ? "" : ", ", "($1, $", k, ", $", k + 1, ", $",
                      k + 2, ", $", k + 3, ")");
      params.push_back(Param::Bytes(p.collection));
      params.push_back(Param::Int(p.created_position));
      params.push_back(Param::Int(p.applied));
      params.push_back(Param::Int(p.resume));
    }
    RETRACE_RETURN_IF_ERROR(
        conn->Exec(absl::StrCat("INSERT INTO replica_positions(replica, collection, "
                                "created_position, applied, resume) VALUES ",
                                values),
                   params, "record replica positions")
            .status());
  }
  return txn.Commit();
}

absl::StatusOr<std::vector<ReplicaRecord>> PostgresItemStore::ListReplicas() const {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  Transaction txn(&*conn);
  RETRACE_RETURN_IF_ERROR(txn.Begin("ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  std::vector<ReplicaRecord> replicas;
  {
    RETRACE_ASSIGN_OR_RETURN(
        Result r, conn->Exec("SELECT replica, address, started_at, heartbeat_at FROM replicas "
                             "ORDER BY replica",
                             {}, "list replicas"));
    for (int row = 0; row < r.rows(); ++row) {
      ReplicaRecord& rec = replicas.emplace_back();
      rec.replica = std::string(r.Bytes(row, 0));
      rec.address = std::string(r.Bytes(row, 1));
      rec.started = absl::FromUnixMillis(r.Int64(row, 2));
      rec.heartbeat = absl::FromUnixMillis(r.Int64(row, 3));
    }
  }
  RETRACE_ASSIGN_OR_RETURN(
      Result r, conn->Exec("SELECT replica, collection, created_position, applied, resume "
                           "FROM replica_positions ORDER BY replica, collection",
                           {}, "list replica positions"));
  for (int row = 0; row < r.rows(); ++row) {
    const absl::string_view replica = r.Bytes(row, 0);
    for (ReplicaRecord& rec : replicas) {
      if (rec.replica != replica) continue;
      ReplicaCollectionPosition& p = rec.positions.emplace_back();
      p.collection = std::string(r.Bytes(row, 1));
      p.created_position = r.Int64(row, 2);
      p.applied = r.Int64(row, 3);
      p.resume = r.Int64(row, 4);
    }
  }
  RETRACE_RETURN_IF_ERROR(txn.Commit());
  return replicas;
}

absl::Status PostgresItemStore::ForgetReplica(const std::string& replica) {
  RETRACE_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  RETRACE_ASSIGN_OR_RETURN(Result r, conn->Exec("DELETE FROM replicas WHERE replica = $1",
                                                {Param::Bytes(replica)}, "forget replica"));
  if (r.affected() == 0) {
    return absl::NotFoundError(absl::StrCat("replica ", Quote(replica), " not found"));
  }
  return absl::OkStatus();
}

}  // namespace retrace::store
