// filter_arg.h — a command's --filter EXPR (core/filter/parse.h's text syntax) read into the
// request's Filter, with the server's default bounds, so a bad expression is a usage error that
// points at its token before any call.
//
// Thread-safety: a pure function.
//
//   absl::Status s = ParseFilterArg(parsed->Value("filter"), request.mutable_filter());
//   if (!s.ok()) return context.UsageError(kCommand, s.message(), kUsage);
#ifndef RETRACE_CLIENT_CLI_FILTER_ARG_H_
#define RETRACE_CLIENT_CLI_FILTER_ARG_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "retrace/v1/retrace.pb.h"

namespace retrace::cli {

// ParseFilterArg: INVALID_ARGUMENT "--filter: unexpected token … at column N" and the like.
absl::Status ParseFilterArg(absl::string_view text, v1::Filter* out);

}  // namespace retrace::cli

#endif  // RETRACE_CLIENT_CLI_FILTER_ARG_H_
