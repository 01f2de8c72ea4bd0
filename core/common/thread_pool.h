// thread_pool.h — a fixed set of threads running submitted tasks in FIFO order.
//
// The server runs decode, inference and search here so gRPC's callback threads never block on
// them. The destructor runs every task already submitted, then joins.
//
// Thread-safety: Submit is safe from any thread, including from a task.
//
//   ThreadPool pool(4);
//   pool.Submit([&] { reactor->Finish(Work()); });
#ifndef RETRACE_CORE_COMMON_THREAD_POOL_H_
#define RETRACE_CORE_COMMON_THREAD_POOL_H_

#include <deque>
#include <functional>
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
