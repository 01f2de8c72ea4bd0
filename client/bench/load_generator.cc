#include "client/bench/load_generator.h"

#include <algorithm>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace retrace::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Milliseconds(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// Tally: one thread's figures. Each thread keeps its own and they are merged at the end, so
// the threads share no counters while the load runs.
struct Tally {
  std::array<KindResult, kRpcKindCount> kinds;
  int64_t warmup_calls = 0;
  double max_start_lag_ms = 0;
  std::vector<SecondResult> timeline;

  // Second: the timeline entry of a call started (or due) `since_start` into the window.
  SecondResult& Second(Clock::duration since_start) {
    const auto second = static_cast<size_t>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::seconds>(since_start).count()));
    if (timeline.size() <= second) timeline.resize(second + 1);
    return timeline[second];
  }

  void Record(RpcKind kind, const CallOutcome& outcome, Clock::duration since_start,
              Clock::duration latency) {
    KindResult& result = kinds[static_cast<int>(kind)];
    if (!outcome.issued) {
      ++result.skipped;
      return;
    }
    ++result.calls;
    result.latencies.Add(latency);
    SecondResult& second = Second(since_start);
    ++second.calls;
    second.latency_sum_ms += Milliseconds(latency);
    second.max_latency_ms = std::max(second.max_latency_ms, Milliseconds(latency));
    if (!outcome.status.ok()) {
      ++result.errors;
      ++second.errors;
      ErrorCount& error = result.errors_by_code[outcome.status.code()];
      if (error.count++ == 0) error.first_message = std::string(outcome.status.message());
    }
  }
};

LoadResult Combine(const std::vector<Tally>& tallies, const LoadOptions& options) {
  LoadResult result;
  result.seconds = std::chrono::duration<double>(options.duration).count();
  for (const Tally& tally : tallies) {
    for (int k = 0; k < kRpcKindCount; ++k) result.kinds[k].Merge(tally.kinds[k]);
    result.warmup_calls += tally.warmup_calls;
    result.max_start_lag_ms = std::max(result.max_start_lag_ms, tally.max_start_lag_ms);
    if (result.timeline.size() < tally.timeline.size())
      result.timeline.resize(tally.timeline.size());
    for (size_t i = 0; i < tally.timeline.size(); ++i) result.timeline[i].Merge(tally.timeline[i]);
  }
  for (const KindResult& kind : result.kinds) result.total.Merge(kind);
  return result;
}

void RunClosedLoop(const LoadOptions& options, const RpcMix& mix, CallRunner& runner,
                   std::vector<Tally>& tallies) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point counted_from = start + options.warmup;
  const Clock::time_point end = counted_from + options.duration;
  tallies.resize(options.concurrency);
  std::vector<std::thread> threads;
  for (int i = 0; i < options.concurrency; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937_64 rng(options.seed + 1 + i);
      Tally& tally = tallies[i];
      for (;;) {
        const Clock::time_point started = Clock::now();
        if (started >= end) return;
        const RpcKind kind = mix.Pick(rng);
        const CallOutcome outcome = runner.Run(kind, rng);
        const Clock::time_point finished = Clock::now();
        if (started < counted_from) {
          if (outcome.issued) ++tally.warmup_calls;
          continue;
        }
        tally.Record(kind, outcome, started - counted_from, finished - started);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

// OpenLoopQueue: the calls the scheduler has made due and no worker has taken yet.
struct OpenLoopQueue {
  struct Call {
    RpcKind kind;
    Clock::time_point due;
  };

  absl::Mutex mu;
  absl::CondVar work;  // signalled once per queued call, so one idle worker wakes for it
  std::deque<Call> calls ABSL_GUARDED_BY(mu);
  int outstanding ABSL_GUARDED_BY(mu) = 0;  // queued or being made
  int idle ABSL_GUARDED_BY(mu) = 0;         // workers waiting for a call
  bool closed ABSL_GUARDED_BY(mu) = false;  // no more calls will be queued
};

void RunOpenLoop(const LoadOptions& options, const RpcMix& mix, CallRunner& runner,
                 std::vector<Tally>& tallies) {
  // Workers are started as calls need them, up to one per call that may be outstanding, so
  // a queued call always finds a worker and the only wait between its due time and its start
  // is a wake-up (or a thread start). The last tally is the scheduler's (dropped calls).
  tallies.resize(options.max_outstanding + 1);
  const Clock::time_point start = Clock::now();
  const Clock::time_point counted_from = start + options.warmup;
  const Clock::time_point end = counted_from + options.duration;
  OpenLoopQueue queue;
  std::vector<std::thread> threads;
  auto worker = [&](int i) {
    std::mt19937_64 rng(options.seed + 1 + i);
    Tally& tally = tallies[i];
    for (;;) {
      OpenLoopQueue::Call call;
      {
        absl::MutexLock lock(&queue.mu);
        ++queue.idle;
        while (queue.calls.empty() && !queue.closed) queue.work.Wait(&queue.mu);
        --queue.idle;
        if (queue.calls.empty()) return;  // closed and drained
        call = queue.calls.front();
        queue.calls.pop_front();
      }
      const Clock::time_point started = Clock::now();
      const CallOutcome outcome = runner.Run(call.kind, rng);
      const Clock::time_point finished = Clock::now();
      {
        absl::MutexLock lock(&queue.mu);
        --queue.outstanding;
      }
      if (call.due < counted_from) {
        if (outcome.issued) ++tally.warmup_calls;
        continue;
      }
      // Timed from the due time, so whatever held the call up — a late wake-up here or a
      // queue at the server — is in its latency.
      tally.max_start_lag_ms = std::max(tally.max_start_lag_ms, Milliseconds(started - call.due));
      tally.Record(call.kind, outcome, call.due - counted_from, finished - call.due);
    }
  };

  std::mt19937_64 rng(options.seed);
  Tally& scheduler = tallies[options.max_outstanding];
  const std::chrono::duration<double> interval(1.0 / options.rate);
  for (int64_t n = 0;; ++n) {
    // Due times are computed from the start, not from the previous call, so sleeping late
    // once does not shift every later call.
    const Clock::time_point due =
        start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(n));
    if (due >= end) break;
    std::this_thread::sleep_until(due);
    const RpcKind kind = mix.Pick(rng);
    bool needs_worker = false;
    {
      absl::MutexLock lock(&queue.mu);
      if (queue.outstanding >= options.max_outstanding) {
        if (due >= counted_from) {
          ++scheduler.kinds[static_cast<int>(kind)].dropped;
          ++scheduler.Second(due - counted_from).dropped;
        }
        continue;
      }
      ++queue.outstanding;
      queue.calls.push_back({kind, due});
      needs_worker = static_cast<int>(queue.calls.size()) > queue.idle;
      queue.work.Signal();
    }
    if (needs_worker && static_cast<int>(threads.size()) < options.max_outstanding) {
      threads.emplace_back(worker, static_cast<int>(threads.size()));
    }
  }
  {
    absl::MutexLock lock(&queue.mu);
    queue.closed = true;
    queue.work.SignalAll();
  }
  for (std::thread& thread : threads) thread.join();
}

}  // namespace

void SecondResult::Merge(const SecondResult& other) {
  calls += other.calls;
  errors += other.errors;
  dropped += other.dropped;
  latency_sum_ms += other.latency_sum_ms;
  max_latency_ms = std::max(max_latency_ms, other.max_latency_ms);
}

void KindResult::Merge(const KindResult& other) {
  calls += other.calls;
  errors += other.errors;
  dropped += other.dropped;
  skipped += other.skipped;
  latencies.Merge(other.latencies);
  for (const auto& [code, error] : other.errors_by_code) {
    ErrorCount& mine = errors_by_code[code];
    if (mine.count == 0) mine.first_message = error.first_message;
    mine.count += error.count;
  }
}

LoadResult RunLoad(const LoadOptions& options, const RpcMix& mix, CallRunner& runner) {
  std::vector<Tally> tallies;
  if (options.concurrency > 0) {
    RunClosedLoop(options, mix, runner, tallies);
  } else {
    RunOpenLoop(options, mix, runner, tallies);
  }
  return Combine(tallies, options);
}

}  // namespace retrace::bench
