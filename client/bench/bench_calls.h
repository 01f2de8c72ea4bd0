// bench_calls: the calls `retrace bench` makes — searches by image, text and embedding, Index
// of one item, Delete of one item — through a RetraceClient, as a CallRunner.
//
// Index calls store one image from the pool under a fresh id "bench-<run_id>-<n>", each over
// its own short Index stream: the server answers a stream's requests one at a time, so one
// long-lived stream per thread would serialise an open loop's index calls behind each other,
// while a stream per call lets them overlap as independent clients' would, and its latency
// includes opening and closing the stream (on the existing connection) — what a client that
// indexes one render at a time pays. Delete calls only ever delete ids this run indexed (the
// oldest first), never an item that was there before; with none left the call is skipped.
// Cleanup() deletes what the run indexed and did not delete, so repeated runs (the soak) leave
// the collection as they found it.
//
// Embedding queries are the stored embeddings of up to 32 items of the collection (found by a
// text search, read with Get(include_embeddings)), laid out as the search mode expects: the
// CLIP image embedding for CAPTION_MATCH, [image encoder, CLIP] for PROVENANCE and HYBRID. An
// empty collection gets random unit vectors of the collection's dimension instead.
//
// Thread-safety: Run may be called from many threads at once; Cleanup after the load is over.
//
// Example:
//   auto calls = BenchCalls::Create(&client, options, mix);
//   CallOutcome outcome = (*calls)->Run(RpcKind::kSearchText, rng);
#ifndef RETRACE_CLIENT_BENCH_BENCH_CALLS_H_
#define RETRACE_CLIENT_BENCH_BENCH_CALLS_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/bench/load_generator.h"
#include "client/bench/rpc_mix.h"
#include "client/retrace_client.h"

namespace retrace::bench {

namespace v1 = ::retrace::v1;

// BenchCallOptions: what the calls carry.
struct BenchCallOptions {
  std::string collection;                   // required
  v1::SearchMode mode = v1::CAPTION_MATCH;  // of every search. Default CAPTION_MATCH.
  int top_k = 10;                           // of every search. Default 10.
  std::vector<std::string> images;          // encoded images: image queries and index items
  std::vector<std::string> texts;           // text queries, captions and query captions
  // index_captions: index items carry a caption from `texts`, so the server does not caption
  // them. Default false: the server captions each one, as for an image-only client.
  bool index_captions = false;
  // query_captions: PROVENANCE and HYBRID image queries carry a query_caption from `texts` (a
  // generation platform's prompt). Default false: the server captions the query. Embedding
  // queries in those modes always carry one, as the API requires.
  bool query_captions = false;
  std::string run_id;  // required: index ids are "bench-<run_id>-<n>"
  uint64_t seed = 1;   // for random embeddings. Default 1.
};

// BuiltInTexts: the text queries used when the caller has none: short descriptions of
// pictures in the domains retrace is for.
std::vector<std::string> BuiltInTexts();

class BenchCalls final : public CallRunner {
 public:
  // Create: checks that the collection exists (DescribeCollection) and prepares what `mix`
  // needs. Errors: INVALID_ARGUMENT when the mix needs images or texts and there are none;
  // FAILED_PRECONDITION when it needs embeddings and the collection reports no dimension;
  // the server's code (NOT_FOUND, UNAVAILABLE, ...) when a call fails. `client` is not owned
  // and must outlive the BenchCalls.
  static absl::StatusOr<std::unique_ptr<BenchCalls>> Create(client::RetraceClient* client,
                                                            BenchCallOptions options,
                                                            const RpcMix& mix);

  CallOutcome Run(RpcKind kind, std::mt19937_64& rng) override;

  // Cleanup: deletes every item this run indexed and has not deleted, 64 ids a call, and
  // returns how many were deleted; the first failed call's status otherwise.
  absl::StatusOr<int64_t> Cleanup();

  // embedding_source: "stored" or "random" (how embedding queries were made); "" when none.
  const std::string& embedding_source() const { return embedding_source_; }

 private:
  BenchCalls(client::RetraceClient* client, BenchCallOptions options)
      : client_(client), options_(std::move(options)) {}

  absl::Status PrepareEmbeddings(const v1::Collection& collection);
  CallOutcome Search(RpcKind kind, std::mt19937_64& rng);
  CallOutcome Index(std::mt19937_64& rng);
  CallOutcome Delete();

  client::RetraceClient* const client_;
  const BenchCallOptions options_;
  std::vector<std::vector<float>> embeddings_;  // set before the load; read-only during it
  std::string embedding_source_;
  std::atomic<int64_t> next_id_{0};

  mutable absl::Mutex mu_;
  // indexed_: acknowledged ids not yet deleted, oldest first — what Delete takes from.
  std::deque<std::string> indexed_ ABSL_GUARDED_BY(mu_);
  // uncertain_: ids whose Index or Delete call failed in transport (deadline, unavailable):
  // they may be stored, so Cleanup deletes them too; NOT_FOUND is then no error.
  std::vector<std::string> uncertain_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retrace::bench

#endif  // RETRACE_CLIENT_BENCH_BENCH_CALLS_H_
