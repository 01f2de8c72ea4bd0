// item_table.h — what a search hit shows of each item (its caption and attributes), held in
// memory beside a collection's vector indexes. Hits are filled from here, not from the store:
// a search makes no store round trip (PostgreSQL is across a network) and goes on serving when
// the store is unreachable. The follower updates it together with the indexes, and snapshots
// save it with them at the same position.
//
// Memory: the captions and attributes themselves plus a hash-map entry (about 100 bytes) per
// item — a few hundred MB for a million items with short captions, beside the indexes' vectors.
//
// Filters (core/filter) are evaluated here: Match scans every entry under the reader lock and
// returns the passing ids, which a filtered search hands to the index (ShardedIndex's
// SearchFilter), and their count, whose ratio to size() is the filter's selectivity. A scan, not
// an attribute index (key -> value -> ids): it gives the exact count and the id set the index's
// selector needs in the same pass, serves every operator (prefix, numeric ranges, NOT) alike,
// and costs no memory or upkeep on Put. Its cost is bounded: items x the filter's terms (at most
// EngineLimits::max_filter_terms), about 50 ns per item and simple condition — 50 ms for a
// million items. An inverted index for equality conditions is the step up if that shows.
//
// Thread-safety: safe for concurrent use (a reader-writer lock).
//
//   table.Put(item);  auto shown = table.Get({"a", "b"});  // nullopt for an absent id
//   ItemTable::Matched m = table.Match(filter);  // m.ids pass; m.ids.size() / m.total
#ifndef RETRACE_CORE_ENGINE_ITEM_TABLE_H_
#define RETRACE_CORE_ENGINE_ITEM_TABLE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/filter/filter.h"

namespace retrace::engine {

class ItemTable {
 public:
  struct Entry {
    std::string caption;
    std::map<std::string, std::string> attributes;
    int64_t created_ms = 0;  // the store's times (StoredItem's), which filters may test
    int64_t updated_ms = 0;
  };

  // Put stores (replaces) an id's entry; Remove drops it (absent ids are ignored).
  void Put(const std::string& id, Entry entry);
  void Remove(const std::string& id);
  // Get returns one entry per id, in order; nullopt for an absent id.
  std::vector<std::optional<Entry>> Get(const std::vector<std::string>& ids) const;
  size_t size() const;

  // Matched is what Match found: the passing ids, and how many entries the table held then.
  struct Matched {
    absl::flat_hash_set<std::string> ids;
    size_t total = 0;
  };
  // Match returns the ids whose attributes satisfy `filter` (filter::Evaluate). REQUIRES:
  // filter::Validate passed.
  Matched Match(const filter::Filter& filter) const;

  // Save writes the table to `dir`/items (write, fsync, rename; `dir` must exist) with
  // `position` and `tag`, which Load returns; errors as files.h's.
  absl::Status Save(const std::string& dir, int64_t position, const std::string& tag) const;

  struct Loaded {
    std::unique_ptr<ItemTable> table;
    int64_t position = 0;
    std::string tag;
  };
  // Load reads what Save wrote. NOT_FOUND when there is no file; DATA_LOSS when it is truncated,
  // fails its checksum or does not parse.
  static absl::StatusOr<Loaded> Load(const std::string& dir);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_ITEM_TABLE_H_
