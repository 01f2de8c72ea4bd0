// thread_pool.h — a fixed set of threads running submitted tasks in FIFO order.
//
// The server runs decode, inference and search here so gRPC's callback threads never block on
// them. The destructor runs every task already submitted, then joins. ParallelFor spreads a
// loop over the calling thread and some of the pool's threads (ShardedIndex searches its shards
// so).
//
// Thread-safety: Submit and ParallelFor are safe from any thread, including from a task.
//
//   ThreadPool pool(4);
//   pool.Submit([&] { reactor->Finish(Work()); });
#ifndef RETRACE_CORE_COMMON_THREAD_POOL_H_
#define RETRACE_CORE_COMMON_THREAD_POOL_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace retrace {

class ThreadPool {
 public:
  // ThreadPool starts `threads` threads (at least 1); each runs `on_start` first (for
  // per-thread settings such as OpenMP's thread count), when given.
  explicit ThreadPool(int threads, std::function<void()> on_start = nullptr) {
    for (int i = 0; i < (threads < 1 ? 1 : threads); ++i) {
      workers_.emplace_back([this, on_start] {
        if (on_start) on_start();
        Run();
      });
    }
  }
  ~ThreadPool() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& t : workers_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Submit queues `task`. REQUIRES: the pool is not being destroyed.
  void Submit(std::function<void()> task) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(task));
  }

  // ParallelFor calls fn(0), ..., fn(count - 1), each once, and returns when all have returned.
  // The calling thread takes part, with up to `helpers` tasks on this pool (at most one per
  // pool thread, count - 1 in all): each participant runs the next index nobody has taken until
  // none is left. So the call never waits for a task that has not started: with every pool
  // thread busy the caller runs all the indices itself, and a helper that starts after the call
  // returned finds nothing to take and touches only state it shares ownership of. While the call
  // runs, the caller waits only for indices that a helper is running.
  // REQUIRES: fn does not throw and does not wait for other tasks of this pool; the pool is not
  // being destroyed.
  void ParallelFor(size_t count, size_t helpers, const std::function<void(size_t)>& fn) {
    struct Share {
      explicit Share(size_t count) : outstanding(count) {}
      std::atomic<size_t> next{0};  // the next index to take
      absl::Mutex mu;
      size_t outstanding ABSL_GUARDED_BY(mu);  // indices not yet run
    };
    auto share = std::make_shared<Share>(count);
    const std::function<void(size_t)>* body = &fn;
    helpers = std::min({helpers, workers_.size(), count == 0 ? 0 : count - 1});
    for (size_t h = 0; h < helpers; ++h) {
      try {
        Submit([share, count, body] {
          size_t ran = 0;
          // *body is alive while an index below count is outstanding: the caller waits for it.
          for (size_t i; (i = share->next.fetch_add(1)) < count; ++ran) (*body)(i);
          if (ran == 0) return;
          absl::MutexLock lock(&share->mu);
          share->outstanding -= ran;
        });
      } catch (const std::exception&) {  // no memory for the task: the caller does its share
        break;
      }
    }
    size_t ran = 0;
    for (size_t i; (i = share->next.fetch_add(1)) < count; ++ran) fn(i);
    absl::MutexLock lock(&share->mu);
    share->outstanding -= ran;
    share->mu.Await(absl::Condition(
        +[](Share* s) ABSL_SHARED_LOCKS_REQUIRED(s->mu) { return s->outstanding == 0; },
        share.get()));
  }

  // Pending returns how many tasks wait for a thread.
  size_t Pending() const {
    absl::MutexLock lock(&mu_);
    return queue_.size();
  }

 private:
  void Run() {
    while (true) {
      std::function<void()> task;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](ThreadPool* p) ABSL_SHARED_LOCKS_REQUIRED(p->mu_) {
              return p->stopping_ || !p->queue_.empty();
            },
            this));
        if (queue_.empty()) return;  // stopping, and nothing left to run
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace retrace

#endif  // RETRACE_CORE_COMMON_THREAD_POOL_H_
