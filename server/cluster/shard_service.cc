#include "server/cluster/shard_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/filter_convert.h"
#include "server/status_mapping.h"

namespace retrace::server {

grpc::Status ShardServiceImpl::SearchSpaces(grpc::ServerContext* context,
                                            const v1::SearchSpacesRequest* request,
                                            v1::SearchSpacesResponse* response) {
  engine::Engine* engine = engine_->load();
  if (engine == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this shard server is still starting");
  }
  if (request->group() != group_.index || request->groups() != group_.count) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("this shard server serves group ", group_.index, " of ", group_.count,
                     ", not group ", request->group(), " of ", request->groups(),
                     ": the frontend's shard map and this server's differ"));
  }
  std::optional<filter::Filter> filter;
  if (request->has_filter()) {
    absl::StatusOr<filter::Filter> f = FilterFromProto(request->filter(), "filter");
    if (!f.ok()) return ToGrpcStatus(f.status());
    filter = *std::move(f);
  }
  std::vector<engine::SpaceQuery> queries;
  queries.reserve(request->queries_size());
  for (const v1::SpaceQuery& q : request->queries()) {
    engine::SpaceQuery& out = queries.emplace_back();
    out.space = q.space() == v1::SPACE_CAPTION ? engine::Space::kCaption : engine::Space::kImage;
    out.vector.assign(q.vector().begin(), q.vector().end());
    out.k = q.k();
    out.with_embeddings = q.with_embeddings();
  }
  engine::CallOptions call;
  call.deadline = absl::FromChrono(context->deadline());
  call.min_position = request->min_position();
  absl::StatusOr<engine::SpaceResult> result =
      engine->SearchSpaces(request->collection(), queries, filter, call);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_applied_position(result->applied_position);
  for (std::vector<engine::SpaceHit>& hits : result->hits) {
    v1::SpaceHits& out = *response->add_results();
    for (engine::SpaceHit& hit : hits) {
      v1::SpaceHit& h = *out.add_hits();
      h.set_id(std::move(hit.item.id));
      h.set_score(hit.score);
      h.set_caption(std::move(hit.item.caption));
      h.mutable_attributes()->insert(hit.item.attributes.begin(), hit.item.attributes.end());
      h.set_created_ms(hit.item.created_ms);
      h.set_updated_ms(hit.item.updated_ms);
      h.mutable_clip_image()->Add(hit.item.clip_image.begin(), hit.item.clip_image.end());
      h.mutable_caption_text()->Add(hit.item.caption_text.begin(), hit.item.caption_text.end());
      h.mutable_image_features()->Add(hit.item.image_features.begin(),
                                      hit.item.image_features.end());
    }
  }
  return grpc::Status::OK;
}

}  // namespace retrace::server
