// load_generator: drives calls at a server in a closed or an open loop and times them.
//
// Closed loop (`concurrency` C): C threads each make the next call as soon as the previous one
// returns, so the offered load adapts to the server — this measures the most it can do.
// Open loop (`rate` R): the n-th call is due at start + n/R whatever happened before, and its
// latency is counted from that due time, not from when a thread got round to sending it, so
// a server that falls behind shows its queueing in the latencies (no coordinated omission).
// At most `max_outstanding` calls are in flight; a call that falls due while that many are
// is not made and counts as dropped — the cap keeps a stalled server from drowning the client.
//
// Calls whose start (closed loop) or due time (open loop) lies in the warm-up are made but not
// counted; the figures cover calls starting in [warmup, warmup + duration), and calls still in
// flight at the end are waited for and counted. QPS is those calls over `duration`.
//
// The calls themselves are a CallRunner's: bench_calls.h makes real ones; tests pass fakes.
//
// Thread-safety: RunLoad blocks until the run is over; it calls the runner from many threads.
//
// Example:
//   LoadOptions options;  options.rate = 50;  options.duration = std::chrono::seconds(10);
//   LoadResult result = RunLoad(options, *RpcMix::Parse("search-text=1"), runner);
#ifndef RETRACE_CLIENT_BENCH_LOAD_GENERATOR_H_
#define RETRACE_CLIENT_BENCH_LOAD_GENERATOR_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/bench/latency_recorder.h"
#include "client/bench/rpc_mix.h"

namespace retrace::bench {

// CallOutcome: what one call came to. A runner with nothing to do for a kind (a delete when no
// item is left to delete) returns issued = false: the call is counted as skipped, not timed.
struct CallOutcome {
  bool issued = true;
  absl::Status status;  // the call's (or its one item's) status; codes are gRPC's
};

// CallRunner: makes one call of a kind. Implementations must be safe to call from many
// threads at once.
class CallRunner {
 public:
  virtual ~CallRunner() = default;
  // Run: makes one call of `kind` and returns once it has finished. `rng` belongs to the
  // calling thread, for choosing queries.
  virtual CallOutcome Run(RpcKind kind, std::mt19937_64& rng) = 0;
};

// LoadOptions: how to load. Exactly one of `concurrency` and `rate` is positive.
struct LoadOptions {
  int concurrency = 0;                 // closed loop: this many threads. Default 0 (not closed).
  double rate = 0;                     // open loop: calls per second. Default 0 (not open).
  int max_outstanding = 64;            // open loop: most calls in flight (>= 1). Default 64.
  std::chrono::nanoseconds warmup{0};  // not counted. Default 0.
  std::chrono::nanoseconds duration{std::chrono::seconds(10)};  // counted. Default 10 s.
  uint64_t seed = 1;  // seeds kind choice and every thread's rng. Default 1.
};

// ErrorCount: the calls that failed with one status code, and the first one's message.
struct ErrorCount {
  int64_t count = 0;
  std::string first_message;
};

// KindResult: the figures of one kind of call (or of all of them) in the measured window.
struct KindResult {
  int64_t calls = 0;          // made and finished, ok or not
  int64_t errors = 0;         // of `calls`, those that did not return OK
  int64_t dropped = 0;        // open loop: fell due with max_outstanding in flight; not made
  int64_t skipped = 0;        // the runner had nothing to do (issued = false)
  LatencyRecorder latencies;  // every call's, failed ones included
  std::map<absl::StatusCode, ErrorCount> errors_by_code;

  // Merge: adds `other`'s figures (first messages are kept where this has one).
  void Merge(const KindResult& other);
};

// SecondResult: the calls of one second of the measured window (by start or due time), all
// kinds together — enough to see whether a server fell behind steadily or in bursts.
struct SecondResult {
  int64_t calls = 0;
  int64_t errors = 0;
  int64_t dropped = 0;
  double latency_sum_ms = 0;  // mean: latency_sum_ms / calls
  double max_latency_ms = 0;

  void Merge(const SecondResult& other);
};

// LoadResult: what RunLoad measured.
struct LoadResult {
  std::array<KindResult, kRpcKindCount> kinds;  // indexed by RpcKind
  KindResult total;                             // all kinds together
  double seconds = 0;                           // the measured window (duration)
  int64_t warmup_calls = 0;                     // made during the warm-up, not counted
  // open loop: the most a counted call started after it was due — when this grows the client
  // (not the server) was short of threads or CPU; 0 in a closed loop.
  double max_start_lag_ms = 0;
  // timeline: second i of the measured window at [i]; seconds after the last call are absent.
  std::vector<SecondResult> timeline;
};

// RunLoad: runs the load described by `options` with kinds drawn from `mix`, calling `runner`,
// and returns the figures. REQUIRES: exactly one of options.concurrency and options.rate > 0;
// options.max_outstanding >= 1 for an open loop.
LoadResult RunLoad(const LoadOptions& options, const RpcMix& mix, CallRunner& runner);

}  // namespace retrace::bench

#endif  // RETRACE_CLIENT_BENCH_LOAD_GENERATOR_H_
