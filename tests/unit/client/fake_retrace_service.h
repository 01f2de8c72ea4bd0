// fake_retrace_service: an in-process stand-in for the retrace server, for the client's unit
// tests. It answers from fixed rules (below) and records what it was sent, so tests can check
// batching, pipelining and the CLI's output without models. Thread-safe.
//
// Example:
//   FakeRetraceServer server;  // listens on 127.0.0.1, a free port
//   ClientOptions options; options.server = server.address();
#ifndef RETRACE_TESTS_UNIT_CLIENT_FAKE_RETRACE_SERVICE_H_
#define RETRACE_TESTS_UNIT_CLIENT_FAKE_RETRACE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "retrace/v1/retrace.grpc.pb.h"

namespace retrace::testing {

// FakeRetraceService: the rules.
//  Index: collection "missing" -> NOT_FOUND; an item whose id starts with "bad" fails with
//    INVALID_ARGUMENT "image: cannot decode"; others succeed, caption "caption of <id>". Each
//    response is sent 2 ms after its request is read, from a second thread, so requests pile up
//    as far as the client lets them.
//  Caption: an image whose bytes are "bad" fails with INVALID_ARGUMENT; others get
//    "caption <n bytes>".
//  Search: collection "missing" -> NOT_FOUND; mode other than CAPTION_MATCH -> UNIMPLEMENTED;
//    else min(top_k or 10, 3) hits "a", "b", "c" scored 0.9, 0.8, 0.7; "b" has attributes.
//    Each answer waits set_search_delay() first (default none), as a loaded server would.
//  Delete: ids starting with "gone" -> NOT_FOUND, others OK.
//  Collections: "missing" -> NOT_FOUND; List returns "alpha" and "beta"; Create echoes.
class FakeRetraceService final : public retrace::v1::Retrace::Service {
 public:
  grpc::Status Caption(grpc::ServerContext*, const retrace::v1::CaptionRequest*,
                       retrace::v1::CaptionResponse*) override;
  grpc::Status Index(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<retrace::v1::IndexResponse, retrace::v1::IndexRequest>*) override;
  grpc::Status Search(grpc::ServerContext*, const retrace::v1::SearchRequest*,
                      retrace::v1::SearchResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const retrace::v1::DeleteRequest*,
                      retrace::v1::DeleteResponse*) override;
  grpc::Status CreateCollection(grpc::ServerContext*, const retrace::v1::CreateCollectionRequest*,
                                retrace::v1::Collection*) override;
  grpc::Status ListCollections(grpc::ServerContext*, const retrace::v1::ListCollectionsRequest*,
                               retrace::v1::ListCollectionsResponse*) override;
  grpc::Status DescribeCollection(grpc::ServerContext*,
                                  const retrace::v1::DescribeCollectionRequest*,
                                  retrace::v1::Collection*) override;
  grpc::Status DropCollection(grpc::ServerContext*, const retrace::v1::DropCollectionRequest*,
                              retrace::v1::DropCollectionResponse*) override;

  // Recorded: the item count of each IndexRequest and image count of each CaptionRequest
  // received, the most IndexRequests read and not yet answered at once, the last SearchRequest.
  std::vector<int> index_batch_sizes() const;
  std::vector<int> caption_batch_sizes() const;
  int max_index_requests_pending() const;
  retrace::v1::SearchRequest last_search() const;
  // Searches: how many were answered, and the most handled at once.
  int searches() const;
  int max_concurrent_searches() const;
  // deleted_ids: every id of every DeleteRequest, in arrival order.
  std::vector<std::string> deleted_ids() const;

  // set_search_delay: how long each Search waits before answering. Default 0.
  void set_search_delay(std::chrono::milliseconds delay);

 private:
  mutable absl::Mutex mu_;
  std::vector<int> index_batch_sizes_ ABSL_GUARDED_BY(mu_);
  std::vector<int> caption_batch_sizes_ ABSL_GUARDED_BY(mu_);
  int max_index_requests_pending_ ABSL_GUARDED_BY(mu_) = 0;
  retrace::v1::SearchRequest last_search_ ABSL_GUARDED_BY(mu_);
  std::chrono::milliseconds search_delay_ ABSL_GUARDED_BY(mu_){0};
  int searches_ ABSL_GUARDED_BY(mu_) = 0;
  int concurrent_searches_ ABSL_GUARDED_BY(mu_) = 0;
  int max_concurrent_searches_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> deleted_ids_ ABSL_GUARDED_BY(mu_);
};

// FakeRetraceServer: a gRPC server for a FakeRetraceService on 127.0.0.1 and a free port,
// running from construction to destruction.
class FakeRetraceServer {
 public:
  FakeRetraceServer();
  ~FakeRetraceServer();
  // address: "127.0.0.1:PORT".
  std::string address() const { return address_; }
  FakeRetraceService& service() { return service_; }

 private:
  FakeRetraceService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace retrace::testing

#endif  // RETRACE_TESTS_UNIT_CLIENT_FAKE_RETRACE_SERVICE_H_
