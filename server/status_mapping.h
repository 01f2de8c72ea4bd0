// status_mapping.h — absl::Status ⇄ gRPC: the one place the two meet.
//
// absl's canonical codes are gRPC's codes, so the mapping is a cast; per-item statuses travel
// inside responses as retrace.v1.ItemStatus.
//
// Thread-safety: pure functions.
//
//   return reactor->Finish(ToGrpcStatus(engine_result.status()));
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

inline void ToItemStatus(const absl::Status& status, v1::ItemStatus* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message(std::string(status.message()));
}

}  // namespace retrace::server

#endif  // RETRACE_SERVER_STATUS_MAPPING_H_
