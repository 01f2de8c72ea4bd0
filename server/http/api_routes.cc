#include "server/http/api_routes.h"

namespace retrace::http {

const std::vector<RouteDoc>& ApiRoutes() {
  static const std::vector<RouteDoc> routes = {
      {RouteId::kPage, "GET", "/", nullptr, "The web page: search a collection and audit its hits.",
       nullptr, nullptr, BodyKind::kNone, nullptr, false},
      {RouteId::kPageAsset, "GET", "/ui/{file}", nullptr,
       "The web page's scripts and styles (embedded in the server).", nullptr, nullptr,
       BodyKind::kNone, nullptr, false},
      {RouteId::kOpenApi, "GET", "/v1/openapi.json", nullptr, "This document.", nullptr, nullptr,
       BodyKind::kNone, nullptr, false},
      {RouteId::kHealth, "GET", "/v1/health", nullptr,
       "SERVING once the models are warm and the collections caught up with the store "
       "(as grpc.health.v1); 503 NOT_SERVING before. Needs no token.",
       nullptr, nullptr, BodyKind::kNone, nullptr, false},
      {RouteId::kListCollections, "GET", "/v1/collections", "ListCollections",
       "The collections the token may use, with their counts.", "retrace.v1.ListCollectionsRequest",
       "retrace.v1.ListCollectionsResponse", BodyKind::kNone, nullptr, true},
      {RouteId::kCreateCollection, "POST", "/v1/collections", "CreateCollection",
       "Creates a collection (scope admin).", "retrace.v1.CreateCollectionRequest",
       "retrace.v1.Collection", BodyKind::kJson, nullptr, false},
      {RouteId::kDescribeCollection, "GET", "/v1/collections/{name}", "DescribeCollection",
       "One collection and its counts.", "retrace.v1.DescribeCollectionRequest",
       "retrace.v1.Collection", BodyKind::kNone, nullptr, true},
      {RouteId::kDropCollection, "DELETE", "/v1/collections/{name}", "DropCollection",
       "Drops a collection and its items (scope admin).", "retrace.v1.DropCollectionRequest",
       "retrace.v1.DropCollectionResponse", BodyKind::kNone, nullptr, false},
      {RouteId::kCaption, "POST", "/v1/caption", "Caption",
       "Captions images: JSON with base64 images, or multipart files named `images` (and an "
       "optional `request` part of JSON for the options).",
       "retrace.v1.CaptionRequest", "retrace.v1.CaptionResponse", BodyKind::kJsonOrMultipart,
       "images", false},
      {RouteId::kIndex, "POST", "/v1/collections/{name}/index", "Index",
       "Indexes items: JSON Lines in, one IndexRequest per line (its collection may be left "
       "out); JSON Lines out, one IndexResponse per request line, each written once its items "
       "are stored. An error after the first line ends the answer with a line {\"error\": {...}}; "
       "the lines before it stay stored.",
       "retrace.v1.IndexRequest", "retrace.v1.IndexResponse", BodyKind::kJsonLines, nullptr,
       false},
      {RouteId::kSearch, "POST", "/v1/collections/{name}/search", "Search",
       "Searches a collection: JSON (the image as base64, or text, or an embedding), or "
       "multipart with the query image as the file `image` and a `request` part of JSON for the "
       "other fields.",
       "retrace.v1.SearchRequest", "retrace.v1.SearchResponse", BodyKind::kJsonOrMultipart,
       "image", false},
      {RouteId::kGet, "POST", "/v1/collections/{name}/get", "Get", "Stored items by id.",
       "retrace.v1.GetRequest", "retrace.v1.GetResponse", BodyKind::kJson, nullptr, false},
      {RouteId::kDelete, "POST", "/v1/collections/{name}/delete", "Delete",
       "Deletes items by id (scope index).", "retrace.v1.DeleteRequest",
       "retrace.v1.DeleteResponse", BodyKind::kJson, nullptr, false},
      {RouteId::kClusterStatus, "GET", "/v1/cluster", "GetClusterStatus",
       "The replicas that share this server's store and how far each has applied it.",
       "retrace.v1.GetClusterStatusRequest", "retrace.v1.ClusterStatus", BodyKind::kNone, nullptr,
       false},
  };
  return routes;
}

}  // namespace retrace::http
