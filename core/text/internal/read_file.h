// read_file.h — reads a tokenizer data file (gzip-compressed or plain) into memory.
//
// Thread-safety: no shared state; safe for concurrent use.
//
//   RETRACE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, kMaxBytes));
//   std::vector<std::string_view> lines = absl::StrSplit(bytes, '\n');
#ifndef RETRACE_CORE_TEXT_INTERNAL_READ_FILE_H_
#define RETRACE_CORE_TEXT_INTERNAL_READ_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace retrace::text::internal {

// ReadFile returns the contents of `path`, decompressed when it is gzip (zlib's gzread reads
// gzip and plain files alike). Errors: NOT_FOUND when the file does not exist, another
// errno-derived code when it cannot be opened or read, INVALID_ARGUMENT when the gzip stream
// is corrupt or the (decompressed) contents exceed `max_bytes`. Messages name the path.
absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes);

}  // namespace retrace::text::internal

#endif  // RETRACE_CORE_TEXT_INTERNAL_READ_FILE_H_
