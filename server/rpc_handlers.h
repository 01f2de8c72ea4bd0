// rpc_handlers.h — what each RPC of retrace.v1.Retrace does once admitted: its request message
// in, the engine's work, its response message out. The gRPC service and the HTTP/JSON API both
// call these, so the two transports answer alike by construction.
//
// Thread-safety: each call is independent; the engine is thread-safe.
//
//   gate.Run(who, deadline, cancelled, [&](engine::Engine& e, const Principal& p, auto& call) {
//     return HandleSearch(e, p, call, request, &response);
//   }, done);
#ifndef RETRACE_SERVER_RPC_HANDLERS_H_
#define RETRACE_SERVER_RPC_HANDLERS_H_

#include "absl/status/status.h"
#include "core/engine/engine.h"
#include "retrace/v1/index_wire.pb.h"
#include "retrace/v1/retrace.pb.h"
#include "server/token_auth.h"

namespace retrace::server {

absl::Status HandleCaption(engine::Engine& engine, const Principal& who,
                           const engine::CallOptions& call, const v1::CaptionRequest& request,
                           v1::CaptionResponse* response);
absl::Status HandleSearch(engine::Engine& engine, const Principal& who,
                          const engine::CallOptions& call, const v1::SearchRequest& request,
                          v1::SearchResponse* response);
// HandleSearchBatch answers each query as HandleSearch would, in order, one after another, with
// its model and index work in the bulk lane; a query's error (PERMISSION_DENIED for a
// collection `who` may not use) is its own result's. INVALID_ARGUMENT naming `queries` for a
// count outside 1..limits.max_queries_per_call.
absl::Status HandleSearchBatch(engine::Engine& engine, const Principal& who,
                               const engine::CallOptions& call,
                               const v1::SearchBatchRequest& request,
                               v1::SearchBatchResponse* response);
absl::Status HandleDelete(engine::Engine& engine, const Principal& who,
                          const engine::CallOptions& call, const v1::DeleteRequest& request,
                          v1::DeleteResponse* response);
absl::Status HandleGet(engine::Engine& engine, const Principal& who,
                       const engine::CallOptions& call, const v1::GetRequest& request,
                       v1::GetResponse* response);
absl::Status HandleList(engine::Engine& engine, const Principal& who,
                        const engine::CallOptions& call, const v1::ListRequest& request,
                        v1::ListResponse* response);
absl::Status HandleCreateCollection(engine::Engine& engine, const Principal& who,
                                    const engine::CallOptions& call,
                                    const v1::CreateCollectionRequest& request,
                                    v1::Collection* response);
// ListCollections shows only the collections `who` may use.
absl::Status HandleListCollections(engine::Engine& engine, const Principal& who,
                                   const engine::CallOptions& call,
                                   const v1::ListCollectionsRequest& request,
                                   v1::ListCollectionsResponse* response);
absl::Status HandleDescribeCollection(engine::Engine& engine, const Principal& who,
                                      const engine::CallOptions& call,
                                      const v1::DescribeCollectionRequest& request,
                                      v1::Collection* response);
absl::Status HandleDropCollection(engine::Engine& engine, const Principal& who,
                                  const engine::CallOptions& call,
                                  const v1::DropCollectionRequest& request,
                                  v1::DropCollectionResponse* response);
absl::Status HandleGetClusterStatus(engine::Engine& engine, const Principal& who,
                                    const engine::CallOptions& call,
                                    const v1::GetClusterStatusRequest& request,
                                    v1::ClusterStatus* response);
// HandleIndex stores one Index request's items. The caller has authorized `who` for the
// request's collection (an Index stream names it per request, not per call). The image bytes
// are moved out of `request`.
absl::Status HandleIndex(engine::Engine& engine, const Principal& who,
                         const engine::CallOptions& call,
                         v1::wire::IndexRequestWire& request, v1::IndexResponse* response);

}  // namespace retrace::server

#endif  // RETRACE_SERVER_RPC_HANDLERS_H_
