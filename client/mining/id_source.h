// id_source.h — where `retrace mine-pairs` gets the ids of a collection's items, one at a time.
//
// The API has no listing call yet, so the ids come from the caller: a file of ids (one per
// line, "-" for stdin), or a list made in advance (`mine-pairs --images DIR` lists the folder
// with `retrace index`'s own walk, so the ids are the ones it stored). The miner only ever asks
// for the next id, so a source that pages through a collection listing replaces these by
// implementing IdSource — nothing else in the miner changes.
//
// Thread-safety: an IdSource is used by one thread.
//
//   absl::StatusOr<std::unique_ptr<IdSource>> ids = OpenIdFile("ids.txt");
//   while (absl::StatusOr<std::optional<std::string>> id = (*ids)->Next(); ...)
#ifndef RETRACE_CLIENT_MINING_ID_SOURCE_H_
#define RETRACE_CLIENT_MINING_ID_SOURCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace retrace::mining {

// IdSource: a stream of item ids, in a fixed order (a resumed run relies on seeing the same
// ids in the same order as the run it continues).
class IdSource {
 public:
  virtual ~IdSource() = default;
  // Next: the next id; std::nullopt at the end; an error (naming the file) when reading fails.
  virtual absl::StatusOr<std::optional<std::string>> Next() = 0;
  // total: how many ids the whole stream holds, when known in advance (progress); else -1.
  virtual int64_t total() const = 0;
  // description: where the ids come from, for messages ("ids.txt", "stdin", "images under D").
  virtual std::string description() const = 0;
};

// OpenIdFile: ids from `path`, one per line ("\r\n" endings accepted; empty lines skipped);
// "-" reads stdin (total unknown). NOT_FOUND naming the file when it cannot be opened. The file
// is read as it is consumed: a list of millions of ids is never held.
absl::StatusOr<std::unique_ptr<IdSource>> OpenIdFile(const std::string& path);

// IdList: the ids of `ids`, in order; `description` names where they came from.
std::unique_ptr<IdSource> IdList(std::vector<std::string> ids, std::string description);

}  // namespace retrace::mining

#endif  // RETRACE_CLIENT_MINING_ID_SOURCE_H_
