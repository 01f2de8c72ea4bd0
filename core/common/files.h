// files.h — the POSIX file operations crash-safe snapshots (index shards, item tables) need:
// write-then-rename with fsync, directory fsync, whole-file reads, listing, removal, and zlib's
// CRC-32.
//
// Errors name the path and the OS's reason; errno maps to NOT_FOUND (ENOENT), PERMISSION_DENIED
// (EACCES, EPERM), RESOURCE_EXHAUSTED (ENOSPC, EDQUOT) and INTERNAL (the rest).
// Thread-safety: stateless; concurrent calls on different paths are safe.
//
//   RETRACE_RETURN_IF_ERROR(WriteFileDurably(dir, "MANIFEST", bytes));
//   RETRACE_RETURN_IF_ERROR(SyncDirectory(dir));
#ifndef RETRACE_CORE_COMMON_FILES_H_
#define RETRACE_CORE_COMMON_FILES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace retrace::files {

// kTempSuffix marks a file being written; a crash can leave one behind.
constexpr std::string_view kTempSuffix = ".tmp";

// WriteFileDurably writes `bytes` to dir/name + kTempSuffix, fsyncs and closes it, then renames
// it to dir/name. The directory itself is not fsynced (SyncDirectory, once for many files). On
// failure the temporary file is removed and dir/name is untouched.
absl::Status WriteFileDurably(const std::string& dir, const std::string& name,
                              std::string_view bytes);

// SyncDirectory fsyncs `dir`, making the renames and removals in it durable.
absl::Status SyncDirectory(const std::string& dir);

// CreateDirectory makes `dir` and its missing parents, fsyncing each new entry into its parent;
// OK when it exists already. FAILED_PRECONDITION when `dir` names something else.
absl::Status CreateDirectory(const std::string& dir);

// ReadWholeFile reads `path`. NOT_FOUND when it (or its directory) does not exist.
absl::StatusOr<std::vector<uint8_t>> ReadWholeFile(const std::string& path);

// ListDirectory returns the names of the entries of `dir` ("." and ".." left out).
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);

// RemoveFile unlinks `path`; OK when it does not exist.
absl::Status RemoveFile(const std::string& path);

// Crc32 is zlib's CRC-32 of `bytes` (any size).
uint32_t Crc32(std::string_view bytes);

}  // namespace retrace::files

#endif  // RETRACE_CORE_COMMON_FILES_H_
