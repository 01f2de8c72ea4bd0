// service_calls.h — what the evaluation protocols ask of the service, as absl::Status calls:
// a fresh collection filled from image files, and gRPC status conversion.
//
// Thread-safety: functions; the client is thread-safe.
#ifndef RETRACE_CLIENT_EVAL_SERVICE_CALLS_H_
#define RETRACE_CLIENT_EVAL_SERVICE_CALLS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/retrace_client.h"

namespace retrace::eval {

// FromGrpc: `status` as an absl::Status, the message prefixed with `what`.
absl::Status FromGrpc(const grpc::Status& status, const std::string& what);

// ReadImageFile: a whole image file. NOT_FOUND naming it if unreadable or empty.
absl::StatusOr<std::string> ReadImageFile(const std::string& path);

struct ImageFile {
  std::string id;       // the item id
  std::string path;
  std::string caption;  // empty: the server captions it
};

// FillFreshCollection drops `collection` if it exists, creates it and indexes `files`. Any item
// that fails fails the call (naming it): a gallery missing items would change every number.
absl::Status FillFreshCollection(client::RetraceClient& client, const std::string& collection,
                                 const std::vector<ImageFile>& files);

}  // namespace retrace::eval

#endif  // RETRACE_CLIENT_EVAL_SERVICE_CALLS_H_
