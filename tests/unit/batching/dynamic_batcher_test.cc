#include "core/batching/dynamic_batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace retrace::batching {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Recorder is a batch function that records every batch it is given and doubles each input.
// While its gate is closed, the first batch blocks inside the function, so a test can queue
// more work behind it and know exactly what waits when the gate opens.
class Recorder {
 public:
  absl::StatusOr<std::vector<int>> operator()(const std::vector<int>& inputs) {
    absl::MutexLock lock(&mu_);
    batches_.push_back(inputs);
    ++entered_;
    changed_.SignalAll();
    mu_.Await(absl::Condition(&open_));
    std::vector<int> out;
    for (int x : inputs) out.push_back(2 * x);
    return out;
  }
  void WaitUntilEntered(int n) {
    absl::MutexLock lock(&mu_);
    while (entered_ < n) changed_.Wait(&mu_);
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  std::vector<std::vector<int>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

 private:
  absl::Mutex mu_;
  absl::CondVar changed_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::vector<int>> batches_ ABSL_GUARDED_BY(mu_);
};

// Results collects Submit's callbacks.
class Results {
 public:
  DynamicBatcher<int, int>::Done Callback(int tag) {
    return [this, tag](absl::StatusOr<std::vector<int>> r) {
      absl::MutexLock lock(&mu_);
      results_.emplace_back(tag, std::move(r));
      changed_.SignalAll();
    };
  }
  void WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    while (results_.size() < n) changed_.Wait(&mu_);
  }
  std::vector<std::pair<int, absl::StatusOr<std::vector<int>>>> Get() {
    absl::MutexLock lock(&mu_);
    return results_;
  }

 private:
  absl::Mutex mu_;
  absl::CondVar changed_;
  std::vector<std::pair<int, absl::StatusOr<std::vector<int>>>> results_ ABSL_GUARDED_BY(mu_);
};

BatcherOptions Options(int max_batch, absl::Duration delay = absl::ZeroDuration(),
                       int max_queue = 1024) {
  BatcherOptions o;
  o.name = "test model";
  o.max_batch_size = max_batch;
  o.max_queue_delay = delay;
  o.max_queue_size = max_queue;
  return o;
}

const absl::Time kNoDeadline = absl::InfiniteFuture();

// SubmitOk submits a group whose outputs `results` collects under `tag`.
void SubmitOk(DynamicBatcher<int, int>& b, std::vector<int> inputs, Lane lane, Results& results,
              int tag, std::string key = "") {
  ASSERT_TRUE(b.Submit(std::move(inputs), lane, kNoDeadline, std::move(key), results.Callback(tag))
                  .ok());
}

TEST(DynamicBatcherTest, ConcurrentRequestsQueuedBehindABatchRunAsOneBatch) {
  Recorder recorder;
  Results results;
  {
    DynamicBatcher<int, int> b(Options(8), std::ref(recorder));
    SubmitOk(b, {1}, Lane::kInteractive, results, 0);
    recorder.WaitUntilEntered(1);
    for (int i = 2; i <= 9; ++i) SubmitOk(b, {i}, Lane::kInteractive, results, i);
    recorder.Open();
    results.WaitFor(9);
  }
  EXPECT_THAT(recorder.batches(), ElementsAre(ElementsAre(1), ElementsAre(2, 3, 4, 5, 6, 7, 8, 9)));
  for (auto& [tag, r] : results.Get()) {
    ASSERT_TRUE(r.ok()) << tag;
    EXPECT_EQ((*r)[0], 2 * (tag == 0 ? 1 : tag));
  }
}

TEST(DynamicBatcherTest, BatchesAreCappedAtMaxBatchSize) {
  Recorder recorder;
  Results results;
  {
    DynamicBatcher<int, int> b(Options(4), std::ref(recorder));
    SubmitOk(b, {0}, Lane::kInteractive, results, 0);
    recorder.WaitUntilEntered(1);
    for (int i = 1; i <= 10; ++i) SubmitOk(b, {i}, Lane::kInteractive, results, i);
    recorder.Open();
    results.WaitFor(11);
  }
  EXPECT_THAT(recorder.batches(), ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3, 4),
                                              ElementsAre(5, 6, 7, 8), ElementsAre(9, 10)));
}

TEST(DynamicBatcherTest, TheQueueDelayWaitsForAFullBatch) {
  // With a delay far longer than the test, the batch can only start because it became full.
  Recorder recorder;
  recorder.Open();
  Results results;
  DynamicBatcher<int, int> b(Options(4, absl::Hours(1)), std::ref(recorder));
  SubmitOk(b, {1}, Lane::kInteractive, results, 1);
  SubmitOk(b, {2, 3}, Lane::kBulk, results, 2);
  SubmitOk(b, {4}, Lane::kInteractive, results, 4);
  results.WaitFor(3);
  EXPECT_THAT(recorder.batches(), ElementsAre(ElementsAre(1, 4, 2, 3)));
}

TEST(DynamicBatcherTest, ALoneRequestRunsWhenItsDelayIsUp) {
  Recorder recorder;
  recorder.Open();
  DynamicBatcher<int, int> b(Options(64, absl::Milliseconds(5)), std::ref(recorder));
  absl::StatusOr<std::vector<int>> r = b.Run({21}, Lane::kInteractive, kNoDeadline);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre(42));
  EXPECT_THAT(recorder.batches(), ElementsAre(ElementsAre(21)));
}

TEST(DynamicBatcherTest, InteractiveInputsGoFirstAndBulkFillsTheRest) {
  Recorder recorder;
  Results results;
  {
    DynamicBatcher<int, int> b(Options(3), std::ref(recorder));
    SubmitOk(b, {0}, Lane::kBulk, results, 0);
    recorder.WaitUntilEntered(1);
    SubmitOk(b, {101, 102, 103, 104}, Lane::kBulk, results, 100);  // queued first ...
    SubmitOk(b, {1}, Lane::kInteractive, results, 1);               // ... but served first
    SubmitOk(b, {2}, Lane::kInteractive, results, 2);
    recorder.Open();
    results.WaitFor(4);
  }
  EXPECT_THAT(recorder.batches(), ElementsAre(ElementsAre(0), ElementsAre(1, 2, 101),
                                              ElementsAre(102, 103, 104)));
  for (auto& [tag, r] : results.Get()) {
    ASSERT_TRUE(r.ok());
    if (tag == 100) {
      EXPECT_THAT(*r, ElementsAre(202, 204, 206, 208));  // a split group, in order
    }
  }
}

TEST(DynamicBatcherTest, WorkWhoseDeadlinePassedIsDroppedBeforeInference) {
  Recorder recorder;
  Results results;
  {
    DynamicBatcher<int, int> b(Options(8), std::ref(recorder));
    // Already expired: never run.
    absl::StatusOr<std::vector<int>> late =
        b.Run({7}, Lane::kInteractive, absl::Now() - absl::Seconds(1));
    EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_THAT(late.status().message(), HasSubstr("test model batcher"));

    // Expires while queued behind a running batch.
    SubmitOk(b, {1}, Lane::kInteractive, results, 1);
    recorder.WaitUntilEntered(1);
    const absl::Time soon = absl::Now() + absl::Milliseconds(20);
    ASSERT_TRUE(b.Submit({2}, Lane::kInteractive, soon, "", results.Callback(2)).ok());
    SubmitOk(b, {3}, Lane::kBulk, results, 3);
    absl::SleepFor(soon - absl::Now() + absl::Milliseconds(5));
    recorder.Open();
    results.WaitFor(3);
    EXPECT_EQ(b.stats().expired, 2);
  }
  EXPECT_THAT(recorder.batches(), ElementsAre(ElementsAre(1), ElementsAre(3)));
  for (auto& [tag, r] : results.Get()) {
    EXPECT_EQ(r.ok(), tag != 2) << tag;
    if (tag == 2) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
    }
  }
}

TEST(DynamicBatcherTest, AFullLaneRefusesTheWholeGroupAndKeepsWhatWaits) {
  Recorder recorder;
  Results results;
  {
    DynamicBatcher<int, int> b(Options(2, absl::ZeroDuration(), 4), std::ref(recorder));
    SubmitOk(b, {0}, Lane::kBulk, results, 0);
    recorder.WaitUntilEntered(1);
    SubmitOk(b, {1, 2, 3}, Lane::kBulk, results, 1);
    absl::Status refused = b.Submit({4, 5}, Lane::kBulk, kNoDeadline, "", results.Callback(4));
    EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(refused.message(), HasSubstr("test model batcher's bulk queue is full"));
    EXPECT_EQ(b.QueueDepth(Lane::kBulk), 3u);  // nothing of the refused group was queued
    // The interactive lane has its own bound.
    SubmitOk(b, {6, 7}, Lane::kInteractive, results, 6);
    EXPECT_EQ(b.Submit(std::vector<int>(5, 1), Lane::kInteractive, kNoDeadline, "", nullptr).code(),
              absl::StatusCode::kInvalidArgument);  // larger than the queue itself
    EXPECT_EQ(b.stats().refused, 2);
    recorder.Open();
    results.WaitFor(3);
  }
  for (auto& [tag, r] : results.Get()) {
    EXPECT_NE(tag, 4) << "a refused group's callback must not be called";
    EXPECT_TRUE(r.ok());
  }
}

TEST(DynamicBatcherTest, InputsWithDifferentKeysNeverShareABatch) {
  Recorder recorder;
  Results results;
  {
    DynamicBatcher<int, int> b(Options(8), std::ref(recorder));
    SubmitOk(b, {0}, Lane::kInteractive, results, 0, "a");
    recorder.WaitUntilEntered(1);
    SubmitOk(b, {1}, Lane::kInteractive, results, 1, "a");
    SubmitOk(b, {2}, Lane::kInteractive, results, 2, "b");
    SubmitOk(b, {3}, Lane::kInteractive, results, 3, "a");
    SubmitOk(b, {4}, Lane::kBulk, results, 4, "b");
    SubmitOk(b, {5}, Lane::kBulk, results, 5, "a");
    recorder.Open();
    results.WaitFor(6);
  }
  EXPECT_THAT(recorder.batches(),
              ElementsAre(ElementsAre(0), ElementsAre(1, 3, 5), ElementsAre(2, 4)));
}

TEST(DynamicBatcherTest, ABatchFunctionErrorFailsEveryInputOfThatBatchOnly) {
  std::atomic<int> calls{0};
  DynamicBatcher<int, int> b(Options(1), [&](const std::vector<int>& in)
                                             -> absl::StatusOr<std::vector<int>> {
    ++calls;
    if (in[0] < 0) return absl::InternalError("negative input");
    if (in[0] == 0) return std::vector<int>{1, 2};  // wrong size
    return std::vector<int>{in[0]};
  });
  EXPECT_EQ(b.Run({-1}, Lane::kInteractive, kNoDeadline).status().message(), "negative input");
  absl::Status wrong = b.Run({0}, Lane::kInteractive, kNoDeadline).status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(wrong.message(), HasSubstr("returned 2 outputs for 1 inputs"));
  // A group with one failing input gets the error; the batcher goes on.
  EXPECT_FALSE(b.Run({3, -3, 4}, Lane::kBulk, kNoDeadline).ok());
  EXPECT_THAT(*b.Run({5}, Lane::kBulk, kNoDeadline), ElementsAre(5));
}

TEST(DynamicBatcherTest, TheDestructorRunsEverythingQueued) {
  Recorder recorder;
  recorder.Open();
  Results results;
  {
    DynamicBatcher<int, int> b(Options(4, absl::Hours(1)), std::ref(recorder));
    for (int i = 0; i < 3; ++i) SubmitOk(b, {i}, Lane::kBulk, results, i);
  }  // the hour-long delay is cut short by shutdown
  auto done = results.Get();
  ASSERT_EQ(done.size(), 3u);
  for (auto& [tag, r] : done) EXPECT_TRUE(r.ok());
}

TEST(DynamicBatcherTest, WithTwoThreadsABatchDoesNotWaitBehindARunningOne) {
  absl::Mutex mu;
  bool open = false;
  BatcherOptions options = Options(1);
  options.threads = 2;
  Results results;
  {
    DynamicBatcher<int, int> b(options, [&](const std::vector<int>& in)
                                            -> absl::StatusOr<std::vector<int>> {
      if (in[0] == 0) {  // input 0 holds its thread until the test opens the gate
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(&open));
      }
      return std::vector<int>{in[0] + 100};
    });
    SubmitOk(b, {0}, Lane::kInteractive, results, 0);
    // Runs on the second thread while the first is held; a group split over both threads.
    absl::StatusOr<std::vector<int>> r = b.Run({1, 2, 3}, Lane::kBulk, kNoDeadline);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_THAT(*r, ElementsAre(101, 102, 103));
    EXPECT_TRUE(results.Get().empty());  // input 0 still runs
    {
      absl::MutexLock lock(&mu);
      open = true;
    }
    results.WaitFor(1);
  }
  ASSERT_EQ(results.Get().size(), 1u);
  EXPECT_THAT(*results.Get()[0].second, ElementsAre(100));
}

TEST(DynamicBatcherTest, GroupsSplitOverConcurrentBatchesKeepTheirOrder) {
  BatcherOptions options = Options(3);
  options.threads = 3;
  DynamicBatcher<int, int> b(options, [](const std::vector<int>& in)
                                          -> absl::StatusOr<std::vector<int>> {
    std::vector<int> out;
    for (int x : in) out.push_back(-x);
    return out;
  });
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < 100; ++c) {
        std::vector<int> in;
        for (int i = 0; i < 1 + (t + c) % 7; ++i) in.push_back(t * 100000 + c * 10 + i);
        auto r = b.Run(in, t % 2 ? Lane::kBulk : Lane::kInteractive, kNoDeadline);
        if (!r.ok() || r->size() != in.size()) {
          ++wrong;
          continue;
        }
        for (size_t i = 0; i < in.size(); ++i) {
          if ((*r)[i] != -in[i]) ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(DynamicBatcherTest, AnEmptyGroupIsDoneAtOnce) {
  Recorder recorder;
  DynamicBatcher<int, int> b(Options(4), std::ref(recorder));
  absl::StatusOr<std::vector<int>> r = b.Run({}, Lane::kInteractive, kNoDeadline);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  EXPECT_TRUE(recorder.batches().empty());
}

TEST(DynamicBatcherTest, ManyThreadsGetTheirOwnResults) {
  std::atomic<int> in_flight{0}, overlap{0};
  DynamicBatcher<int, int> b(Options(16, absl::Microseconds(200)),
                             [&](const std::vector<int>& in) -> absl::StatusOr<std::vector<int>> {
                               if (++in_flight > 1) ++overlap;  // one batch at a time
                               std::vector<int> out;
                               for (int x : in) out.push_back(x * 3 + 1);
                               --in_flight;
                               return out;
                             });
  constexpr int kThreads = 8, kCalls = 200;
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        const int x = t * 1000 + c;
        const Lane lane = c % 3 == 0 ? Lane::kBulk : Lane::kInteractive;
        auto r = b.Run({x, x + 1}, lane, kNoDeadline, c % 2 ? "odd" : "even");
        if (!r.ok() || (*r)[0] != x * 3 + 1 || (*r)[1] != (x + 1) * 3 + 1) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(overlap.load(), 0);
  const BatcherStats stats = b.stats();
  EXPECT_EQ(stats.inputs_run, 2 * kThreads * kCalls);
  EXPECT_LE(stats.max_batch_seen, 16);
}

// AdaptiveOptions: no queue delay, and an adaptive window of `fraction` x the last batch's run
// time, at most `max`. A fraction of 1e9 makes any batch's window longer than the test (a run of
// one microsecond gives over 16 minutes) unless `max` bounds it.
BatcherOptions AdaptiveOptions(int max_batch, double fraction, absl::Duration max) {
  BatcherOptions o = Options(max_batch);
  o.adaptive_wait_fraction = fraction;
  o.adaptive_wait_max = max;
  return o;
}

// HoldFirstThenQueue runs input 1 as a batch held inside the batch function, queues `behind`
// (one group per input) while it runs, then lets it finish: the thread frees up with those
// inputs waiting.
void HoldFirstThenQueue(DynamicBatcher<int, int>& b, Recorder& recorder, Results& results,
                        const std::vector<int>& behind) {
  SubmitOk(b, {1}, Lane::kInteractive, results, 1);
  recorder.WaitUntilEntered(1);
  for (int x : behind) SubmitOk(b, {x}, Lane::kInteractive, results, x);
  recorder.Open();
}

TEST(DynamicBatcherTest, TheAdaptiveWaitMergesInputsThatArriveWithinItsWindow) {
  Recorder recorder;
  Results results;
  {
    DynamicBatcher<int, int> b(AdaptiveOptions(4, 1e9, absl::Hours(1)), std::ref(recorder));
    HoldFirstThenQueue(b, recorder, results, {2});
    results.WaitFor(1);  // the thread has freed up, with input 2 waiting
    // Without the window, input 2 would run alone at once (no queue delay). With it, the thread
    // waits for a full batch: however long this pause, input 2 has not run.
    absl::SleepFor(absl::Milliseconds(50));
    EXPECT_EQ(recorder.batches().size(), 1u) << "input 2 ran alone instead of waiting";
    for (int x : {3, 4, 5}) SubmitOk(b, {x}, Lane::kInteractive, results, x);
    results.WaitFor(5);
  }
  EXPECT_THAT(recorder.batches(), ElementsAre(ElementsAre(1), ElementsAre(2, 3, 4, 5)));
  for (auto& [tag, r] : results.Get()) {
    ASSERT_TRUE(r.ok()) << tag;
    EXPECT_THAT(*r, ElementsAre(2 * tag));
  }
}

TEST(DynamicBatcherTest, TheAdaptiveWaitNeverExceedsItsCap) {
  // The fraction alone would hold input 2 for longer than the test; the 1 ms cap ends the wait,
  // and the batch runs with what waits.
  Recorder recorder;
  Results results;
  {
    DynamicBatcher<int, int> b(AdaptiveOptions(64, 1e9, absl::Milliseconds(1)),
                               std::ref(recorder));
    HoldFirstThenQueue(b, recorder, results, {2});
    results.WaitFor(2);
  }
  EXPECT_THAT(recorder.batches(), ElementsAre(ElementsAre(1), ElementsAre(2)));
}

TEST(DynamicBatcherTest, TheAdaptiveWaitIsOffAtAZeroFractionOrCap) {
  for (const auto& [fraction, max] :
       {std::pair{0.0, absl::Hours(1)}, std::pair{1e9, absl::ZeroDuration()}}) {
    Recorder recorder;
    Results results;
    {
      DynamicBatcher<int, int> b(AdaptiveOptions(64, fraction, max), std::ref(recorder));
      HoldFirstThenQueue(b, recorder, results, {2});
      results.WaitFor(2);  // input 2 runs without waiting for a fuller batch
    }
    EXPECT_THAT(recorder.batches(), ElementsAre(ElementsAre(1), ElementsAre(2)))
        << fraction << " " << max;
  }
}

TEST(DynamicBatcherTest, AThreadsFirstBatchPaysNoAdaptiveWait) {
  // No batch has run, so there is no window: a lone call runs at once.
  Recorder recorder;
  recorder.Open();
  DynamicBatcher<int, int> b(AdaptiveOptions(64, 1e9, absl::Hours(1)), std::ref(recorder));
  absl::StatusOr<std::vector<int>> r = b.Run({21}, Lane::kInteractive, kNoDeadline);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre(42));
}

TEST(DynamicBatcherTest, ConcurrentBatchesWithAnAdaptiveWaitGiveEveryCallerItsOwnOutputs) {
  // Two threads, each batch held until the other thread is running one too, so batches do
  // overlap; every caller must still get its own outputs.
  absl::Mutex mu;
  int running = 0, overlapped = 0;
  BatcherOptions options = AdaptiveOptions(4, 0.5, absl::Milliseconds(1));
  options.threads = 2;
  DynamicBatcher<int, int> b(options, [&](const std::vector<int>& in)
                                          -> absl::StatusOr<std::vector<int>> {
    {
      absl::MutexLock lock(&mu);
      ++running;
      if (running == 2) ++overlapped;
      // The first batch waits until another overlaps it; afterwards a batch runs alone when no
      // other does. It waits for the overlap to have happened, not for `running == 2` now: the
      // other batch may end before this one re-takes the lock, and would leave it waiting.
      if (overlapped == 0) mu.Await(absl::Condition(+[](int* n) { return *n > 0; }, &overlapped));
    }
    std::vector<int> out;
    for (int x : in) out.push_back(x * 7 - 1);
    absl::MutexLock lock(&mu);
    --running;
    return out;
  });
  constexpr int kThreads = 8, kCalls = 100;
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        std::vector<int> in;
        for (int i = 0; i < 1 + (t + c) % 3; ++i) in.push_back(t * 100000 + c * 10 + i);
        auto r = b.Run(in, Lane::kInteractive, kNoDeadline);
        if (!r.ok() || r->size() != in.size()) {
          ++wrong;
          continue;
        }
        for (size_t i = 0; i < in.size(); ++i) {
          if ((*r)[i] != in[i] * 7 - 1) ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  absl::MutexLock lock(&mu);
  EXPECT_GE(overlapped, 1);
}

}  // namespace
}  // namespace retrace::batching
