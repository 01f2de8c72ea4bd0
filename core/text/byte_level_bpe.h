// byte_level_bpe.h — GPT-2's byte-level BPE tokenizer, with the ids of any vocabulary that
// uses GPT-2's token strings. BLIP-2's language model is OPT, whose ids are GPT-2's tokens
// renumbered (opt_vocab.json), so one class serves both: the captioner decodes generated
// OPT ids to text, and encodes prompts. See ../shared/data/gpt2/README.md.
//
// Encoding is OpenAI's encoder.py (= HF GPT2Tokenizer / tiktoken encode_ordinary): the
// pre-tokenisation regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (implemented by hand over ICU's character classes), then byte-to-unicode and BPE by merge
// rank. No special tokens are added (OPT's tokenizer prepends </s> = 2; the caller does),
// and text that spells a special token ("</s>", "<|endoftext|>") is encoded as plain text,
// so user text cannot inject control tokens. Ill-formed UTF-8 input becomes U+FFFD. Time
// is O(w log w) in a word of w bytes; a piece over 4 KiB (internal::kMaxWordBytes) is
// merged in 4 KiB chunks cut at character boundaries, so only such pathological pieces
// can get other ids than the reference. The caller bounds the text (REQUIRES: under 1 GiB).
//
// Decoding concatenates the tokens' bytes and replaces ill-formed UTF-8 (a multi-byte
// character split across tokens, or cut off by the end) with U+FFFD, like HF's
// errors="replace". It does not apply HF's clean_up_tokenization_spaces (" ," -> ","), and
// does not strip; callers that want BLIP-2's exact caption strings strip the result.
//
// Thread-safety: immutable after Load; all methods are const and safe for concurrent use.
// Copies are cheap and share the loaded tables.
//
//   RETRACE_ASSIGN_OR_RETURN(ByteLevelBpe opt, ByteLevelBpe::Load(opt_vocab_json, merges_txt));
//   absl::StatusOr<std::string> text = opt.Decode({2, 250, 1345, 9, 10, 4758});  // "A photo of a
//   cat"
#ifndef RETRACE_CORE_TEXT_BYTE_LEVEL_BPE_H_
#define RETRACE_CORE_TEXT_BYTE_LEVEL_BPE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace retrace::text {

class ByteLevelBpe {
 public:
  // Load reads a token -> id JSON object (GPT-2's vocab.json, or opt_vocab.json for OPT
  // ids) and, unless `merges_path` is empty, a merges file ("a b" per line, by rank; a first
  // line starting with "#version" is skipped). Without merges only decoding works. Errors:
  // NOT_FOUND when a file does not exist; INVALID_ARGUMENT, naming the file (and the line of
  // a merges file), when the JSON is malformed or not an object of ids in [0, 2^31), a token
  // or an id appears twice, a merge line is not two symbols, a merge's symbols or result
  // are not in the vocabulary, or (with merges) a byte's token is missing.
  static absl::StatusOr<ByteLevelBpe> Load(const std::string& vocab_json_path,
                                           const std::string& merges_path);

  // Encode returns the ids of `text`, with no special tokens added. Errors:
  // FAILED_PRECONDITION when loaded without merges.
  absl::StatusOr<std::vector<int64_t>> Encode(std::string_view text) const;

  // Decode returns the UTF-8 text of `ids`. With `skip_special`, ids of special tokens
  // (<s>, </s>, <pad>, <unk>, <mask>, <|endoftext|>, madeupwordNNNN) contribute nothing;
  // without it they decode to their strings. Ill-formed UTF-8 becomes U+FFFD. Errors:
  // INVALID_ARGUMENT naming the first id that is not in the vocabulary and its position.
  absl::StatusOr<std::string> Decode(const std::vector<int64_t>& ids,
                                     bool skip_special = true) const;

  // IdOf returns the id of the token string `token` (byte-to-unicode form, e.g. "\u010a"
  // "Ċ" for a newline, "\u0120the" "Ġthe" for " the"), or -1 when it is not in the vocabulary.
  int64_t IdOf(std::string_view token) const;

  // vocab_size returns the number of entries in the vocabulary JSON.
  size_t vocab_size() const;

 private:
  struct Rep;
  explicit ByteLevelBpe(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}

  std::shared_ptr<const Rep> rep_;  // never null
};

}  // namespace retrace::text

#endif  // RETRACE_CORE_TEXT_BYTE_LEVEL_BPE_H_
