// fuzz_support.h — what the libFuzzer targets in fuzz/ share: a check that stops the run with a
// message (libFuzzer then saves the input as a crash), and where ../shared/data is.
//
// A failed RETRACE_FUZZ_CHECK is a bug in retrace, not in the input: every input is legal for
// the functions under test, and their contracts say what they return for it.
//
// Thread-safety: libFuzzer calls a target from one thread; these helpers keep no state.
//
//   RETRACE_FUZZ_CHECK(ids.size() == 77, absl::StrCat("Tokenize gave ", ids.size(), " ids"));
//   std::string merges = retrace::fuzz::SharedDataPath("clip/bpe_simple_vocab_16e6.txt.gz");
#ifndef RETRACE_FUZZ_FUZZ_SUPPORT_H_
#define RETRACE_FUZZ_FUZZ_SUPPORT_H_

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace retrace::fuzz {

// Fail prints what broke and aborts, which libFuzzer reports as a crash with the input saved.
[[noreturn]] inline void Fail(const char* file, int line, const char* condition,
                              const std::string& message) {
  std::fprintf(stderr, "%s:%d: RETRACE_FUZZ_CHECK(%s) failed: %s\n", file, line, condition,
               message.c_str());
  std::abort();
}

// SharedDataPath returns $RETRACE_SHARED_DATA/relative, else ../shared/data beside the
// checkout (RETRACE_DEFAULT_SHARED_DATA, set by fuzz/CMakeLists.txt) + "/" + relative.
inline std::string SharedDataPath(const std::string& relative) {
  const char* env = std::getenv("RETRACE_SHARED_DATA");
  const std::string dir = env != nullptr && *env != '\0' ? env : RETRACE_DEFAULT_SHARED_DATA;
  return dir + "/" + relative;
}

// RequireFile exits the process (status 2, before any input runs) with a message naming
// `path` and the way to point at the data, when `path` does not exist.
inline void RequireFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) return;
  std::fprintf(stderr,
               "retrace fuzzer: shared test data not found at %s\n"
               "  set RETRACE_SHARED_DATA to the shared/data directory (see fuzz/README.md)\n",
               path.c_str());
  std::exit(2);
}

}  // namespace retrace::fuzz

// RETRACE_FUZZ_CHECK(condition, message): `message` (a std::string) is built only on failure.
#define RETRACE_FUZZ_CHECK(condition, message)                          \
  do {                                                                  \
    if (!(condition)) {                                                 \
      ::retrace::fuzz::Fail(__FILE__, __LINE__, #condition, (message)); \
    }                                                                   \
  } while (0)

#endif  // RETRACE_FUZZ_FUZZ_SUPPORT_H_
