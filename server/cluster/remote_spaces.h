// remote_spaces.h — a frontend's SpaceSearcher: a call's vector searches scattered to one
// replica of every shard group of the shard map, at once, and merged exactly.
//
// Exact merge: each group answers every query's top k over its shards (ties by id ascending),
// so the top k of the union, by score and then id, is what one process holding every shard
// answers (core/index/sharded_index.h merges its shards the same way).
//
// Failover: a group's replicas are tried in turn, starting at a rotating one (spreading load);
// each attempt gets an equal share of what is left of the call's deadline, so a replica that
// hangs leaves time for the next. An answer of INVALID_ARGUMENT is the request's fault and is
// not retried. A group none of whose replicas answers fails the call UNAVAILABLE naming its
// shards, or with allow_partial is left out and its shards listed in missing_shards. Channels
// are kept per address and reconnect within kShardReconnectBackoffMaxMs of a replica's return.
//
// Thread-safety: safe for concurrent use.
//
//   auto spaces = std::make_shared<RemoteSpaces>(map_file.get(), record_in_metrics);
//   engine_options.remote_spaces = spaces;
#ifndef RETRACE_SERVER_CLUSTER_REMOTE_SPACES_H_
#define RETRACE_SERVER_CLUSTER_REMOTE_SPACES_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/engine/space_search.h"
#include "retrace/v1/shard.grpc.pb.h"
#include "server/cluster/shard_map.h"

namespace retrace::server {

class RemoteSpaces : public engine::SpaceSearcher {
 public:
  // Told of every attempt (group, replica address, code, seconds), for /metrics; may be empty.
  using CallRecorder =
      std::function<void(int group, const std::string& replica, grpc::StatusCode, double)>;
  // `map` is not owned and must outlive this object.
  RemoteSpaces(const ShardMapFile* map, CallRecorder record);

  absl::StatusOr<engine::SpaceResult> Search(const engine::LiveCollection& collection,
                                             const std::vector<engine::SpaceQuery>& queries,
                                             const std::optional<filter::Filter>& filter,
                                             const engine::CallOptions& call,
                                             bool allow_partial) override;

  // Groups: the shard map, each replica asked grpc.health.v1 at once.
  std::vector<engine::ShardGroupStatus> Groups(absl::Time deadline) override;

 private:
  // Channel: the one channel to `address` (its stubs share it), made on first use.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address);
  v1::ShardService::Stub* Stub(const std::string& address);

  const ShardMapFile* const map_;
  const CallRecorder record_;
  std::atomic<uint64_t> rotation_{0};
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<v1::ShardService::Stub>> stubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retrace::server

#endif  // RETRACE_SERVER_CLUSTER_REMOTE_SPACES_H_
