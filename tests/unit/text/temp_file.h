// temp_file.h — a scratch file for the text tests' malformed-input cases.
//
// Thread-safety: one TempFile per test; names include the process id, so tests that ctest
// runs in parallel processes (or other checkouts' test runs) do not collide.
//
//   TempFile merges("bad_merges.txt", "#version: 0.2\nab\n");
//   auto bpe = ByteLevelBpe::Load(vocab_path, merges.path());
#ifndef RETRACE_TESTS_UNIT_TEXT_TEMP_FILE_H_
#define RETRACE_TESTS_UNIT_TEXT_TEMP_FILE_H_

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace retrace::text {

// TempFile writes `contents` to a new file under ::testing::TempDir() and removes it when
// destroyed.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& contents)
      : path_(::testing::TempDir() + "retrace_text_test_" + std::to_string(getpid()) + "_" + name) {
    std::ofstream(path_, std::ios::binary) << contents;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace retrace::text

#endif  // RETRACE_TESTS_UNIT_TEXT_TEMP_FILE_H_
