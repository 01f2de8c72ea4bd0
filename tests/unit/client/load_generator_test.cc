// Tests of client/bench/load_generator.h: closed and open loops, warm-up, back-pressure and
// timing from the due time, first with runners whose timing the test controls, then through
// the real client against the fake service. Every count asserted is one the schedule fixes
// (the n-th call is due at n/R whatever the machine's speed) or a bound that slowness can only
// make easier to meet, so the tests do not flake on a busy machine.
#include "client/bench/load_generator.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "client/bench/bench_calls.h"
#include "client/bench/bench_report.h"
#include "client/retrace_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/client/fake_retrace_service.h"

namespace retrace::bench {
namespace {

using std::chrono::milliseconds;
using ::testing::StartsWith;

// SleepingRunner: each call sleeps `delay` (under one mutex when `serial`, like a server with
// one worker) and records the most calls in flight at once.
class SleepingRunner final : public CallRunner {
 public:
  SleepingRunner(milliseconds delay, bool serial) : delay_(delay), serial_(serial) {}

  CallOutcome Run(RpcKind kind, std::mt19937_64&) override {
    const int now = ++in_flight_;
    int seen = max_in_flight_.load();
    while (now > seen && !max_in_flight_.compare_exchange_weak(seen, now)) {
    }
    if (serial_) {
      absl::MutexLock lock(&serial_mu_);
      std::this_thread::sleep_for(delay_);
    } else {
      std::this_thread::sleep_for(delay_);
    }
    --in_flight_;
    return {};
  }

  int max_in_flight() const { return max_in_flight_.load(); }

 private:
  const milliseconds delay_;
  const bool serial_;
  absl::Mutex serial_mu_;
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
};

LoadOptions OpenLoop(double rate, milliseconds duration, int max_outstanding) {
  LoadOptions options;
  options.rate = rate;
  options.duration = duration;
  options.max_outstanding = max_outstanding;
  return options;
}

const RpcMix& SearchText() {
  static const RpcMix* const mix = new RpcMix(*RpcMix::Parse("search-text=1"));
  return *mix;
}

TEST(OpenLoopTest, MakesRateTimesDurationCalls) {
  SleepingRunner runner(milliseconds(2), /*serial=*/false);
  // Due at 0, 5, ..., 995 ms: exactly 200 calls. A cap far above the ~1 call in flight means
  // none can be dropped even if the machine stalls for a while.
  const LoadResult result = RunLoad(OpenLoop(200, milliseconds(1000), 1000), SearchText(), runner);
  const KindResult& text = result.kinds[static_cast<int>(RpcKind::kSearchText)];
  EXPECT_EQ(text.calls, 200);
  EXPECT_EQ(text.dropped, 0);
  EXPECT_EQ(text.errors, 0);
  EXPECT_EQ(result.total.calls, 200);
  EXPECT_EQ(text.latencies.count(), 200);
  EXPECT_DOUBLE_EQ(result.seconds, 1.0);
  EXPECT_GE(text.latencies.Summarize().p50_ms, 2.0);  // a call takes at least its sleep
}

TEST(OpenLoopTest, CapsCallsInFlightAndCountsTheRestAsDropped) {
  SleepingRunner runner(milliseconds(100), /*serial=*/false);
  const LoadResult result = RunLoad(OpenLoop(200, milliseconds(1000), 4), SearchText(), runner);
  const KindResult& text = result.kinds[static_cast<int>(RpcKind::kSearchText)];
  EXPECT_LE(runner.max_in_flight(), 4);
  EXPECT_EQ(text.calls + text.dropped, 200) << "every due call is made or dropped";
  // Each of the 4 slots starts at most one call per 100 ms of the 1 s: at most 40 calls.
  EXPECT_LE(text.calls, 40);
  EXPECT_GE(text.calls, 4);
  EXPECT_GE(text.dropped, 160);
  EXPECT_GT(ErrorRate(text), 0);
  ASSERT_EQ(result.timeline.size(), 1u);
  EXPECT_EQ(result.timeline[0].calls, text.calls);
  EXPECT_EQ(result.timeline[0].dropped, text.dropped);
}

TEST(OpenLoopTest, LatencyCountsFromTheDueTimeSoQueueingShows) {
  // 100 calls due over 1 s, each 20 ms on a server that does one at a time: 2 s of work. The
  // call that finishes last (at >= 2 s) was due by 0.99 s, so some latency is >= 1 s — a
  // closed loop, or timing from the send, would report about 20 ms for every call.
  SleepingRunner runner(milliseconds(20), /*serial=*/true);
  const LoadResult result = RunLoad(OpenLoop(100, milliseconds(1000), 1000), SearchText(), runner);
  const KindResult& text = result.kinds[static_cast<int>(RpcKind::kSearchText)];
  EXPECT_EQ(text.calls, 100);
  EXPECT_GE(text.latencies.Summarize().max_ms, 1000);
}

TEST(OpenLoopTest, WarmupCallsAreMadeButNotCounted) {
  SleepingRunner runner(milliseconds(1), /*serial=*/false);
  LoadOptions options = OpenLoop(100, milliseconds(500), 1000);
  options.warmup = milliseconds(500);
  const LoadResult result = RunLoad(options, SearchText(), runner);
  EXPECT_EQ(result.total.calls, 50);  // due at 500, 510, ..., 990 ms
  EXPECT_EQ(result.warmup_calls, 50);
  EXPECT_DOUBLE_EQ(result.seconds, 0.5);
}

TEST(OpenLoopTest, TimelineHasOneEntryPerSecondOfTheWindow) {
  SleepingRunner runner(milliseconds(1), /*serial=*/false);
  LoadOptions options = OpenLoop(50, milliseconds(2000), 1000);
  options.warmup = milliseconds(200);
  const LoadResult result = RunLoad(options, SearchText(), runner);
  ASSERT_EQ(result.timeline.size(), 2u);
  for (const SecondResult& second : result.timeline) {
    EXPECT_EQ(second.calls, 50);  // by due time, so the split is exact
    EXPECT_EQ(second.dropped, 0);
    EXPECT_GE(second.latency_sum_ms, 50.0);
    EXPECT_GE(second.max_latency_ms, 1.0);
  }
}

TEST(ClosedLoopTest, KeepsConcurrencyCallsInFlight) {
  SleepingRunner runner(milliseconds(10), /*serial=*/false);
  LoadOptions options;
  options.concurrency = 3;
  options.duration = milliseconds(500);
  const LoadResult result = RunLoad(options, SearchText(), runner);
  EXPECT_EQ(runner.max_in_flight(), 3);
  // Each thread makes at most one call per 10 ms: at most 3 * 51 in 0.5 s.
  EXPECT_GE(result.total.calls, 3);
  EXPECT_LE(result.total.calls, 153);
  EXPECT_EQ(result.total.dropped, 0);
  EXPECT_EQ(result.max_start_lag_ms, 0);
}

// ScriptedRunner: search-text fails NOT_FOUND, index fails UNAVAILABLE every other call, and
// delete has nothing to do.
class ScriptedRunner final : public CallRunner {
 public:
  CallOutcome Run(RpcKind kind, std::mt19937_64&) override {
    switch (kind) {
      case RpcKind::kSearchText:
        return {true, absl::NotFoundError("collection 'x' not found")};
      case RpcKind::kIndex:
        return {true, ++index_calls_ % 2 == 0 ? absl::UnavailableError("connection reset")
                                              : absl::OkStatus()};
      case RpcKind::kDelete:
        return {false, absl::OkStatus()};
      default:
        return {};
    }
  }

 private:
  std::atomic<int> index_calls_{0};
};

TEST(LoadResultTest, CountsErrorsByCodeAndSkippedCalls) {
  ScriptedRunner runner;
  LoadOptions options = OpenLoop(400, milliseconds(500), 1000);
  const LoadResult result =
      RunLoad(options, *RpcMix::Parse("search-text=1,index=1,delete=1"), runner);
  const KindResult& text = result.kinds[static_cast<int>(RpcKind::kSearchText)];
  const KindResult& index = result.kinds[static_cast<int>(RpcKind::kIndex)];
  const KindResult& del = result.kinds[static_cast<int>(RpcKind::kDelete)];
  EXPECT_EQ(text.calls + index.calls + del.skipped, 200);
  EXPECT_EQ(text.errors, text.calls);
  ASSERT_EQ(text.errors_by_code.count(absl::StatusCode::kNotFound), 1u);
  EXPECT_EQ(text.errors_by_code.at(absl::StatusCode::kNotFound).count, text.calls);
  EXPECT_EQ(text.errors_by_code.at(absl::StatusCode::kNotFound).first_message,
            "collection 'x' not found");
  EXPECT_NEAR(index.errors, index.calls / 2.0, 1.0);
  EXPECT_EQ(del.calls, 0);
  EXPECT_GT(del.skipped, 0);
  EXPECT_EQ(del.latencies.count(), 0) << "a skipped call is not timed";
  EXPECT_EQ(result.total.errors, text.errors + index.errors);
  EXPECT_EQ(result.total.errors_by_code.size(), 2u);
}

// Through the real client and the fake service.
class FakeServiceLoadTest : public ::testing::Test {
 protected:
  FakeServiceLoadTest() {
    client::ClientOptions options;
    options.server = server_.address();
    options.index_timeout = std::chrono::seconds(10);
    client_ = client::RetraceClient::Connect(options);
  }

  std::unique_ptr<BenchCalls> Calls(const RpcMix& mix) {
    BenchCallOptions options;
    options.collection = "c";
    options.images = {"image-1", "image-2"};  // the fake does not decode them
    options.texts = BuiltInTexts();
    options.run_id = "test";
    absl::StatusOr<std::unique_ptr<BenchCalls>> calls =
        BenchCalls::Create(client_.get(), options, mix);
    EXPECT_TRUE(calls.ok()) << calls.status();
    return calls.ok() ? std::move(*calls) : nullptr;
  }

  testing::FakeRetraceServer server_;
  std::unique_ptr<client::RetraceClient> client_;
};

TEST_F(FakeServiceLoadTest, OpenLoopIssuesRateTimesDurationSearches) {
  server_.service().set_search_delay(milliseconds(5));
  std::unique_ptr<BenchCalls> calls = Calls(SearchText());
  ASSERT_NE(calls, nullptr);
  const LoadResult result = RunLoad(OpenLoop(100, milliseconds(1000), 1000), SearchText(), *calls);
  EXPECT_EQ(result.total.calls, 100);
  EXPECT_EQ(result.total.errors, 0);
  EXPECT_EQ(server_.service().searches(), 100);
  EXPECT_GE(result.total.latencies.Summarize().p50_ms, 5.0);
}

TEST_F(FakeServiceLoadTest, OpenLoopNeverHasMoreThanTheCapAtTheServer) {
  server_.service().set_search_delay(milliseconds(200));
  std::unique_ptr<BenchCalls> calls = Calls(SearchText());
  ASSERT_NE(calls, nullptr);
  const LoadResult result = RunLoad(OpenLoop(50, milliseconds(1000), 3), SearchText(), *calls);
  EXPECT_LE(server_.service().max_concurrent_searches(), 3);
  EXPECT_EQ(result.total.calls + result.total.dropped, 50);
  EXPECT_LE(result.total.calls, 15);  // 3 slots, one 200 ms call each at a time, for 1 s
  EXPECT_GT(result.total.dropped, 0);
}

TEST_F(FakeServiceLoadTest, DeletesOnlyWhatTheRunIndexedAndCleansUp) {
  const RpcMix mix = *RpcMix::Parse("search-text=1,index=2,delete=1");
  std::unique_ptr<BenchCalls> calls = Calls(mix);
  ASSERT_NE(calls, nullptr);
  LoadOptions options;
  options.concurrency = 2;
  options.duration = milliseconds(500);
  const LoadResult result = RunLoad(options, mix, *calls);
  EXPECT_EQ(result.total.errors, 0);
  const KindResult& index = result.kinds[static_cast<int>(RpcKind::kIndex)];
  const KindResult& del = result.kinds[static_cast<int>(RpcKind::kDelete)];
  EXPECT_GT(index.calls, 0);
  EXPECT_GT(del.calls, 0);
  const std::vector<std::string> during_load = server_.service().deleted_ids();
  EXPECT_EQ(static_cast<int64_t>(during_load.size()), del.calls);

  absl::StatusOr<int64_t> cleaned = calls->Cleanup();
  ASSERT_TRUE(cleaned.ok()) << cleaned.status();
  const std::vector<std::string> deleted = server_.service().deleted_ids();
  // Warm-up is 0, so every index call was counted: the run deleted each id it stored, once.
  EXPECT_EQ(static_cast<int64_t>(deleted.size()), index.calls);
  EXPECT_EQ(*cleaned + del.calls, index.calls);
  std::vector<std::string> sorted = deleted;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "deleted twice";
  for (const std::string& id : deleted) EXPECT_THAT(id, StartsWith("bench-test-"));
  EXPECT_EQ(*calls->Cleanup(), 0) << "nothing is left to clean up";
}

TEST_F(FakeServiceLoadTest, EmbeddingQueriesNeedTheCollectionsDimension) {
  // The fake's DescribeCollection reports no dimensions.
  BenchCallOptions options;
  options.collection = "c";
  options.texts = BuiltInTexts();
  options.run_id = "test";
  auto calls = BenchCalls::Create(client_.get(), options, *RpcMix::Parse("search-embedding=1"));
  ASSERT_FALSE(calls.ok());
  EXPECT_EQ(calls.status().code(), absl::StatusCode::kFailedPrecondition);
  options.collection = "missing";
  calls = BenchCalls::Create(client_.get(), options, SearchText());
  EXPECT_EQ(calls.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace retrace::bench
