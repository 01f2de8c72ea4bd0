// clip_tokenizer.h — OpenAI CLIP's text tokenizer: turns a caption or query into the 77 token
// ids that a CLIP text encoder takes. A port of CLIP's simple_tokenizer.py and of
// clip.tokenize(text, truncate=True); see ../shared/data/clip/README.md for the reference.
//
// Encoding: html.unescape twice, strip, collapse whitespace runs to one space, full Unicode
// lowercasing (Python's str.lower(), with final sigma), the CLIP pre-tokenisation regex
// (contractions, letter runs, single digits, runs of other symbols; literal
// <|startoftext|> / <|endoftext|> map to their ids), then byte-level BPE with `</w>` on each
// piece's last symbol.
//
// Limits (differences from the reference):
//  - No ftfy.fix_text (there is no C++ port): no NFC normalisation, mojibake repair, quote
//    uncurling, full-width folding or ligature expansion. Text that ftfy would change (curly
//    quotes, decomposed accents such as "cafe\u0301", "cafÃ©", "ｆｕｌｌ", "ﬁ") can get other
//    ids than CLIP's; the golden rows marked ftfy_required show which.
//  - Input is bytes: ill-formed UTF-8 becomes U+FFFD (Python would not accept such a str).
//  - Unicode tables are ICU's (Unicode 15) where the reference used Python's (Unicode 14);
//    only characters assigned in 15 can differ.
//  - Input size: the caller bounds it (REQUIRES: under 1 GiB). Time and memory are linear in the text, and BPE is
//    O(w log w) in a word of w bytes (the reference's loop is O(w^2)). A pre-tokenized piece
//    over 4 KiB (internal::kMaxWordBytes) is merged in 4 KiB chunks cut at character
//    boundaries, only the last chunk ending in </w>, so its ids can differ from the
//    reference near the cuts; only pathological text (kilobytes of letters with no space or
//    punctuation) has such pieces. Tokenize stops merging once it has the ids it needs, but
//    cleans and lowercases all of the text: 1 MB takes about 30 ms.
//
// Thread-safety: immutable after Load; all methods are const and safe for concurrent use.
// Copies are cheap and share the loaded tables.
//
//   RETRACE_ASSIGN_OR_RETURN(ClipTokenizer tok, ClipTokenizer::Load(bpe_simple_vocab_16e6_gz));
//   std::vector<int64_t> ids = tok.Tokenize("a cat");  // {49406, 320, 2368, 49407, 0, ...}
#ifndef RETRACE_CORE_TEXT_CLIP_TOKENIZER_H_
#define RETRACE_CORE_TEXT_CLIP_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace retrace::text {

class ClipTokenizer {
 public:
  static constexpr int32_t kStartOfText = 49406;
  static constexpr int32_t kEndOfText = 49407;
  static constexpr int kDefaultContextLength = 77;
  // The number of merges CLIP uses from the file (lines 1..48894); the vocabulary is
  // 256 bytes + 256 bytes with </w> + the merges + the 2 special tokens = 49,408 ids.
  static constexpr int kNumMerges = 49152 - 256 - 2;
  static constexpr int kVocabSize = 49408;

  // Load reads CLIP's merges file (bpe_simple_vocab_16e6.txt.gz, gzip or plain text) and
  // builds the vocabulary as simple_tokenizer.py does. Errors: NOT_FOUND when the file does
  // not exist (other open/read errors map from errno); INVALID_ARGUMENT, naming the file and
  // the line, when the gzip data is corrupt, a merge line is not UTF-8 or not two symbols, a
  // symbol is not in the vocabulary, or the file has fewer than kNumMerges merge lines.
  static absl::StatusOr<ClipTokenizer> Load(const std::string& bpe_path);

  // Encode returns the BPE ids of `text` (SimpleTokenizer.encode): no start/end tokens, not
  // truncated. Empty or whitespace-only text gives no ids. Never fails.
  std::vector<int32_t> Encode(std::string_view text) const;

  // Tokenize returns clip.tokenize([text], context_length, truncate=True)[0]:
  // kStartOfText, the BPE ids, kEndOfText, then zeros up to `context_length` ids. When that
  // is too long it keeps the first context_length ids and sets the last to kEndOfText.
  // REQUIRES: context_length >= 2 (1 gives {kEndOfText}, less gives no ids, as the
  // reference's slicing would).
  std::vector<int64_t> Tokenize(std::string_view text,
                                int context_length = kDefaultContextLength) const;

  // Decode returns SimpleTokenizer.decode(ids): the tokens' bytes as UTF-8 (ill-formed
  // sequences become U+FFFD) with each "</w>" replaced by a space, so a decoded caption
  // usually ends with a space. Special ids decode to "<|startoftext|>" / "<|endoftext|>".
  // Ids outside [0, kVocabSize) are skipped (the reference raises KeyError); padding zeros
  // are id 0, "!", so strip them first.
  std::string Decode(const std::vector<int32_t>& ids) const;

 private:
  struct Rep;
  explicit ClipTokenizer(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}

  // EncodeUpTo appends the BPE ids of `text` to `ids`; it stops early once `ids` holds at
  // least `max_ids` (checked before each piece, and each chunk of a long piece).
  void EncodeUpTo(std::string_view text, size_t max_ids, std::vector<int32_t>* ids) const;

  std::shared_ptr<const Rep> rep_;  // never null
};

}  // namespace retrace::text

#endif  // RETRACE_CORE_TEXT_CLIP_TOKENIZER_H_
