// The OpenAPI document of the HTTP/JSON API, generated from ApiRoutes() and the protos'
// descriptors (see http_api.h).
#include <google/protobuf/descriptor.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "retrace/v1/retrace.pb.h"
#include "server/http/api_routes.h"
#include "server/http/http_api.h"

namespace retrace::http {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using nlohmann::json;

const Descriptor* MessageNamed(const char* full_name) {
  if (full_name == nullptr) return nullptr;
  // Linking the generated code registers it; touch one message so the linker keeps it.
  (void)v1::SearchRequest::descriptor();
  return google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(full_name);
}

json Ref(const Descriptor* message) {
  return {{"$ref", absl::StrCat("#/components/schemas/", message->full_name())}};
}

// ScalarSchema: one value of `field` in protobuf's JSON mapping.
json ScalarSchema(const FieldDescriptor* field, std::set<const Descriptor*>* reached) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_UINT32:
      return {{"type", "integer"}, {"format", "int32"}};
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64:
      // The JSON mapping writes 64-bit integers as strings and reads strings or numbers.
      return {{"type", "string"}, {"format", "int64"}};
    case FieldDescriptor::CPPTYPE_FLOAT:
      return {{"type", "number"}, {"format", "float"}};
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return {{"type", "number"}, {"format", "double"}};
    case FieldDescriptor::CPPTYPE_BOOL:
      return {{"type", "boolean"}};
    case FieldDescriptor::CPPTYPE_STRING:
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        return {{"type", "string"}, {"format", "byte"}};
      }
      return {{"type", "string"}};
    case FieldDescriptor::CPPTYPE_ENUM: {
      json values = json::array();
      for (int i = 0; i < field->enum_type()->value_count(); ++i) {
        values.push_back(field->enum_type()->value(i)->name());
      }
      return {{"type", "string"}, {"enum", values}};
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      reached->insert(field->message_type());
      return Ref(field->message_type());
  }
  return json::object();
}

json FieldSchema(const FieldDescriptor* field, std::set<const Descriptor*>* reached) {
  if (field->is_map()) {
    return {{"type", "object"},
            {"additionalProperties",
             ScalarSchema(field->message_type()->map_value(), reached)}};
  }
  json schema = ScalarSchema(field, reached);
  if (field->is_repeated()) return {{"type", "array"}, {"items", schema}};
  return schema;
}

json MessageSchema(const Descriptor* message, std::set<const Descriptor*>* reached) {
  json properties = json::object();
  for (int i = 0; i < message->field_count(); ++i) {
    const FieldDescriptor* field = message->field(i);
    json schema = FieldSchema(field, reached);
    if (const auto* oneof = field->real_containing_oneof(); oneof != nullptr) {
      schema = {{"allOf", json::array({schema})},
                {"description", absl::StrCat("one of `", oneof->name(), "`")}};
    }
    properties[field->json_name()] = schema;
  }
  return {{"type", "object"}, {"properties", properties}};
}

std::vector<std::string> PathParameters(const std::string& path) {
  std::vector<std::string> names;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.size() > 2 && part.front() == '{' && part.back() == '}') {
      names.emplace_back(part.substr(1, part.size() - 2));
    }
  }
  return names;
}

json ErrorSchema() {
  return {{"type", "object"},
          {"properties",
           {{"error",
             {{"type", "object"},
              {"properties",
               {{"code", {{"type", "integer"}, {"description", "the HTTP status"}}},
                {"status", {{"type", "string"}, {"description", "the gRPC code's name"}}},
                {"message", {{"type", "string"}, {"description", "what is wrong, naming the field"}}}}}}}}}};
}

json Operation(const RouteDoc& route, std::set<const Descriptor*>* reached) {
  json op = {{"summary", route.summary}};
  op["operationId"] = route.grpc_method != nullptr ? route.grpc_method : route.path;
  if (route.grpc_method != nullptr) {
    op["x-grpc-method"] = absl::StrCat("retrace.v1.Retrace/", route.grpc_method);
    op["security"] = json::array({{{"bearer", json::array()}}, json::object()});
  }
  json parameters = json::array();
  for (const std::string& name : PathParameters(route.path)) {
    parameters.push_back(
        {{"name", name}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}});
  }
  if (route.query_min_position) {
    parameters.push_back({{"name", "min_position"},
                          {"in", "query"},
                          {"description", "answer once this replica applied this store position"},
                          {"schema", {{"type", "integer"}, {"format", "int64"}}}});
  }
  if (route.query_id) {
    parameters.push_back({{"name", "id"},
                          {"in", "query"},
                          {"required", true},
                          {"description", "the item's id"},
                          {"schema", {{"type", "string"}}}});
  }
  if (route.grpc_method != nullptr) {
    parameters.push_back({{"name", "X-Request-Id"},
                          {"in", "header"},
                          {"description", "1..128 of [A-Za-z0-9._:-]; echoed, else made"},
                          {"schema", {{"type", "string"}}}});
    parameters.push_back({{"name", "X-Server-Timeout"},
                          {"in", "header"},
                          {"description", "the call's deadline in seconds; default the server's"},
                          {"schema", {{"type", "number"}}}});
  }
  op["parameters"] = parameters;

  const Descriptor* request = MessageNamed(route.request_type);
  if (request != nullptr && route.body != BodyKind::kNone) {
    reached->insert(request);
    json content = json::object();
    if (route.body == BodyKind::kJsonLines) {
      content["application/x-ndjson"] = {{"schema", Ref(request)}};
    } else {
      content["application/json"] = {{"schema", Ref(request)}};
    }
    if (route.body == BodyKind::kJsonOrMultipart) {
      json file = {{"type", "string"}, {"format", "binary"}};
      const FieldDescriptor* field = request->FindFieldByName(route.files_field);
      if (field != nullptr && field->is_repeated()) file = {{"type", "array"}, {"items", file}};
      content["multipart/form-data"] = {
          {"schema",
           {{"type", "object"},
            {"properties",
             {{route.files_field, file},
              {"request", {{"type", "string"},
                           {"description", absl::StrCat("the other fields: a ",
                                                        request->full_name(), " in JSON")}}}}}}}};
    }
    op["requestBody"] = {{"required", true}, {"content", content}};
  }
  json ok = {{"description", "OK"}};
  if (route.content_type != nullptr) {
    ok["content"] = {{route.content_type, {{"schema", {{"type", "string"}, {"format", "binary"}}}}}};
  } else if (const Descriptor* response = MessageNamed(route.response_type); response != nullptr) {
    reached->insert(response);
    ok["content"] = {{route.body == BodyKind::kJsonLines ? "application/x-ndjson"
                                                         : "application/json",
                      {{"schema", Ref(response)}}}};
  }
  op["responses"] = {
      {"200", ok},
      {"default",
       {{"description", "an error"},
        {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}}}};
  return op;
}

}  // namespace

std::string OpenApiDocument() {
  std::set<const Descriptor*> reached;
  json paths = json::object();
  for (const RouteDoc& route : ApiRoutes()) {
    std::string method = route.method;
    for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    paths[route.path][method] = Operation(route, &reached);
  }
  json schemas = json::object();
  schemas["Error"] = ErrorSchema();
  std::set<const Descriptor*> done;
  while (!reached.empty()) {
    const Descriptor* message = *reached.begin();
    reached.erase(reached.begin());
    if (!done.insert(message).second) continue;
    schemas[message->full_name()] = MessageSchema(message, &reached);
  }
  json document = {
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "retrace"},
        {"version", "v1"},
        {"description",
         "Cross-domain image retrieval and generated-image provenance: retrace.v1.Retrace in "
         "protobuf's JSON mapping."}}},
      {"paths", paths},
      {"components",
       {{"schemas", schemas},
        {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}}};
  return document.dump(2);
}

}  // namespace retrace::http
