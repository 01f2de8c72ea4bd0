// clip_tokenizer_fuzzer.cc — libFuzzer target: arbitrary bytes (invalid UTF-8 included) as a text
// query or caption, through CLIP's tokenizer with the real merges file from ../shared/data.
//
// Beyond "no crash, leak or undefined behaviour" it checks:
//   - Encode's ids are in [0, kVocabSize);
//   - Tokenize gives exactly 77 ids: kStartOfText, then Encode's first ids (Tokenize stops
//     encoding early, so this compares the two paths), kEndOfText, zero padding;
//   - Decode returns valid UTF-8, for Encode's ids and for the input read as int32 ids;
//   - core/common/utf8.h's IsValidUtf8 (the engine's request validation) agrees with ICU's
//     (the tokenizer's), and ReplaceInvalidUtf8 returns valid UTF-8, unchanged when it was valid.
// The merges file is found through $RETRACE_SHARED_DATA, else ../shared/data beside the
// checkout; without it the target exits before the first input, saying where it looked.
//
// Thread-safety: libFuzzer calls the entry points from one thread.
//
//   RETRACE_SHARED_DATA=/work/shared/data build-fuzz/fuzz/clip_tokenizer_fuzzer CORPUS_DIR
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/utf8.h"
#include "core/text/clip_tokenizer.h"
#include "core/text/internal/unicode.h"
#include "fuzz/fuzz_support.h"

namespace {

using retrace::text::ClipTokenizer;

std::optional<ClipTokenizer>& Tokenizer() {
  static std::optional<ClipTokenizer> tokenizer;
  return tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  const std::string path = retrace::fuzz::SharedDataPath("clip/bpe_simple_vocab_16e6.txt.gz");
  retrace::fuzz::RequireFile(path);
  absl::StatusOr<ClipTokenizer> loaded = ClipTokenizer::Load(path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "clip_tokenizer_fuzzer: cannot load %s: %s\n", path.c_str(),
                 loaded.status().ToString().c_str());
    std::exit(2);
  }
  Tokenizer().emplace(*std::move(loaded));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace text_internal = retrace::text::internal;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::string_view absl_text(text.data(), text.size());  // for absl's helpers
  const ClipTokenizer& tokenizer = *Tokenizer();

  const bool valid = retrace::IsValidUtf8(absl_text);
  RETRACE_FUZZ_CHECK(valid == text_internal::IsValidUtf8(text),
                     absl::StrCat("core/common IsValidUtf8 says ", valid,
                                  ", ICU disagrees: ", absl::CHexEscape(absl_text)));
  const std::string replaced = text_internal::ReplaceInvalidUtf8(text);
  RETRACE_FUZZ_CHECK(retrace::IsValidUtf8(replaced) && (!valid || replaced == text),
                     absl::StrCat("ReplaceInvalidUtf8 is wrong for ", absl::CHexEscape(absl_text)));

  const std::vector<int32_t> ids = tokenizer.Encode(text);
  for (int32_t id : ids) {
    RETRACE_FUZZ_CHECK(id >= 0 && id < ClipTokenizer::kVocabSize,
                       absl::StrCat("Encode gave id ", id, " for ", absl::CHexEscape(absl_text)));
  }

  const std::vector<int64_t> tokens = tokenizer.Tokenize(text);
  const size_t length = ClipTokenizer::kDefaultContextLength;
  RETRACE_FUZZ_CHECK(tokens.size() == length,
                     absl::StrCat("Tokenize gave ", tokens.size(), " ids"));
  const size_t kept = std::min(ids.size(), length - 2);
  std::vector<int64_t> expected = {ClipTokenizer::kStartOfText};
  expected.insert(expected.end(), ids.begin(), ids.begin() + kept);
  expected.push_back(ClipTokenizer::kEndOfText);
  expected.resize(length, 0);
  RETRACE_FUZZ_CHECK(tokens == expected, absl::StrCat("Tokenize disagrees with Encode for ",
                                                      absl::CHexEscape(absl_text),
                                                      "\n  Tokenize: ", absl::StrJoin(tokens, " "),
                                                      "\n  Encode:   ", absl::StrJoin(ids, " ")));

  const std::string decoded = tokenizer.Decode(ids);
  RETRACE_FUZZ_CHECK(retrace::IsValidUtf8(decoded),
                     absl::StrCat("Decode gave invalid UTF-8 for ", absl::CHexEscape(absl_text)));

  // The same bytes as little-endian int32 ids, most of them out of range (skipped by Decode).
  std::vector<int32_t> raw_ids(size / 4);
  for (size_t i = 0; i < raw_ids.size(); ++i) {
    raw_ids[i] =
        static_cast<int32_t>(uint32_t{data[4 * i]} | uint32_t{data[4 * i + 1]} << 8 |
                             uint32_t{data[4 * i + 2]} << 16 | uint32_t{data[4 * i + 3]} << 24);
  }
  RETRACE_FUZZ_CHECK(retrace::IsValidUtf8(tokenizer.Decode(raw_ids)),
                     "Decode of raw ids gave invalid UTF-8");
  return 0;
}
