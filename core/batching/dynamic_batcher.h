// dynamic_batcher.h — groups concurrent requests to one model (or one index) into batches.
//
// Callers on many threads submit inputs; the batcher's thread (or threads) takes them off two
// queues and runs them through a batch function, max_batch_size at a time. It starts a batch as soon as
// max_batch_size inputs wait, or when the oldest waiting input has waited max_queue_delay, so a
// lone request pays at most that delay and a busy server fills its batches (Triton's dynamic
// batcher, in one class). Around that:
//   - Lanes: every batch takes kInteractive inputs (Search) before kBulk ones (Index), so a
//     search never waits behind a backlog of ingest; bulk fills what is left of each batch.
//     The priority is strict: a search load that alone fills every batch starves the bulk lane.
//   - Bounded queues: each lane holds at most max_queue_size inputs; a submission that does not
//     fit is refused whole with RESOURCE_EXHAUSTED, never queued in part.
//   - Deadlines: an input whose deadline has passed when its batch is formed is answered
//     DEADLINE_EXCEEDED and never reaches the batch function.
//   - Keys: inputs submitted with different keys (e.g. other decoding options) never share a
//     batch; a batch takes the key of its first input and leaves the others queued, in order.
// A group of inputs submitted together (an Index request's images) may be split over several
// batches; the caller gets every result at once.
// An adaptive wait (BatcherOptions.adaptive_wait_fraction) lets a thread that frees up wait a
// bounded fraction of its last batch's run time for more inputs, so a slow model's batches fill.
//
// Thread-safety: Submit and Run are safe from any thread. The batch function runs on the
// batcher's own threads only — one batch at a time per thread, `threads` batches at most at
// once — so it may keep per-thread settings (LibTorch intra-op threads, OpenMP); with more than
// one thread it must be safe to call concurrently. The destructor runs every input already
// queued, then joins.
//
//   DynamicBatcher<std::string, int> lengths({.name = "length"}, [](const std::vector<std::string>& in) {
//     std::vector<int> out; for (auto& s : in) out.push_back(s.size()); return out; });
//   absl::StatusOr<std::vector<int>> n = lengths.Run({"a", "bc"}, Lane::kInteractive, deadline);
#ifndef RETRACE_CORE_BATCHING_DYNAMIC_BATCHER_H_
#define RETRACE_CORE_BATCHING_DYNAMIC_BATCHER_H_

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace retrace::batching {

// Lane: which queue an input waits in; every batch drains kInteractive first.
enum class Lane { kInteractive = 0, kBulk = 1 };

inline const char* LaneName(Lane lane) { return lane == Lane::kInteractive ? "interactive" : "bulk"; }

struct BatcherOptions {
  std::string name;                 // names the batcher in errors, e.g. "CLIP image"
  int max_batch_size = 32;          // inputs per batch; >= 1
  // How long the oldest waiting input may wait for a fuller batch. 0: a batch starts with
  // whatever waits when the batcher thread is free (batches still form under load).
  absl::Duration max_queue_delay = absl::Milliseconds(2);
  int max_queue_size = 4096;        // inputs waiting per lane; >= max_batch_size
  // Batches that may run at once, each on its own thread. One suits a model that uses every
  // core for one batch; more suit work that is cheap per input and runs on one core each (an
  // HNSW search), where a batch of one must not wait behind another.
  int threads = 1;
  // Adaptive wait, for a model whose batch takes long enough that concurrent callers fall into
  // groups that take turns (in a closed loop of 32 callers, two halves of 16: while one half
  // runs, the other's answers go back and its next inputs arrive just after the thread has
  // started on what waited). When a thread frees up, it may wait up to
  // min(adaptive_wait_fraction x its last batch's run time, adaptive_wait_max) from that moment
  // for a full batch, even past the oldest input's max_queue_delay. The window is the thread's
  // own and starts when it frees up, so an input that arrives after it (an idle server, a lone
  // caller) waits max_queue_delay only; a thread's first batch, or one after a fast batch, waits
  // (almost) nothing. 0: off.
  double adaptive_wait_fraction = 0;
  absl::Duration adaptive_wait_max = absl::ZeroDuration();
  // Run first on each of the batcher's threads (per-thread settings such as LibTorch's or OpenMP's
  // thread counts); may be null.
  std::function<void()> on_start;
};

// BatcherStats: counters for metrics and tests, since construction.
struct BatcherStats {
  int64_t batches = 0;
  int64_t inputs_run = 0;            // inputs that reached the batch function
  int64_t expired = 0;               // dropped with DEADLINE_EXCEEDED before a batch
  int64_t refused = 0;               // inputs refused with RESOURCE_EXHAUSTED
  int max_batch_seen = 0;
};

template <typename In, typename Out>
class DynamicBatcher {
 public:
  // BatchFn runs one batch: one output per input, in order, or an error for the whole batch
  // (every input of the batch gets it). A result of the wrong size is an INTERNAL error.
  using BatchFn = std::function<absl::StatusOr<std::vector<Out>>(const std::vector<In>& inputs)>;
  // Done receives a group's outputs in submission order, or its first error.
  using Done = std::function<void(absl::StatusOr<std::vector<Out>>)>;

  DynamicBatcher(BatcherOptions options, BatchFn run)
      : options_(std::move(options)), run_(std::move(run)) {
    options_.max_batch_size = std::max(1, options_.max_batch_size);
    options_.max_queue_size = std::max(options_.max_batch_size, options_.max_queue_size);
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      threads_.emplace_back([this] {
        if (options_.on_start) options_.on_start();
        Loop();
      });
    }
  }
  ~DynamicBatcher() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& t : threads_) t.join();
  }
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Submit queues `inputs` as one group in `lane`; `done` is called once, on the batcher's
  // thread, with every output (or the group's first error: DEADLINE_EXCEEDED when `deadline`
  // passed before an input was run, or the batch function's error). Inputs with different
  // `key`s never share a batch. Returns RESOURCE_EXHAUSTED, without queueing anything or calling
  // `done`, when the lane has no room for the whole group; INVALID_ARGUMENT for a group larger
  // than the queue. An empty group is done at once.
  absl::Status Submit(std::vector<In> inputs, Lane lane, absl::Time deadline, std::string key,
                      Done done) {
    if (inputs.empty()) {
      done(std::vector<Out>());
      return absl::OkStatus();
    }
    if (inputs.size() > static_cast<size_t>(options_.max_queue_size)) {
      return absl::InvalidArgumentError(absl::StrCat(
          inputs.size(), " inputs in one call to the ", options_.name,
          " batcher; at most its queue size, ", options_.max_queue_size));
    }
    auto group = std::make_shared<Group>();
    group->outputs.resize(inputs.size());
    group->remaining = inputs.size();
    group->done = std::move(done);
    absl::MutexLock lock(&mu_);
    std::deque<Entry>& queue = queues_[static_cast<int>(lane)];
    if (queue.size() + inputs.size() > static_cast<size_t>(options_.max_queue_size)) {
      stats_.refused += static_cast<int64_t>(inputs.size());
      return absl::ResourceExhaustedError(absl::StrCat(
          "the ", options_.name, " batcher's ", LaneName(lane), " queue is full (",
          queue.size(), " inputs waiting, at most ", options_.max_queue_size,
          "); the server is overloaded, retry with backoff"));
    }
    const absl::Time now = absl::Now();
    for (size_t i = 0; i < inputs.size(); ++i) {
      queue.push_back(Entry{std::move(inputs[i]), group, i, deadline, key, now});
    }
    return absl::OkStatus();
  }

  // Run submits `inputs` and waits for their outputs; errors as for Submit and Done.
  absl::StatusOr<std::vector<Out>> Run(std::vector<In> inputs, Lane lane, absl::Time deadline,
                                       std::string key = "") {
    Waiter waiter;
    absl::Status queued =
        Submit(std::move(inputs), lane, deadline, std::move(key),
               [&waiter](absl::StatusOr<std::vector<Out>> result) { waiter.Set(std::move(result)); });
    if (!queued.ok()) return queued;
    return waiter.Wait();
  }

  // QueueDepth: inputs waiting in `lane` now.
  size_t QueueDepth(Lane lane) const {
    absl::MutexLock lock(&mu_);
    return queues_[static_cast<int>(lane)].size();
  }

  BatcherStats stats() const {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

  const BatcherOptions& options() const { return options_; }

 private:
  // Group: one Submit's inputs. Its fields change under mu_ until its last input is recorded.
  struct Group {
    std::vector<Out> outputs;
    size_t remaining = 0;
    absl::Status error;  // the first failure; the group is done with it
    Done done;
  };
  struct Entry {
    In input;
    std::shared_ptr<Group> group;
    size_t index;  // in its group
    absl::Time deadline;
    std::string key;
    absl::Time enqueued;
  };
  // Waiter hands Run its result across threads (absl::Mutex, which TSan builds annotate;
  // absl::Notification they do not).
  class Waiter {
   public:
    void Set(absl::StatusOr<std::vector<Out>> result) {
      absl::MutexLock lock(&mu_);
      result_ = std::move(result);
      set_ = true;
    }
    absl::StatusOr<std::vector<Out>> Wait() {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&set_));
      return std::move(result_);
    }

   private:
    absl::Mutex mu_;
    bool set_ ABSL_GUARDED_BY(mu_) = false;
    absl::StatusOr<std::vector<Out>> result_ ABSL_GUARDED_BY(mu_);
  };

  size_t Waiting() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queues_[0].size() + queues_[1].size();
  }

  // TakeBatch moves up to max_batch_size live inputs (interactive first, then bulk; the first
  // one's key only) into `batch`, and expired ones into `expired`.
  void TakeBatch(absl::Time now, std::vector<Entry>& batch, std::vector<Entry>& expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string* key = nullptr;
    std::string batch_key;
    for (std::deque<Entry>& queue : queues_) {
      std::deque<Entry> kept;
      while (!queue.empty()) {
        Entry& entry = queue.front();
        if (entry.deadline <= now) {
          expired.push_back(std::move(entry));
        } else if (batch.size() < static_cast<size_t>(options_.max_batch_size) &&
                   (key == nullptr || entry.key == *key)) {
          if (key == nullptr) {
            batch_key = entry.key;
            key = &batch_key;
          }
          batch.push_back(std::move(entry));
        } else if (batch.size() == static_cast<size_t>(options_.max_batch_size) && kept.empty()) {
          break;  // full, and nothing set aside: the rest stays as it is
        } else {
          kept.push_back(std::move(entry));
        }
        queue.pop_front();
      }
      // What was set aside goes back in front, in its order.
      while (!kept.empty()) {
        queue.push_front(std::move(kept.back()));
        kept.pop_back();
      }
    }
  }

  // Record stores an input's output or error in its group and returns the group when that was
  // its last input (the caller then calls Complete, outside the lock). Under mu_ because a group
  // split over batches that run at once is finished from several threads.
  std::shared_ptr<Group> Record(Entry& entry, absl::StatusOr<Out> result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Group& group = *entry.group;
    if (result.ok()) {
      group.outputs[entry.index] = std::move(*result);
    } else if (group.error.ok()) {
      group.error = result.status();
    }
    return --group.remaining == 0 ? entry.group : nullptr;
  }

  static void Complete(Group& group) {
    if (group.error.ok()) {
      group.done(std::move(group.outputs));
    } else {
      group.done(group.error);
    }
  }

  // BatchStart: when a thread that waits for a full batch starts with what waits anyway — the
  // later of the oldest input's max_queue_delay and the thread's adaptive window (which began
  // when it freed up, at `freed`, after a batch that ran for `last_run`).
  absl::Time BatchStart(absl::Time oldest, absl::Time freed, absl::Duration last_run) const {
    const absl::Duration window =
        std::min(options_.adaptive_wait_fraction * last_run, options_.adaptive_wait_max);
    const absl::Time delayed = oldest + options_.max_queue_delay;
    return window > absl::ZeroDuration() ? std::max(delayed, freed + window) : delayed;
  }

  void Loop() {
    absl::Time freed = absl::InfinitePast();  // when this thread's last batch ended
    absl::Duration last_run = absl::ZeroDuration();
    while (true) {
      std::vector<Entry> batch, expired;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](DynamicBatcher* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
              return b->stopping_ || b->Waiting() > 0;
            },
            this));
        if (Waiting() == 0) return;  // stopping, and everything queued has run
        // Wait for a full batch until the oldest input's delay (or this thread's adaptive
        // window) is up, or shutdown.
        absl::Time oldest = absl::InfiniteFuture();
        for (const std::deque<Entry>& queue : queues_) {
          if (!queue.empty()) oldest = std::min(oldest, queue.front().enqueued);
        }
        mu_.AwaitWithDeadline(
            absl::Condition(
                +[](DynamicBatcher* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
                  return b->stopping_ ||
                         b->Waiting() >= static_cast<size_t>(b->options_.max_batch_size);
                },
                this),
            BatchStart(oldest, freed, last_run));
        TakeBatch(absl::Now(), batch, expired);
        stats_.expired += static_cast<int64_t>(expired.size());
        if (!batch.empty()) {
          ++stats_.batches;
          stats_.inputs_run += static_cast<int64_t>(batch.size());
          stats_.max_batch_seen = std::max(stats_.max_batch_seen, static_cast<int>(batch.size()));
        }
      }
      std::vector<std::shared_ptr<Group>> completed;
      if (!expired.empty()) {
        const absl::Status late = absl::DeadlineExceededError(
            absl::StrCat("the deadline passed while waiting for the ", options_.name,
                         " batcher; the work was not run"));
        absl::MutexLock lock(&mu_);
        for (Entry& entry : expired) {
          if (auto group = Record(entry, late)) completed.push_back(std::move(group));
        }
      }
      for (auto& group : completed) Complete(*group);
      if (batch.empty()) continue;
      std::vector<In> inputs;
      inputs.reserve(batch.size());
      for (Entry& entry : batch) inputs.push_back(std::move(entry.input));
      const absl::Time started = absl::Now();
      absl::StatusOr<std::vector<Out>> outputs = run_(inputs);
      freed = absl::Now();
      last_run = freed - started;
      if (outputs.ok() && outputs->size() != batch.size()) {
        outputs = absl::InternalError(absl::StrCat("the ", options_.name, " batch function returned ",
                                                   outputs->size(), " outputs for ", batch.size(),
                                                   " inputs"));
      }
      completed.clear();
      {
        absl::MutexLock lock(&mu_);
        for (size_t i = 0; i < batch.size(); ++i) {
          auto group = outputs.ok() ? Record(batch[i], std::move((*outputs)[i]))
                                    : Record(batch[i], outputs.status());
          if (group) completed.push_back(std::move(group));
        }
      }
      for (auto& group : completed) Complete(*group);
    }
  }

  BatcherOptions options_;
  const BatchFn run_;
  mutable absl::Mutex mu_;
  std::deque<Entry> queues_[2] ABSL_GUARDED_BY(mu_);  // by Lane
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  BatcherStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace retrace::batching

#endif  // RETRACE_CORE_BATCHING_DYNAMIC_BATCHER_H_
