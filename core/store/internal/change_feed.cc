#include "core/store/internal/change_feed.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace retrace::store::internal {

absl::Status CheckFeedState(const std::string& collection, int64_t created_position,
                            int64_t after, int64_t stored_created, int64_t compacted) {
  if (stored_created != created_position) {
    return absl::AbortedError(absl::StrCat(
        "collection '", absl::CHexEscape(collection), "' created at position ", created_position,
        " was dropped (the collection of that name now was created at ", stored_created, ")"));
  }
  if (after < compacted) {
    return absl::OutOfRangeError(absl::StrCat(
        "the changes of collection '", absl::CHexEscape(collection), "' after position ", after,
        " are no longer all recorded (deletions up to ", compacted,
        " were compacted); read every item instead"));
  }
  return absl::OkStatus();
}

std::vector<Change> MergeChanges(std::vector<Change> puts, std::vector<Change> deletions,
                                 int limit) {
  std::vector<Change> merged;
  merged.reserve(std::min(puts.size() + deletions.size(), static_cast<size_t>(limit)));
  size_t p = 0, d = 0;
  auto key = [](const Change& c) { return std::tie(c.position, c.id); };
  while (merged.size() < static_cast<size_t>(limit) && (p < puts.size() || d < deletions.size())) {
    const bool take_put =
        d == deletions.size() || (p < puts.size() && key(puts[p]) < key(deletions[d]));
    merged.push_back(std::move(take_put ? puts[p++] : deletions[d++]));
  }
  return merged;
}

}  // namespace retrace::store::internal
