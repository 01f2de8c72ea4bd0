// shard_map.h — the shard map file (retrace.v1.ShardMap, text format): loading, the rules a map
// must keep, a shard server's place in it, and a frontend's view that follows the file.
//
// Rules (ValidateShardMap): 1..kMaxShardGroups groups, each with 1..kMaxReplicasPerGroup
// replicas; every address is host:port and appears once in the whole map (an address in two
// groups would be a server with two owners). Errors name the entry: "groups[1].replicas[0]".
//
// ShardMapFile loads the map at start (an error stops the start) and, with Watch, checks the
// file every poll interval: a changed map that loads and validates replaces the current one; one
// that does not is logged and the old map stays in force.
//
// Thread-safety: functions are pure; ShardMapFile is safe for concurrent use.
//
//   RETRACE_ASSIGN_OR_RETURN(auto map, ShardMapFile::Open(path, log));
//   map->Watch(absl::Seconds(1));
//   std::shared_ptr<const v1::ShardMap> now = map->Current();
#ifndef RETRACE_SERVER_CLUSTER_SHARD_MAP_H_
#define RETRACE_SERVER_CLUSTER_SHARD_MAP_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "retrace/v1/config.pb.h"
#include "spdlog/logger.h"

namespace retrace::server {

// ValidateShardMap checks the rules above; INVALID_ARGUMENT naming the entry.
absl::Status ValidateShardMap(const v1::ShardMap& map);

// LoadShardMap reads and validates a map file; INVALID_ARGUMENT naming the file (and the entry
// or the parse error), NOT_FOUND when it cannot be read.
absl::StatusOr<v1::ShardMap> LoadShardMap(const std::string& path);

// GroupOf: the group whose replicas list `address`; NOT_FOUND naming the address otherwise.
absl::StatusOr<int> GroupOf(const v1::ShardMap& map, const std::string& address);

class ShardMapFile {
 public:
  static absl::StatusOr<std::unique_ptr<ShardMapFile>> Open(std::string path,
                                                            std::shared_ptr<spdlog::logger> log);
  ~ShardMapFile();  // stops watching
  ShardMapFile(const ShardMapFile&) = delete;
  ShardMapFile& operator=(const ShardMapFile&) = delete;

  // Watch starts checking the file every `poll` (once; later calls do nothing).
  void Watch(absl::Duration poll);
  // Reload reads the file now: OK when it holds the current map or a new valid one (which
  // becomes current); the error otherwise (logged; the old map stays).
  absl::Status Reload();
  std::shared_ptr<const v1::ShardMap> Current() const;

 private:
  ShardMapFile(std::string path, v1::ShardMap map, std::string text,
               std::shared_ptr<spdlog::logger> log);

  const std::string path_;
  const std::shared_ptr<spdlog::logger> log_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const v1::ShardMap> current_ ABSL_GUARDED_BY(mu_);
  std::string text_ ABSL_GUARDED_BY(mu_);    // the file's bytes that made current_
  std::string failed_ ABSL_GUARDED_BY(mu_);  // bytes last refused: logged once
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watcher_;
};

}  // namespace retrace::server

#endif  // RETRACE_SERVER_CLUSTER_SHARD_MAP_H_
