#include "server/cluster/shard_map.h"

#include <google/protobuf/text_format.h>

#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/engine/defaults.h"

namespace retrace::server {
namespace {

namespace d = engine::defaults;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("shard map ", path, ": cannot be read"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<v1::ShardMap> Parse(const std::string& path, const std::string& text) {
  v1::ShardMap map;
  if (!google::protobuf::TextFormat::ParseFromString(text, &map)) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard map ", path, ": not a retrace.v1.ShardMap in text format"));
  }
  if (absl::Status s = ValidateShardMap(map); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("shard map ", path, ": ", s.message()));
  }
  return map;
}

bool IsHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  return colon != std::string::npos && colon > 0 &&
         absl::SimpleAtoi(address.substr(colon + 1), &port) && port > 0 && port < 65536;
}

}  // namespace

absl::Status ValidateShardMap(const v1::ShardMap& map) {
  if (map.groups_size() < 1 || map.groups_size() > d::kMaxShardGroups) {
    return absl::InvalidArgumentError(
        absl::StrCat("groups: ", map.groups_size(), " groups, not 1..", d::kMaxShardGroups));
  }
  std::map<std::string, std::string> owner;  // address -> the entry that lists it
  for (int g = 0; g < map.groups_size(); ++g) {
    const v1::ShardGroup& group = map.groups(g);
    if (group.replicas_size() < 1 || group.replicas_size() > d::kMaxReplicasPerGroup) {
      return absl::InvalidArgumentError(
          absl::StrCat("groups[", g, "].replicas: ", group.replicas_size(), " replicas, not 1..",
                       d::kMaxReplicasPerGroup));
    }
    for (int r = 0; r < group.replicas_size(); ++r) {
      const std::string entry = absl::StrCat("groups[", g, "].replicas[", r, "]");
      const std::string& address = group.replicas(r);
      if (!IsHostPort(address)) {
        return absl::InvalidArgumentError(
            absl::StrCat(entry, ": '", address, "' is not host:port"));
      }
      auto [it, fresh] = owner.emplace(address, entry);
      if (!fresh) {
        return absl::InvalidArgumentError(absl::StrCat(entry, ": '", address,
                                                       "' is listed already as ", it->second,
                                                       "; a replica belongs to one group, once"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ShardMap> LoadShardMap(const std::string& path) {
  RETRACE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return Parse(path, text);
}

absl::StatusOr<int> GroupOf(const v1::ShardMap& map, const std::string& address) {
  for (int g = 0; g < map.groups_size(); ++g) {
    for (const std::string& replica : map.groups(g).replicas()) {
      if (replica == address) return g;
    }
  }
  return absl::NotFoundError(
      absl::StrCat("the shard map lists no replica '", address,
                   "': give this server's address as the map writes it (--advertise)"));
}

absl::StatusOr<std::unique_ptr<ShardMapFile>> ShardMapFile::Open(
    std::string path, std::shared_ptr<spdlog::logger> log) {
  RETRACE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  RETRACE_ASSIGN_OR_RETURN(v1::ShardMap map, Parse(path, text));
  return std::unique_ptr<ShardMapFile>(
      new ShardMapFile(std::move(path), std::move(map), std::move(text), std::move(log)));
}

ShardMapFile::ShardMapFile(std::string path, v1::ShardMap map, std::string text,
                           std::shared_ptr<spdlog::logger> log)
    : path_(std::move(path)),
      log_(std::move(log)),
      current_(std::make_shared<const v1::ShardMap>(std::move(map))),
      text_(std::move(text)) {}

ShardMapFile::~ShardMapFile() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (watcher_.joinable()) watcher_.join();
}

void ShardMapFile::Watch(absl::Duration poll) {
  if (watcher_.joinable()) return;
  watcher_ = std::thread([this, poll] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
        if (mu_.AwaitWithTimeout(absl::Condition(&stopping), poll)) return;
      }
      Reload().IgnoreError();  // logged there
    }
  });
}

absl::Status ShardMapFile::Reload() {
  absl::StatusOr<std::string> text = ReadFile(path_);
  {
    absl::MutexLock lock(&mu_);
    if (text.ok() && *text == text_) return absl::OkStatus();
  }
  absl::StatusOr<v1::ShardMap> map =
      text.ok() ? Parse(path_, *text) : absl::StatusOr<v1::ShardMap>(text.status());
  absl::MutexLock lock(&mu_);
  if (!map.ok()) {
    // Logged once per refused content (or read error), not at every poll.
    const std::string seen = text.ok() ? *text : map.status().ToString();
    if (failed_ != seen) {
      log_->error("{}; the shard map in force stays ({} groups)", map.status().ToString(),
                  current_->groups_size());
    }
    failed_ = seen;
    return map.status();
  }
  current_ = std::make_shared<const v1::ShardMap>(*std::move(map));
  text_ = *std::move(text);
  failed_.clear();
  log_->info("shard map {} reloaded: {} groups", path_, current_->groups_size());
  return absl::OkStatus();
}

std::shared_ptr<const v1::ShardMap> ShardMapFile::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

}  // namespace retrace::server
