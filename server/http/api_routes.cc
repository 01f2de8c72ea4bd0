#include "server/http/api_routes.h"

namespace retrace::http {

const std::vector<RouteDoc>& ApiRoutes() {
  static const std::vector<RouteDoc> routes = {
      {RouteId::kPage, "GET", "/", nullptr, "The web page: search a collection and audit its hits.",
       nullptr, nullptr, "text/html", BodyKind::kNone, nullptr, false, false},
      {RouteId::kPageAsset, "GET", "/ui/{file}", nullptr,
       "The web page's scripts and styles (embedded in the server).", nullptr, nullptr,
       "text/javascript", BodyKind::kNone, nullptr, false, false},
      {RouteId::kOpenApi, "GET", "/v1/openapi.json", nullptr, "This document.", nullptr, nullptr,
       nullptr, BodyKind::kNone, nullptr, false, false},
      {RouteId::kHealth, "GET", "/v1/health", nullptr,
       "SERVING once the models are warm and the collections caught up with the store "
       "(as grpc.health.v1); 503 NOT_SERVING before. Needs no token.",
       nullptr, nullptr, nullptr, BodyKind::kNone, nullptr, false, false},
      {RouteId::kListCollections, "GET", "/v1/collections", "ListCollections",
       "The collections the token may use, with their counts.", "retrace.v1.ListCollectionsRequest",
       "retrace.v1.ListCollectionsResponse", nullptr, BodyKind::kNone, nullptr, true, false},
      {RouteId::kCreateCollection, "POST", "/v1/collections", "CreateCollection",
       "Creates a collection (scope admin).", "retrace.v1.CreateCollectionRequest",
       "retrace.v1.Collection", nullptr, BodyKind::kJson, nullptr, false, false},
      {RouteId::kDescribeCollection, "GET", "/v1/collections/{name}", "DescribeCollection",
       "One collection and its counts.", "retrace.v1.DescribeCollectionRequest",
       "retrace.v1.Collection", nullptr, BodyKind::kNone, nullptr, true, false},
      {RouteId::kDropCollection, "DELETE", "/v1/collections/{name}", "DropCollection",
       "Drops a collection and its items (scope admin).", "retrace.v1.DropCollectionRequest",
       "retrace.v1.DropCollectionResponse", nullptr, BodyKind::kNone, nullptr, false, false},
      {RouteId::kCaption, "POST", "/v1/caption", "Caption",
       "Captions images: JSON with base64 images, or multipart files named `images` (and an "
       "optional `request` part of JSON for the options).",
       "retrace.v1.CaptionRequest", "retrace.v1.CaptionResponse", nullptr, BodyKind::kJsonOrMultipart,
       "images", false, false},
      {RouteId::kIndex, "POST", "/v1/collections/{name}/index", "Index",
       "Indexes items: JSON Lines in, one IndexRequest per line (its collection may be left "
       "out); JSON Lines out, one IndexResponse per request line, each written once its items "
       "are stored. An error after the first line ends the answer with a line {\"error\": {...}}; "
       "the lines before it stay stored.",
       "retrace.v1.IndexRequest", "retrace.v1.IndexResponse", nullptr, BodyKind::kJsonLines, nullptr, false, false},
      {RouteId::kSearch, "POST", "/v1/collections/{name}/search", "Search",
       "Searches a collection: JSON (the image as base64, or text, or an embedding), or "
       "multipart with the query image as the file `image` and a `request` part of JSON for the "
       "other fields.",
       "retrace.v1.SearchRequest", "retrace.v1.SearchResponse", nullptr, BodyKind::kJsonOrMultipart,
       "image", false, false},
      {RouteId::kSearchBatch, "POST", "/v1/search-batch", "SearchBatch",
       "Several searches in one call (JSON; each query names its collection), answered in "
       "order, each with its own status; for bulk audits (the bulk lane).",
       "retrace.v1.SearchBatchRequest", "retrace.v1.SearchBatchResponse", nullptr, BodyKind::kJson,
       nullptr, false, false},
      {RouteId::kGet, "POST", "/v1/collections/{name}/get", "Get", "Stored items by id.",
       "retrace.v1.GetRequest", "retrace.v1.GetResponse", nullptr, BodyKind::kJson, nullptr, false, false},
      {RouteId::kThumbnail, "GET", "/v1/collections/{name}/thumbnail", "Get",
       "An item's thumbnail (JPEG; ?id=ITEM): what Get with include_thumbnails answers. 404 "
       "when the item is absent or its collection keeps no thumbnails.",
       "retrace.v1.GetRequest", nullptr, "image/jpeg", BodyKind::kNone, nullptr, false, true},
      {RouteId::kList, "POST", "/v1/collections/{name}/list", "List",
       "Stored items in id order, a page at a time: pass each answer's nextCursor back as the "
       "next request's cursor until it is empty.",
       "retrace.v1.ListRequest", "retrace.v1.ListResponse", nullptr, BodyKind::kJson, nullptr,
       false, false},
      {RouteId::kDelete, "POST", "/v1/collections/{name}/delete", "Delete",
       "Deletes items by id (scope index).", "retrace.v1.DeleteRequest",
       "retrace.v1.DeleteResponse", nullptr, BodyKind::kJson, nullptr, false, false},
      {RouteId::kClusterStatus, "GET", "/v1/cluster", "GetClusterStatus",
       "The replicas that share this server's store and how far each has applied it.",
       "retrace.v1.GetClusterStatusRequest", "retrace.v1.ClusterStatus", nullptr, BodyKind::kNone, nullptr, false, false},
  };
  return routes;
}

}  // namespace retrace::http
