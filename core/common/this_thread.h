// this_thread.h — what a thread says about itself to the operating system: its name (top -H,
// perf, /proc/PID/task/TID/comm) and how much lower than its process it runs (its nice value).
//
// The server names each of its threads by what it does (the worker pools, each batcher) and runs
// the bulk lane's threads at a higher nice value, so that on a saturated machine the kernel runs
// a search before ingest (ServerConfig.threads.bulk_nice).
//
// Thread-safety: each function acts on the calling thread only.
//
//   ThreadPool pool(4, [] { NameThisThread("retrace-index"); LowerThisThreadPriority(10); });
#ifndef RETRACE_CORE_COMMON_THIS_THREAD_H_
#define RETRACE_CORE_COMMON_THIS_THREAD_H_

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace retrace {

// NameThisThread sets the calling thread's name; Linux keeps the first 15 bytes.
inline void NameThisThread(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

// LowerThisThreadPriority raises the calling thread's nice value by `by` (capped at 19). Only
// ever lower: going back up needs CAP_SYS_NICE, which a server in a container does not have.
// Returns false when the kernel refused (the thread then runs as before).
inline bool LowerThisThreadPriority(int by) {
  if (by <= 0) return true;
  // On Linux, PRIO_PROCESS with a thread id acts on that thread alone.
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int now = getpriority(PRIO_PROCESS, tid);
  if (errno != 0) return false;
  return setpriority(PRIO_PROCESS, tid, std::min(19, now + by)) == 0;
}

}  // namespace retrace

#endif  // RETRACE_CORE_COMMON_THIS_THREAD_H_
