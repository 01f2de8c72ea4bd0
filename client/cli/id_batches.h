// id_batches.h — for commands that take any number of ids (get, delete): send them in requests
// of at most kMaxIdsPerRequest and merge the per-id results into one response.
//
// Thread-safety: a function; the client is safe for concurrent use.
//
//   v1::DeleteResponse all;
//   grpc::Status s = CallInIdBatches(client, &RetraceClient::Delete, template_request, ids, &all);
#ifndef RETRACE_CLIENT_CLI_ID_BATCHES_H_
#define RETRACE_CLIENT_CLI_ID_BATCHES_H_

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/retrace_client.h"

namespace retrace::cli {

inline constexpr size_t kMaxIdsPerRequest = 64;  // the server's default limits.max_items_per_call

// CallInIdBatches sends `ids` in order, each request a copy of `base` with up to
// kMaxIdsPerRequest ids added, and appends every response's results to `all`. Stops at the first
// failed call; INTERNAL when a response does not hold exactly one result per id.
template <typename Request, typename Response>
grpc::Status CallInIdBatches(client::RetraceClient& client,
                             grpc::Status (client::RetraceClient::*call)(const Request&, Response*),
                             const Request& base, const std::vector<std::string>& ids,
                             Response* all) {
  for (size_t begin = 0; begin < ids.size(); begin += kMaxIdsPerRequest) {
    const size_t end = std::min(ids.size(), begin + kMaxIdsPerRequest);
    Request request = base;
    for (size_t i = begin; i < end; ++i) request.add_ids(ids[i]);
    Response response;
    grpc::Status status = (client.*call)(request, &response);
    if (!status.ok()) return status;
    if (response.results_size() != static_cast<int>(end - begin)) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("the server returned ", response.results_size(),
                                       " results for ", end - begin, " ids"));
    }
    for (auto& result : *response.mutable_results()) *all->add_results() = std::move(result);
    if constexpr (std::is_same_v<Response, v1::DeleteResponse>) {
      all->set_position(std::max(all->position(), response.position()));
    }
  }
  return grpc::Status::OK;
}

}  // namespace retrace::cli

#endif  // RETRACE_CLIENT_CLI_ID_BATCHES_H_
