// proto_convert.h — the public API's messages ⇄ core's plain types, in one place.
//
// Request conversion applies the proto's documented defaults (core/engine/defaults.h: top_k 0,
// mode unspecified, candidates 0, unset beta/w1/w2, rrf_k 0, an empty index factory) and
// rejects what core cannot express (no query set) with INVALID_ARGUMENT naming the field.
// Bounds are core's job (engine/validation.h).
//
// Thread-safety: pure functions.
//
//   RETRACE_ASSIGN_OR_RETURN(engine::SearchQuery query, FromProto(request));
//   ToProto(hits, &response);
#ifndef RETRACE_SERVER_PROTO_CONVERT_H_
#define RETRACE_SERVER_PROTO_CONVERT_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/engine_types.h"
#include "core/models/captioner.h"
#include "retrace/v1/index_wire.pb.h"
#include "retrace/v1/retrace.pb.h"

namespace retrace::server {

absl::StatusOr<engine::SearchQuery> FromProto(const v1::SearchRequest& request);
// FromProto(IndexRequestWire) moves the image bytes out of `request`.
std::vector<engine::IndexItem> FromProto(v1::wire::IndexRequestWire& request);
// NearDuplicateFromProto: the request's near_duplicate check (threshold 0: the default), none
// when unset; INVALID_ARGUMENT naming near_duplicate.action for an unknown action.
absl::StatusOr<std::optional<engine::NearDuplicateCheck>> NearDuplicateFromProto(
    const v1::wire::IndexRequestWire& request);
engine::CollectionSpec FromProto(const v1::Collection& collection);

void ToProto(const engine::CollectionInfo& info, v1::Collection* out);
void ToProto(const engine::SearchResult& result, v1::SearchResponse* out);
void ToProto(const engine::WriteResult& written, v1::IndexResponse* out);
void ToProto(const engine::WriteResult& written, v1::DeleteResponse* out);
void ToProto(const engine::ClusterStatus& status, v1::ClusterStatus* out);
void ToProto(const std::vector<engine::CaptionResult>& results, v1::CaptionResponse* out);
void ToProto(const engine::ItemRecord& record, v1::StoredItem* out);
void ToProto(const std::vector<engine::GetResult>& results, v1::GetResponse* out);
void ToProto(const engine::ListPage& page, v1::ListResponse* out);

// FromProto(CaptionOptions) takes each field the request sets and the rest from `defaults` (the
// server's captioning config); max_new_tokens 0 counts as unset. Bounds are the captioner's job.
models::CaptionOptions FromProto(const v1::CaptionOptions& options,
                                 const models::CaptionOptions& defaults);

}  // namespace retrace::server

#endif  // RETRACE_SERVER_PROTO_CONVERT_H_
