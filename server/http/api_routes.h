// api_routes.h — the HTTP/JSON API's routes: one table that the server registers (http_api.cc)
// and the OpenAPI document describes (openapi.cc), so the two cannot drift apart.
//
// Thread-safety: immutable.
//
//   for (const RouteDoc& route : ApiRoutes()) Register(route);
#ifndef RETRACE_SERVER_HTTP_API_ROUTES_H_
#define RETRACE_SERVER_HTTP_API_ROUTES_H_

#include <vector>

namespace retrace::http {

enum class RouteId {
  kPage,
  kPageAsset,
  kOpenApi,
  kHealth,
  kListCollections,
  kCreateCollection,
  kDescribeCollection,
  kDropCollection,
  kCaption,
  kIndex,
  kSearch,
  kSearchBatch,
  kGet,
  kThumbnail,
  kList,
  kDelete,
  kClusterStatus,
};

enum class BodyKind {
  kNone,             // no body; the request message comes from the path and the query
  kJson,             // the request message in JSON
  kJsonOrMultipart,  // JSON, or multipart/form-data: image files and a `request` JSON part
  kJsonLines,        // one request message per line
};

struct RouteDoc {
  RouteId id;
  const char* method;         // "GET", "POST", "DELETE"
  const char* path;           // OpenAPI template: "/v1/collections/{name}/search"
  const char* grpc_method;    // the retrace.v1.Retrace method it mirrors; null for none
  const char* summary;
  const char* request_type;   // full name of the request message; null for none
  const char* response_type;  // full name of the response message; null: not JSON
  const char* content_type;   // the answer's type when it is not JSON; null: JSON
  BodyKind body;
  const char* files_field;    // kJsonOrMultipart: the request's bytes field files fill
  bool query_min_position;    // takes ?min_position=N
  bool query_id;              // takes ?id=ITEM (required)
};

// ApiRoutes: every route, in the order the OpenAPI document lists them.
const std::vector<RouteDoc>& ApiRoutes();

}  // namespace retrace::http

#endif  // RETRACE_SERVER_HTTP_API_ROUTES_H_
