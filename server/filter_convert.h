// filter_convert.h — retrace.proto's Filter ⇄ core's filter::Filter. The server reads requests'
// filters with FromProto; the CLI, which parses the text syntax (core/filter/parse.h), sends one
// with ToProto. A library of its own so the client links it without the server.
//
// FromProto rejects only what core's tree cannot express (no kind or test set, both gt and gte,
// both lt and lte), with INVALID_ARGUMENT naming the field; bounds are filter::Validate's (the
// engine's). Recursion follows the message's nesting, which protobuf's parser caps at 100.
//
// Thread-safety: pure functions.
//
//   RETRACE_ASSIGN_OR_RETURN(filter::Filter f, FilterFromProto(request.filter(), "filter"));
//   FilterToProto(f, request.mutable_filter());
#ifndef RETRACE_SERVER_FILTER_CONVERT_H_
#define RETRACE_SERVER_FILTER_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/filter/filter.h"
#include "retrace/v1/retrace.pb.h"

namespace retrace::server {

// FilterFromProto converts `proto`, naming fields under `path`.
absl::StatusOr<filter::Filter> FilterFromProto(const v1::Filter& proto, const std::string& path);

// FilterToProto writes `f` into `out` (cleared first).
void FilterToProto(const filter::Filter& f, v1::Filter* out);

}  // namespace retrace::server

#endif  // RETRACE_SERVER_FILTER_CONVERT_H_
