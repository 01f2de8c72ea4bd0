// ThreadPool: every submitted task runs once, from any submitting thread, including tasks that
// submit tasks; the destructor runs what is still queued. ParallelFor runs each index once, on the
// caller and the pool's threads, finishes without them when they are busy, and starts no thread
// per call. Run under TSan by `make test-tsan`.
#include "core/common/thread_pool.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/support/thread_ids.h"

namespace retrace {
namespace {

TEST(ThreadPoolTest, TasksFromManyThreadsAllRunOnce) {
  constexpr int kSubmitters = 4;
  constexpr int kTasksEach = 500;
  std::vector<int> runs(kSubmitters * kTasksEach, 0);  // each slot written by one task only
  absl::Mutex mu;
  int finished = 0;
  {
    ThreadPool pool(3);
    std::vector<std::thread> submitters;
    for (int s = 0; s < kSubmitters; ++s) {
      submitters.emplace_back([&, s] {
        for (int i = 0; i < kTasksEach; ++i) {
          pool.Submit([&, slot = s * kTasksEach + i] {
            ++runs[slot];
            absl::MutexLock lock(&mu);
            ++finished;
          });
        }
      });
    }
    for (std::thread& t : submitters) t.join();
  }  // the destructor runs what is left, then joins
  EXPECT_EQ(finished, kSubmitters * kTasksEach);
  for (int r : runs) ASSERT_EQ(r, 1);
}

TEST(ThreadPoolTest, TasksMaySubmitTasks) {
  absl::Mutex mu;
  int depth = 0;
  ThreadPool pool(2);
  std::function<void()> step = [&] {
    absl::MutexLock lock(&mu);
    if (++depth < 200) pool.Submit(step);
  };
  pool.Submit(step);
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(+[](int* d) { return *d == 200; }, &depth));
}

TEST(ThreadPoolTest, DestructorRunsQueuedTasks) {
  absl::Mutex mu;
  bool release = false;
  std::atomic<int> ran{0};
  {
    ThreadPool pool(1);
    pool.Submit([&] {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(&release));
    });
    for (int i = 0; i < 100; ++i) pool.Submit([&] { ran.fetch_add(1); });
    EXPECT_GE(pool.Pending(), 1u);
    absl::MutexLock lock(&mu);
    release = true;
  }
  EXPECT_EQ(ran.load(), 100);
}

TEST(ThreadPoolTest, OnStartRunsOnEveryThread) {
  std::atomic<int> started{0};
  { ThreadPool pool(4, [&] { started.fetch_add(1); }); }
  EXPECT_EQ(started.load(), 4);
}

// Four threads each run ParallelFor over 0..count-1 for many counts, all on one pool: every
// index of every call runs exactly once, and the call returns only after all of them have.
TEST(ThreadPoolTest, ParallelForRunsEveryIndexOnce) {
  ThreadPool pool(3);
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&, c] {
      for (size_t count = 0; count < 60; ++count) {
        std::vector<std::atomic<int>> runs(count);
        pool.ParallelFor(count, /*helpers=*/static_cast<size_t>(c) + count % 4,
                         [&](size_t i) { runs[i].fetch_add(1); });
        for (const std::atomic<int>& r : runs) {
          if (r.load() != 1) wrong.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

// Index 0 does not return until index 1 has started: only a helper on the pool, running beside
// the caller, lets the call finish (run alone, the caller would wait on itself for ever).
TEST(ThreadPoolTest, ParallelForHelpersRunBesideTheCaller) {
  ThreadPool pool(1);
  absl::Mutex mu;
  int started = 0;
  pool.ParallelFor(2, 1, [&](size_t) {
    absl::MutexLock lock(&mu);
    ++started;
    mu.Await(absl::Condition(+[](int* s) { return *s == 2; }, &started));
  });
  EXPECT_EQ(started, 2);
}

// With both pool threads held by other work, ParallelFor runs every index on the calling thread
// and returns; its helper tasks run later, find nothing left and change nothing.
TEST(ThreadPoolTest, ParallelForFinishesOnTheCallerWhenThePoolIsBusy) {
  absl::Mutex mu;
  int holding = 0;
  bool release = false;
  std::atomic<int> runs{0};
  std::atomic<int> off_caller{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 2; ++i) {
      pool.Submit([&] {
        absl::MutexLock lock(&mu);
        ++holding;
        mu.Await(absl::Condition(&release));
      });
    }
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(+[](int* h) { return *h == 2; }, &holding));
    }
    const std::thread::id caller = std::this_thread::get_id();
    pool.ParallelFor(100, 2, [&](size_t) {
      runs.fetch_add(1);
      if (std::this_thread::get_id() != caller) off_caller.fetch_add(1);
    });
    EXPECT_EQ(runs.load(), 100);
    EXPECT_EQ(off_caller.load(), 0);
    EXPECT_EQ(pool.Pending(), 2u);  // the two helpers, queued behind the held threads
    absl::MutexLock lock(&mu);
    release = true;
  }  // the helpers run here, after their call returned
  EXPECT_EQ(runs.load(), 100);
}

// 1,000 ParallelFor calls start no thread (the set of live threads is the same before and after,
// and while they run no thread outside it appears); destroying the idle pool ends its threads.
TEST(ThreadPoolTest, ParallelForStartsNoThreadPerCall) {
  const std::set<int> without_pool = testing::ThreadIds();
  ASSERT_FALSE(without_pool.empty());
  {
    ThreadPool pool(3);
    std::atomic<int> ran{0};
    pool.ParallelFor(3, 2, [&](size_t) { ran.fetch_add(1); });  // the pool's threads are up
    const std::set<int> with_pool = testing::ThreadIds();
    EXPECT_EQ(with_pool.size(), without_pool.size() + 3);
    std::set<int> seen;
    for (int call = 0; call < 1000; ++call) {
      pool.ParallelFor(8, 3, [&](size_t i) {
        ran.fetch_add(1);
        if (i == 0 && call % 50 == 0) {
          const std::set<int> now = testing::ThreadIds();
          seen.insert(now.begin(), now.end());  // index 0 runs on one thread per call
        }
      });
    }
    EXPECT_EQ(ran.load(), 3 + 1000 * 8);
    EXPECT_EQ(testing::ThreadIds(), with_pool);
    for (int id : seen) EXPECT_TRUE(with_pool.count(id)) << "thread " << id << " appeared";
  }
  EXPECT_EQ(testing::ThreadIds(), without_pool);
}

}  // namespace
}  // namespace retrace
