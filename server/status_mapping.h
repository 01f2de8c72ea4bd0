// status_mapping.h — absl::Status ⇄ gRPC and HTTP: the one place they meet.
//
// absl's canonical codes are gRPC's codes, so that mapping is a cast; HTTP statuses follow
// google.rpc.Code's documented mapping (as gRPC-gateway and Google's JSON APIs answer); per-item
// statuses travel inside responses as retrace.v1.ItemStatus.
//
// Thread-safety: pure functions.
//
//   return reactor->Finish(ToGrpcStatus(engine_result.status()));
//   response.status = HttpStatusOf(status.code());
#ifndef RETRACE_SERVER_STATUS_MAPPING_H_
#define RETRACE_SERVER_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "retrace/v1/retrace.pb.h"

namespace retrace::server {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// HttpStatusOf: 400 for a request to fix, 401 unauthenticated, 403 not allowed, 404 not found,
// 409 conflict, 429 over a bound to retry later, 499 cancelled, 501 not implemented, 503
// unavailable, 504 deadline exceeded, 500 for the server's own failures.
inline int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

inline void ToItemStatus(const absl::Status& status, v1::ItemStatus* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message(std::string(status.message()));
}

}  // namespace retrace::server

#endif  // RETRACE_SERVER_STATUS_MAPPING_H_
