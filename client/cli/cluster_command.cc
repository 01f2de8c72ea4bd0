// `retrace cluster status`: the replicas that share the server's store, as they last recorded
// themselves there — their applied positions, lag and heartbeat (core/engine/replication.h).
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "cluster";

constexpr char kClusterUsage[] =
    R"(usage: retrace cluster status

Lists the replicas that share the server's store (--server may be any of them): each
replica's id and address, whether it is live (heartbeat within the server's
replication.replica_expiry_seconds), its last heartbeat, and per collection the store
position its indexes have applied, its lag behind the store's latest position and the
snapshot position it would resume from after a restart (- for none: it would rebuild).
Through a frontend of a sharded cluster, then its shard map: per group each replica's
address, its health now (SERVING, NOT_SERVING, UNREACHABLE), its replica id and its largest
lag over the collections. With --json, prints the ClusterStatus.
)";

std::string Ago(int64_t unix_ms) {
  const absl::Duration ago = absl::Now() - absl::FromUnixMillis(unix_ms);
  return absl::StrCat(absl::ToInt64Seconds(ago), " s ago");
}

}  // namespace

int RunClusterCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kClusterUsage);
  if (parsed->Has("help")) {
    context.out() << kClusterUsage;
    return kExitOk;
  }
  if (parsed->positional() != std::vector<std::string>{"status"}) {
    return context.UsageError(kCommand, "expected: cluster status", kClusterUsage);
  }
  v1::ClusterStatus status;
  grpc::Status rpc = context.client().GetClusterStatus(v1::GetClusterStatusRequest(), &status);
  if (!rpc.ok()) return context.RpcError(kCommand, rpc);
  if (context.json()) {
    context.out() << ToJson(status, /*multiline=*/true) << "\n";
    return kExitOk;
  }
  context.out() << "store " << status.store() << ", latest position " << status.last_position()
                << "\n";
  Table table{{"replica", "address", "live", "heartbeat", "collection", "applied", "lag",
               "resume"},
              {},
              {false, false, false, false, false, true, true, true},
              /*flexible_column=*/-1};
  for (const v1::ReplicaStatus& r : status.replicas()) {
    const std::vector<std::string> head = {r.replica(), r.address(), r.live() ? "yes" : "no",
                                           Ago(r.heartbeat_unix_ms())};
    if (r.collections().empty()) {
      std::vector<std::string> row = head;
      row.insert(row.end(), {"-", "-", "-", "-"});
      table.rows.push_back(row);
    }
    for (const v1::ReplicaCollectionStatus& c : r.collections()) {
      std::vector<std::string> row = head;
      row.insert(row.end(),
                 {c.collection(), absl::StrCat(c.applied_position()), absl::StrCat(c.lag()),
                  c.resume_position() < 0 ? "-" : absl::StrCat(c.resume_position())});
      table.rows.push_back(row);
    }
  }
  context.out() << RenderTable(table);
  if (!status.shard_groups().empty()) {
    // A frontend: its shard map, with each replica's health now and its applied positions (the
    // replica that records the same address above).
    std::map<std::string, const v1::ReplicaStatus*> by_address;
    for (const v1::ReplicaStatus& r : status.replicas()) by_address[r.address()] = &r;
    Table shards{{"group", "replica address", "health", "replica", "max lag"},
                 {},
                 {true, false, false, false, true},
                 /*flexible_column=*/2};
    for (const v1::ShardGroupStatus& g : status.shard_groups()) {
      for (const v1::ShardReplicaStatus& r : g.replicas()) {
        auto known = by_address.find(r.address());
        std::string replica = "-", lag = "-";
        if (known != by_address.end()) {
          replica = known->second->replica();
          int64_t most = 0;
          for (const v1::ReplicaCollectionStatus& c : known->second->collections()) {
            most = std::max(most, c.lag());
          }
          lag = absl::StrCat(most);
        }
        shards.rows.push_back({absl::StrCat(g.group()), r.address(), r.health(), replica, lag});
      }
    }
    context.out() << "\nshard map\n" << RenderTable(shards);
  }
  return kExitOk;
}

}  // namespace retrace::cli
