// ThreadPool: every submitted task runs once, from any submitting thread, including tasks that
// submit tasks; the destructor runs what is still queued. Run under TSan by `make test-tsan`.
#include "core/common/thread_pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace retrace
