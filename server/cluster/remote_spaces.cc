#include "server/cluster/remote_spaces.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/engine/defaults.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/filter_convert.h"

namespace retrace::server {
namespace {

// GroupCall: one group's part of a call, tried on its replicas in turn (from gRPC's callback
// threads); `done` is set once it answered or ran out of replicas.
struct GroupCall {
  int group = 0;
  std::vector<std::string> replicas;  // in the order to try
  size_t tried = 0;
  // One per attempt, kept until the call ends (a context must outlive its RPC's callback).
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  v1::SearchSpacesResponse response;
  bool answered = false;
  std::vector<std::string> errors;  // per failed attempt: "address: CODE: message"
  bool invalid = false;             // the request's fault: not retried, not partial
  grpc::Status last;
};

std::chrono::system_clock::time_point ToChrono(absl::Time t) { return absl::ToChronoTime(t); }

engine::SpaceHit FromProto(v1::SpaceHit& hit) {
  engine::SpaceHit out;
  out.score = hit.score();
  engine::ItemRecord& item = out.item;
  item.id = std::move(*hit.mutable_id());
  item.caption = std::move(*hit.mutable_caption());
  item.attributes.insert(hit.attributes().begin(), hit.attributes().end());
  item.created_ms = hit.created_ms();
  item.updated_ms = hit.updated_ms();
  item.clip_image.assign(hit.clip_image().begin(), hit.clip_image().end());
  item.caption_text.assign(hit.caption_text().begin(), hit.caption_text().end());
  item.image_features.assign(hit.image_features().begin(), hit.image_features().end());
  return out;
}

// ShardsOf: the collection's shards that group g of `groups` holds (engine::ShardGroup).
std::vector<int> ShardsOf(int group, int groups, int shards) {
  std::vector<int> out;
  for (int s = group; s < shards; s += groups) out.push_back(s);
  return out;
}

}  // namespace

RemoteSpaces::RemoteSpaces(const ShardMapFile* map, CallRecorder record)
    : map_(map), record_(std::move(record)) {}

std::shared_ptr<grpc::Channel> RemoteSpaces::Channel(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<grpc::Channel>& channel = channels_[address];
  if (channel == nullptr) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, engine::defaults::kShardReconnectBackoffMaxMs);
    args.SetMaxReceiveMessageSize(-1);  // bounded by the shard server's own send limit
    channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  return channel;
}

v1::ShardService::Stub* RemoteSpaces::Stub(const std::string& address) {
  std::shared_ptr<grpc::Channel> channel = Channel(address);
  absl::MutexLock lock(&mu_);
  std::unique_ptr<v1::ShardService::Stub>& stub = stubs_[address];
  if (stub == nullptr) stub = v1::ShardService::NewStub(channel);
  return stub.get();
}

std::vector<engine::ShardGroupStatus> RemoteSpaces::Groups(absl::Time deadline) {
  const std::shared_ptr<const v1::ShardMap> map = map_->Current();
  struct Probe {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    std::unique_ptr<grpc::health::v1::Health::Stub> stub;
    std::string health;
  };
  std::vector<engine::ShardGroupStatus> groups(map->groups_size());
  std::vector<std::unique_ptr<Probe>> probes;
  absl::Mutex mu;
  size_t pending = 0;
  for (int g = 0; g < map->groups_size(); ++g) {
    groups[g].group = g;
    for (const std::string& address : map->groups(g).replicas()) {
      groups[g].replicas.push_back({address, ""});
      Probe& p = *probes.emplace_back(std::make_unique<Probe>());
      p.stub = grpc::health::v1::Health::NewStub(Channel(address));
      p.context.set_deadline(absl::ToChronoTime(deadline));
      {
        absl::MutexLock lock(&mu);
        ++pending;
      }
      Probe* probe = &p;
      p.stub->async()->Check(
          &p.context, &p.request, &p.response, [&mu, &pending, probe](grpc::Status status) {
            probe->health = status.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                                              probe->response.status())
                                        : absl::StrCat("UNREACHABLE: ", status.error_message());
            absl::MutexLock lock(&mu);
            --pending;
          });
    }
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](size_t* p) { return *p == 0; }, &pending));
  size_t next = 0;
  for (engine::ShardGroupStatus& g : groups) {
    for (engine::ShardGroupStatus::Replica& r : g.replicas) r.health = probes[next++]->health;
  }
  return groups;
}

absl::StatusOr<engine::SpaceResult> RemoteSpaces::Search(
    const engine::LiveCollection& collection, const std::vector<engine::SpaceQuery>& queries,
    const std::optional<filter::Filter>& filter, const engine::CallOptions& call,
    bool allow_partial) {
  const std::shared_ptr<const v1::ShardMap> map = map_->Current();
  const int groups = map->groups_size();
  const int shards = collection.record().shards;

  v1::SearchSpacesRequest request;
  request.set_collection(collection.name());
  request.set_groups(groups);
  request.set_min_position(call.min_position);
  if (filter.has_value()) FilterToProto(*filter, request.mutable_filter());
  for (const engine::SpaceQuery& q : queries) {
    v1::SpaceQuery& out = *request.add_queries();
    out.set_space(q.space == engine::Space::kCaption ? v1::SPACE_CAPTION : v1::SPACE_IMAGE);
    out.mutable_vector()->Add(q.vector.begin(), q.vector.end());
    out.set_k(q.k);
    out.set_with_embeddings(q.with_embeddings);
  }

  // Groups that hold none of the collection's shards (more groups than shards) are not asked.
  std::vector<GroupCall> calls;
  const uint64_t turn = rotation_.fetch_add(1, std::memory_order_relaxed);
  for (int g = 0; g < std::min(groups, shards); ++g) {
    GroupCall& c = calls.emplace_back();
    c.group = g;
    const auto& replicas = map->groups(g).replicas();
    const size_t n = static_cast<size_t>(replicas.size());
    for (size_t i = 0; i < n; ++i) c.replicas.push_back(replicas[(turn + i) % n]);
  }

  absl::Mutex mu;
  size_t pending = calls.size();
  std::vector<v1::SearchSpacesRequest> requests(calls.size(), request);
  // Attempt sends group call c to its next replica; its callback tries the next one on failure.
  std::function<void(GroupCall&)> attempt = [&](GroupCall& c) {
    const v1::SearchSpacesRequest& r = requests[&c - calls.data()];
    const absl::Time now = absl::Now();
    const size_t left = c.replicas.size() - c.tried;
    // An equal share of the time left for each replica not yet tried.
    const absl::Time until = call.deadline == absl::InfiniteFuture()
                                 ? absl::InfiniteFuture()
                                 : now + (call.deadline - now) / static_cast<int64_t>(left);
    grpc::ClientContext* context =
        c.contexts.emplace_back(std::make_unique<grpc::ClientContext>()).get();
    if (until != absl::InfiniteFuture()) context->set_deadline(ToChrono(until));
    const std::string address = c.replicas[c.tried++];
    c.response.Clear();
    GroupCall* group = &c;
    const absl::Time started = absl::Now();
    Stub(address)->async()->SearchSpaces(
        context, &r, &c.response, [&, address, group, started](grpc::Status status) {
          if (record_) {
            record_(group->group, address, status.error_code(),
                    absl::ToDoubleSeconds(absl::Now() - started));
          }
          if (status.ok()) {
            group->answered = true;
          } else {
            group->last = status;
            group->errors.push_back(absl::StrCat(
                address, ": ",
                absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())), ": ",
                status.error_message()));
            group->invalid = status.error_code() == grpc::StatusCode::INVALID_ARGUMENT;
            if (!group->invalid && group->tried < group->replicas.size() &&
                absl::Now() < call.deadline) {
              attempt(*group);  // the next replica of the group
              return;
            }
          }
          absl::MutexLock lock(&mu);
          --pending;
        });
  };
  for (GroupCall& c : calls) {
    requests[&c - calls.data()].set_group(c.group);
    attempt(c);
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](size_t* p) { return *p == 0; }, &pending));
  }

  engine::SpaceResult result;
  result.hits.resize(queries.size());
  result.applied_position = -1;
  std::vector<std::string> failed;
  for (GroupCall& c : calls) {
    if (c.invalid) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard group ", c.group, ": ", c.last.error_message()));
    }
    if (!c.answered) {
      const std::vector<int> lost = ShardsOf(c.group, groups, shards);
      failed.push_back(absl::StrCat("group ", c.group, " (shards ", absl::StrJoin(lost, ", "),
                                    "): ", absl::StrJoin(c.errors, "; ")));
      result.missing_shards.insert(result.missing_shards.end(), lost.begin(), lost.end());
      continue;
    }
    if (c.response.results_size() != static_cast<int>(queries.size())) {
      return absl::InternalError(absl::StrCat("shard group ", c.group, " answered ",
                                              c.response.results_size(), " results for ",
                                              queries.size(), " queries"));
    }
    const int64_t applied = c.response.applied_position();
    result.applied_position =
        result.applied_position < 0 ? applied : std::min(result.applied_position, applied);
    for (size_t q = 0; q < queries.size(); ++q) {
      for (v1::SpaceHit& hit : *c.response.mutable_results(static_cast<int>(q))->mutable_hits()) {
        result.hits[q].push_back(FromProto(hit));
      }
    }
  }
  if (!failed.empty() && !allow_partial) {
    return absl::UnavailableError(absl::StrCat(
        "collection '", collection.name(), "': shards could not be searched: ",
        absl::StrJoin(failed, " | "), " (set allow_partial for an answer from the other shards)"));
  }
  std::sort(result.missing_shards.begin(), result.missing_shards.end());
  if (result.applied_position < 0) result.applied_position = 0;
  for (size_t q = 0; q < queries.size(); ++q) {
    std::vector<engine::SpaceHit>& hits = result.hits[q];
    std::sort(hits.begin(), hits.end(), [](const engine::SpaceHit& a, const engine::SpaceHit& b) {
      return a.score != b.score ? a.score > b.score : a.item.id < b.item.id;
    });
    if (hits.size() > static_cast<size_t>(queries[q].k)) hits.resize(queries[q].k);
  }
  return result;
}

}  // namespace retrace::server
