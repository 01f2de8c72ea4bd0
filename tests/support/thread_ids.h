// thread_ids.h — the ids of this process's live threads, read from /proc/self/task (Linux), for
// tests that check a component starts no thread per call.
//
// Thread-safety: a plain function; the answer is a snapshot (threads may start or end after).
//
//   const std::set<int> before = retrace::testing::ThreadIds();
//   EXPECT_EQ(retrace::testing::ThreadIds(), before);
#ifndef RETRACE_TESTS_SUPPORT_THREAD_IDS_H_
#define RETRACE_TESTS_SUPPORT_THREAD_IDS_H_

#include <dirent.h>

#include <cstdlib>
#include <set>

namespace retrace::testing {

// ThreadIds lists /proc/self/task; empty if it cannot be read.
inline std::set<int> ThreadIds() {
  std::set<int> ids;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return ids;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ids.insert(std::atoi(entry->d_name));
  }
  closedir(dir);
  return ids;
}

}  // namespace retrace::testing

#endif  // RETRACE_TESTS_SUPPORT_THREAD_IDS_H_
