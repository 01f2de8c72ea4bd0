// bpe_merge.h — the BPE merge loop shared by the CLIP and GPT-2 tokenizers, over token ids.
//
// The reference loop (CLIP's simple_tokenizer.py, GPT-2's encoder.py) repeatedly picks the
// adjacent pair with the lowest merge rank and merges all its non-overlapping occurrences
// left to right; that is O(n^2) in the word length. ApplyMerges gives the same result in
// O(n log n) with a heap ordered by (rank, position), as Hugging Face tokenizers does. The
// two agree whenever every merge's parts are made by lower-ranked merges (or are single
// bytes), which holds for trained merge lists; it was checked for CLIP's and GPT-2's files.
//
// Thread-safety: MergeTable is immutable after loading; const methods are safe for
// concurrent use. ApplyMerges has no shared state.
//
//   MergeTable table; table.Add(/*left=*/3, /*right=*/4, /*rank=*/0, /*merged=*/7);
//   std::vector<int32_t> word = {3, 4, 5};  ApplyMerges(table, &word);  // word == {7, 5}
#ifndef RETRACE_CORE_TEXT_INTERNAL_BPE_MERGE_H_
#define RETRACE_CORE_TEXT_INTERNAL_BPE_MERGE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace retrace::text::internal {

// MergeTable maps an adjacent pair of token ids to its merge rank and the id of the merged
// token.
class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };

  // Add records that (left, right) merges into `merged` with `rank`. A later Add of the same
  // pair replaces the earlier one, as building a Python dict from the merges list does.
  void Add(int32_t left, int32_t right, int32_t rank, int32_t merged) {
    merges_.insert_or_assign(Key(left, right), Merge{rank, merged});
  }

  // Find returns the merge of (left, right), or nullptr when the pair does not merge.
  const Merge* Find(int32_t left, int32_t right) const {
    auto it = merges_.find(Key(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }

  size_t size() const { return merges_.size(); }

 private:
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  absl::flat_hash_map<uint64_t, Merge> merges_;
};

// ApplyMerges merges the symbols of one word in place until no adjacent pair is in `table`.
// REQUIRES: every id in `word` is >= 0.
void ApplyMerges(const MergeTable& table, std::vector<int32_t>* word);

// kMaxWordBytes bounds the work and memory of one ApplyMerges call: a pre-tokenized piece
// longer than this is merged as consecutive chunks of at most this many bytes, cut at
// character boundaries. Below it the ids are exact. Natural words are far shorter (CLIP's
// longest token is 32 bytes, and a chunk gives CLIP's 77-id context many times over), so
// only pathological input, such as megabytes of letters without a space, is affected.
inline constexpr size_t kMaxWordBytes = 4096;

// WordChunkEnd returns the end of the chunk of `utf8` (one piece) that starts at `start`:
// at most kMaxWordBytes later, and never inside a UTF-8 sequence. REQUIRES: start < size.
size_t WordChunkEnd(std::string_view utf8, size_t start);

}  // namespace retrace::text::internal

#endif  // RETRACE_CORE_TEXT_INTERNAL_BPE_MERGE_H_
