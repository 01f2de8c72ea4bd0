// content_hash.h — a stable 64-bit hash of what a caller sent for an item (its encoded image,
// given caption and attributes), so re-sending unchanged content is recognised before any model
// runs. FNV-1a 64 over length-prefixed fields: stable across processes, versions and machines,
// because the value is stored. Not a defence against adversaries; a match only skips work.
//
// Thread-safety: pure function.
#ifndef RETRACE_CORE_ENGINE_INTERNAL_CONTENT_HASH_H_
#define RETRACE_CORE_ENGINE_INTERNAL_CONTENT_HASH_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace retrace::engine::internal {

class Fnv1a64 {
 public:
  void Add(absl::string_view bytes) {
    AddLength(bytes.size());
    for (unsigned char c : bytes) hash_ = (hash_ ^ c) * 0x100000001b3ULL;
  }
  uint64_t value() const { return hash_; }

 private:
  void AddLength(uint64_t n) {
    for (int i = 0; i < 8; ++i) hash_ = (hash_ ^ ((n >> (8 * i)) & 0xFF)) * 0x100000001b3ULL;
  }
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

// ContentHash: the hash of an item's image bytes, given caption and attributes (in key order).
inline uint64_t ContentHash(absl::string_view image, absl::string_view caption,
                            const std::map<std::string, std::string>& attributes) {
  Fnv1a64 h;
  h.Add(image);
  h.Add(caption);
  for (const auto& [key, value] : attributes) {
    h.Add(key);
    h.Add(value);
  }
  return h.value();
}

}  // namespace retrace::engine::internal

#endif  // RETRACE_CORE_ENGINE_INTERNAL_CONTENT_HASH_H_
