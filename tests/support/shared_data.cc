#include "tests/support/shared_data.h"

#include <cstdlib>
#include <filesystem>

namespace retrace::testing {

std::string SharedDataDir() {
  const char* env = std::getenv("RETRACE_SHARED_DATA");
  return (env != nullptr && *env != '\0') ? std::string(env) : std::string(RETRACE_DEFAULT_SHARED_DATA);
}

std::string SharedDataPath(const std::string& relative) { return SharedDataDir() + "/" + relative; }

std::string SourceDir() { return RETRACE_SOURCE_DIR; }
std::string BinaryDir() { return RETRACE_BINARY_DIR; }

bool PathExists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

}  // namespace retrace::testing
