// request_conversion_fuzzer.cc — libFuzzer target: arbitrary bytes as the body of a gRPC request,
// through protobuf parsing, server/proto_convert's FromProto, and the engine's validation
// (core/engine/validation.h) with the default EngineLimits — everything the server does to a
// request before any model, index or store is involved.
//
// The first byte picks the message: 0 SearchRequest, 1 CaptionRequest, 2 IndexRequestWire (how
// the server reads an IndexRequest: strings as bytes, so bad UTF-8 fails one item only),
// 3 DeleteRequest; the rest is its wire form. For Index and Delete it builds the per-item
// results as Engine::Index and Engine::Delete do before they touch the store (id echo, item
// label, duplicate ids, field checks), converts them with ToProto, and checks that the client
// can parse the serialized response: a per-item status whose message is not valid UTF-8 would
// make the whole response unreadable. Caption options are converted but not bounds-checked:
// Captioner::ValidateOptions needs a loaded captioner, and no model is linked here.
//
// Links the proto library, proto_convert.cc and validation.cc only (no LibTorch, FAISS, SQLite).
//
// Thread-safety: libFuzzer calls LLVMFuzzerTestOneInput from one thread.
//
//   build-fuzz/fuzz/request_conversion_fuzzer -max_total_time=600 CORPUS_DIR
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/common/utf8.h"
#include "core/engine/defaults.h"
#include "core/engine/engine_types.h"
#include "core/engine/validation.h"
#include "fuzz/fuzz_support.h"
#include "retrace/v1/index_wire.pb.h"
#include "retrace/v1/retrace.pb.h"
#include "server/proto_convert.h"

namespace retrace {
namespace {

using engine::EngineLimits;

void CheckRejection(const absl::Status& status, absl::string_view what) {
  RETRACE_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument,
                     absl::StrCat(what, ": expected INVALID_ARGUMENT, got ", status.ToString()));
  RETRACE_FUZZ_CHECK(
      IsValidUtf8(status.message()),
      absl::StrCat(what, ": message is not valid UTF-8: ", absl::CHexEscape(status.message())));
}

absl::Status Prefixed(const absl::Status& status, absl::string_view where) {
  return absl::Status(status.code(), absl::StrCat(where, ": ", status.message()));
}

// CheckClientCanParse serializes `response` and parses it back as a client would.
template <typename Response>
void CheckClientCanParse(const Response& response) {
  std::string wire;
  RETRACE_FUZZ_CHECK(response.SerializeToString(&wire), "the response does not serialize");
  Response parsed;
  RETRACE_FUZZ_CHECK(parsed.ParseFromString(wire),
                     absl::StrCat("a client cannot parse the response: ", response.DebugString()));
}

void FuzzSearch(const v1::SearchRequest& request, const EngineLimits& limits) {
  absl::StatusOr<engine::SearchQuery> query = server::FromProto(request);
  if (!query.ok()) {
    CheckRejection(query.status(), "FromProto(SearchRequest)");
    return;
  }
  RETRACE_FUZZ_CHECK(
      query->top_k == (request.top_k() == 0 ? engine::defaults::kTopK : request.top_k()),
      "FromProto(SearchRequest): top_k");
  RETRACE_FUZZ_CHECK(request.hybrid().rrf_k() != 0 || query->rrf_k == engine::defaults::kRrfK,
                     "FromProto(SearchRequest): rrf_k 0 must become the default");
  const absl::Status status = engine::ValidateSearchQuery(*query, limits);
  if (!status.ok()) {
    CheckRejection(status, "ValidateSearchQuery");
  } else {
    RETRACE_FUZZ_CHECK(query->top_k >= 1 && query->top_k <= limits.max_top_k,
                       "ValidateSearchQuery accepted a top_k out of bounds");
  }
  if (query->kind == engine::SearchQuery::Kind::kText) {
    const absl::Status text = engine::ValidateText(query->text, limits);
    if (!text.ok()) CheckRejection(text, "ValidateText");
  }
  const absl::Status name = engine::ValidateCollectionName(request.collection());
  if (!name.ok()) CheckRejection(name, "ValidateCollectionName");
}

void FuzzCaption(const v1::CaptionRequest& request, const EngineLimits& limits) {
  models::CaptionOptions defaults;
  defaults.max_new_tokens = 30;
  const models::CaptionOptions options = server::FromProto(request.options(), defaults);
  const v1::CaptionOptions& o = request.options();
  RETRACE_FUZZ_CHECK(
      options.max_new_tokens == (o.max_new_tokens() != 0 ? o.max_new_tokens() : 30) &&
          options.num_beams == (o.has_num_beams() ? o.num_beams() : defaults.num_beams) &&
          options.prompt == (o.has_prompt() ? o.prompt() : defaults.prompt),
      "FromProto(CaptionOptions) did not take the set fields and default the rest");
  const absl::Status count = engine::ValidateItemCount(request.images_size(), "images", limits);
  if (!count.ok()) CheckRejection(count, "ValidateItemCount(images)");
}

void FuzzIndex(v1::wire::IndexRequestWire& request, const EngineLimits& limits) {
  // What FromProto must produce, taken before it moves the image bytes out.
  std::vector<std::map<std::string, std::string>> expected_attributes;
  for (const v1::wire::ItemWire& item : request.items()) {
    std::map<std::string, std::string>& attributes = expected_attributes.emplace_back();
    for (const v1::wire::AttributeWire& a : item.attributes()) attributes[a.key()] = a.value();
  }
  std::vector<engine::IndexItem> items = server::FromProto(request);
  RETRACE_FUZZ_CHECK(items.size() == expected_attributes.size(), "FromProto(Index): item count");
  for (size_t i = 0; i < items.size(); ++i) {
    RETRACE_FUZZ_CHECK(items[i].id == request.items(i).id() &&
                           items[i].caption == request.items(i).caption() &&
                           items[i].attributes == expected_attributes[i],
                       absl::StrCat("FromProto(Index): items[", i, "] differs from the request"));
  }
  const absl::Status count = engine::ValidateItemCount(items.size(), "items", limits);
  if (!count.ok()) {
    CheckRejection(count, "ValidateItemCount(items)");  // the whole stream fails with it
    return;
  }

  // As Engine::Index, up to the store: echo the id, validate, label failures.
  std::vector<engine::ItemResult> results(items.size());
  std::unordered_map<std::string_view, size_t> first_seen;  // as Engine::Index
  for (size_t i = 0; i < items.size(); ++i) {
    const engine::IndexItem& item = items[i];
    absl::Status status = engine::ValidateId(item.id, limits);
    const bool id_ok = status.ok();
    results[i].id = IsValidUtf8(item.id) ? item.id : absl::CHexEscape(item.id);
    std::string label = absl::StrCat("items[", i, "]");
    if (id_ok) absl::StrAppend(&label, " '", item.id, "'");
    if (status.ok()) {
      auto [it, inserted] = first_seen.emplace(item.id, i);
      if (!inserted) {
        status = absl::InvalidArgumentError(
            absl::StrCat("id: duplicate of items[", it->second, "] in the same request"));
      }
    }
    if (status.ok()) status = engine::ValidateCaption(item.caption, limits);
    if (status.ok()) status = engine::ValidateAttributes(item.attributes, limits);
    if (status.ok() && item.image.empty()) status = absl::InvalidArgumentError("image: missing");
    if (!status.ok()) {
      CheckRejection(status, absl::StrCat("validating items[", i, "]"));
      results[i].status = Prefixed(status, label);
    }
  }
  v1::IndexResponse response;
  server::ToProto(engine::WriteResult{std::move(results), 0}, &response);
  CheckClientCanParse(response);
}

void FuzzDelete(const v1::DeleteRequest& request, const EngineLimits& limits) {
  const absl::Status count = engine::ValidateItemCount(request.ids_size(), "ids", limits);
  if (!count.ok()) {
    CheckRejection(count, "ValidateItemCount(ids)");
    return;
  }
  // As Engine::Delete, up to the store.
  std::vector<engine::ItemResult> results(request.ids_size());
  for (int i = 0; i < request.ids_size(); ++i) {
    const std::string& id = request.ids(i);
    results[i].id = IsValidUtf8(id) ? id : absl::CHexEscape(id);
    const absl::Status status = engine::ValidateId(id, limits);
    if (!status.ok()) {
      CheckRejection(status, absl::StrCat("validating ids[", i, "]"));
      results[i].status = Prefixed(status, absl::StrCat("ids[", i, "]"));
    }
  }
  v1::DeleteResponse response;
  server::ToProto(engine::WriteResult{std::move(results), 0}, &response);
  CheckClientCanParse(response);
}

}  // namespace
}  // namespace retrace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace retrace;
  if (size == 0) return 0;
  const void* body = data + 1;
  const int body_size = static_cast<int>(size - 1);
  const engine::EngineLimits limits;
  switch (data[0] % 4) {
    case 0: {
      v1::SearchRequest request;
      if (request.ParseFromArray(body, body_size)) FuzzSearch(request, limits);
      break;
    }
    case 1: {
      v1::CaptionRequest request;
      if (request.ParseFromArray(body, body_size)) FuzzCaption(request, limits);
      break;
    }
    case 2: {
      v1::wire::IndexRequestWire request;
      if (request.ParseFromArray(body, body_size)) FuzzIndex(request, limits);
      break;
    }
    case 3: {
      v1::DeleteRequest request;
      if (request.ParseFromArray(body, body_size)) FuzzDelete(request, limits);
      break;
    }
  }
  return 0;
}
