// shared_data.h — where tests find ../shared/data (tokenizer goldens, pacs-mini).
//
// The directory is $RETRACE_SHARED_DATA when set, else ../shared/data beside the checkout.
// A test that needs it calls RETRACE_REQUIRE_SHARED_DATA(sub) first: it skips with a message
// naming the missing path instead of failing on a machine without ../shared.
//
//   RETRACE_REQUIRE_SHARED_DATA("clip/tokenizer_golden.jsonl");
//   std::string path = retrace::testing::SharedDataPath("clip/tokenizer_golden.jsonl");
#ifndef RETRACE_TESTS_SUPPORT_SHARED_DATA_H_
#define RETRACE_TESTS_SUPPORT_SHARED_DATA_H_

#include <string>

#include "gtest/gtest.h"

namespace retrace::testing {

// SharedDataDir returns the shared data directory (it may not exist).
std::string SharedDataDir();

// SharedDataPath returns SharedDataDir() + "/" + relative.
std::string SharedDataPath(const std::string& relative);

// SourceDir and BinaryDir return the repository root and the CMake build directory.
std::string SourceDir();
std::string BinaryDir();

}  // namespace retrace::testing

#define RETRACE_REQUIRE_SHARED_DATA(relative)                                            \
  do {                                                                                   \
    const std::string retrace_path_ = ::retrace::testing::SharedDataPath(relative);      \
    if (!::retrace::testing::PathExists(retrace_path_)) {                                \
      GTEST_SKIP() << "shared test data not found at " << retrace_path_                  \
                   << " (set RETRACE_SHARED_DATA to the shared/data directory)";        \
    }                                                                                    \
  } while (0)

namespace retrace::testing {
bool PathExists(const std::string& path);
}  // namespace retrace::testing

#endif  // RETRACE_TESTS_SUPPORT_SHARED_DATA_H_
