// shard_service.h — a shard server's retrace.v1.ShardService: a frontend's SearchSpaces answered
// from this process's indexes of its shard group (engine::Engine::SearchSpaces).
//
// A request for another group than this server's (or from a map with another number of groups)
// is FAILED_PRECONDITION: the frontend's map and this server's differ, and answering would
// return another group's share as this one's. The frontend then tries another replica.
//
// Thread-safety: safe for concurrent use (gRPC's sync server threads call it).
//
//   ShardServiceImpl shards(&ready_engine, group);
//   builder.RegisterService(&shards);
#ifndef RETRACE_SERVER_CLUSTER_SHARD_SERVICE_H_
#define RETRACE_SERVER_CLUSTER_SHARD_SERVICE_H_

#include <atomic>

#include "core/engine/engine.h"
#include "retrace/v1/shard.grpc.pb.h"

namespace retrace::server {

class ShardServiceImpl final : public v1::ShardService::Service {
 public:
  // `engine` is null until the engine is open (UNAVAILABLE meanwhile); not owned.
  ShardServiceImpl(const std::atomic<engine::Engine*>* engine, engine::ShardGroup group)
      : engine_(engine), group_(group) {}

  grpc::Status SearchSpaces(grpc::ServerContext* context, const v1::SearchSpacesRequest* request,
                            v1::SearchSpacesResponse* response) override;

 private:
  const std::atomic<engine::Engine*>* const engine_;
  const engine::ShardGroup group_;
};

}  // namespace retrace::server

#endif  // RETRACE_SERVER_CLUSTER_SHARD_SERVICE_H_
