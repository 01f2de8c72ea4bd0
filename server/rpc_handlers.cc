#include "server/rpc_handlers.h"

#include <string>
#include <vector>

#include "core/common/status_macros.h"
#include "server/proto_convert.h"

namespace retrace::server {

absl::Status HandleCaption(engine::Engine& engine, const Principal&,
                           const engine::CallOptions& call, const v1::CaptionRequest& request,
                           v1::CaptionResponse* response) {
  std::vector<std::string> images(request.images().begin(), request.images().end());
  const models::CaptionOptions options = FromProto(request.options(), engine.options().caption);
  RETRACE_ASSIGN_OR_RETURN(std::vector<engine::CaptionResult> results,
                           engine.Caption(images, options, call));
  ToProto(results, response);
  return absl::OkStatus();
}

absl::Status HandleSearch(engine::Engine& engine, const Principal&,
                          const engine::CallOptions& call, const v1::SearchRequest& request,
                          v1::SearchResponse* response) {
  RETRACE_ASSIGN_OR_RETURN(engine::SearchQuery query, FromProto(request));
  engine::CallOptions options = call;
  options.min_position = request.min_position();
  RETRACE_ASSIGN_OR_RETURN(engine::SearchResult result,
                           engine.Search(request.collection(), query, options));
  ToProto(result, response);
  return absl::OkStatus();
}

absl::Status HandleDelete(engine::Engine& engine, const Principal&,
                          const engine::CallOptions& call, const v1::DeleteRequest& request,
                          v1::DeleteResponse* response) {
  std::vector<std::string> ids(request.ids().begin(), request.ids().end());
  RETRACE_ASSIGN_OR_RETURN(engine::WriteResult results,
                           engine.Delete(request.collection(), ids, call));
  ToProto(results, response);
  return absl::OkStatus();
}

absl::Status HandleGet(engine::Engine& engine, const Principal&, const engine::CallOptions& call,
                       const v1::GetRequest& request, v1::GetResponse* response) {
  std::vector<std::string> ids(request.ids().begin(), request.ids().end());
  engine::CallOptions options = call;
  options.min_position = request.min_position();
  RETRACE_ASSIGN_OR_RETURN(
      std::vector<engine::GetResult> results,
      engine.Get(request.collection(), ids,
                 engine::GetFields{request.include_embeddings(), request.include_thumbnails()},
                 options));
  ToProto(results, response);
  return absl::OkStatus();
}

absl::Status HandleList(engine::Engine& engine, const Principal&, const engine::CallOptions& call,
                        const v1::ListRequest& request, v1::ListResponse* response) {
  engine::CallOptions options = call;
  options.min_position = request.min_position();
  RETRACE_ASSIGN_OR_RETURN(
      engine::ListPage page,
      engine.List(request.collection(), request.cursor(), request.page_size(), std::nullopt,
                  engine::GetFields{request.include_embeddings(), request.include_thumbnails()},
                  options));
  ToProto(page, response);
  return absl::OkStatus();
}

absl::Status HandleCreateCollection(engine::Engine& engine, const Principal&,
                                    const engine::CallOptions&,
                                    const v1::CreateCollectionRequest& request,
                                    v1::Collection* response) {
  RETRACE_ASSIGN_OR_RETURN(engine::CollectionInfo info,
                           engine.CreateCollection(FromProto(request.collection())));
  ToProto(info, response);
  return absl::OkStatus();
}

absl::Status HandleListCollections(engine::Engine& engine, const Principal& who,
                                   const engine::CallOptions& call,
                                   const v1::ListCollectionsRequest& request,
                                   v1::ListCollectionsResponse* response) {
  engine::CallOptions options = call;
  options.min_position = request.min_position();
  RETRACE_ASSIGN_OR_RETURN(std::vector<engine::CollectionInfo> infos,
                           engine.ListCollections(options));
  for (const engine::CollectionInfo& info : infos) {
    if (TokenAuthorizer::MayUse(who, info.spec.name)) ToProto(info, response->add_collections());
  }
  return absl::OkStatus();
}

absl::Status HandleDescribeCollection(engine::Engine& engine, const Principal&,
                                      const engine::CallOptions& call,
                                      const v1::DescribeCollectionRequest& request,
                                      v1::Collection* response) {
  engine::CallOptions options = call;
  options.min_position = request.min_position();
  RETRACE_ASSIGN_OR_RETURN(engine::CollectionInfo info,
                           engine.DescribeCollection(request.name(), options));
  ToProto(info, response);
  return absl::OkStatus();
}

absl::Status HandleDropCollection(engine::Engine& engine, const Principal&,
                                  const engine::CallOptions&,
                                  const v1::DropCollectionRequest& request,
                                  v1::DropCollectionResponse* response) {
  RETRACE_ASSIGN_OR_RETURN(int64_t position, engine.DropCollection(request.name()));
  response->set_position(position);
  return absl::OkStatus();
}

absl::Status HandleGetClusterStatus(engine::Engine& engine, const Principal&,
                                    const engine::CallOptions&, const v1::GetClusterStatusRequest&,
                                    v1::ClusterStatus* response) {
  RETRACE_ASSIGN_OR_RETURN(engine::ClusterStatus status, engine.Cluster());
  ToProto(status, response);
  return absl::OkStatus();
}

absl::Status HandleIndex(engine::Engine& engine, const Principal&, const engine::CallOptions& call,
                         v1::wire::IndexRequestWire& request, v1::IndexResponse* response) {
  RETRACE_ASSIGN_OR_RETURN(engine::WriteResult results,
                           engine.Index(request.collection(), FromProto(request), call));
  ToProto(results, response);
  return absl::OkStatus();
}

}  // namespace retrace::server
