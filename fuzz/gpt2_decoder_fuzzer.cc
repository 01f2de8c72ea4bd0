// gpt2_decoder_fuzzer.cc — libFuzzer target: the GPT-2 / OPT byte-level BPE tokenizer that turns
// a captioner's generated ids into text and encodes caption prompts, with the real vocabularies
// and merges from ../shared/data.
//
// The first input byte picks what the rest is (bit 0: OPT ids from opt_vocab.json, else
// GPT-2's vocab.json; bit 1: skip_special; bit 2: the rest is text to encode, else ids;
// bit 3: ids are int32, else uint16 — both little-endian). Beyond "no crash, leak or undefined
// behaviour" it checks:
//   - Decode of ids all in the vocabulary succeeds with valid UTF-8; otherwise it is
//     INVALID_ARGUMENT naming the first unknown id and its position;
//   - Encode (the prompt path) gives ids in the vocabulary, and decoding them with special
//     tokens kept gives back the text, with ill-formed UTF-8 replaced by U+FFFD: byte-level
//     BPE loses nothing.
// The files are found through $RETRACE_SHARED_DATA, else ../shared/data beside the checkout;
// without them the target exits before the first input, saying where it looked.
//
// Thread-safety: libFuzzer calls the entry points from one thread.
//
//   RETRACE_SHARED_DATA=/work/shared/data build-fuzz/fuzz/gpt2_decoder_fuzzer CORPUS_DIR
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/utf8.h"
#include "core/text/byte_level_bpe.h"
#include "core/text/internal/unicode.h"
#include "fuzz/fuzz_support.h"

namespace {

using retrace::text::ByteLevelBpe;

struct Vocabularies {
  std::optional<ByteLevelBpe> gpt2;
  std::optional<ByteLevelBpe> opt;
};

Vocabularies& Loaded() {
  static Vocabularies vocabularies;
  return vocabularies;
}

ByteLevelBpe LoadOrExit(const std::string& vocab, const std::string& merges) {
  retrace::fuzz::RequireFile(vocab);
  retrace::fuzz::RequireFile(merges);
  absl::StatusOr<ByteLevelBpe> loaded = ByteLevelBpe::Load(vocab, merges);
  if (!loaded.ok()) {
    std::fprintf(stderr, "gpt2_decoder_fuzzer: cannot load %s: %s\n", vocab.c_str(),
                 loaded.status().ToString().c_str());
    std::exit(2);
  }
  return *std::move(loaded);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  using retrace::fuzz::SharedDataPath;
  const std::string merges = SharedDataPath("gpt2/merges.txt");
  Loaded().gpt2.emplace(LoadOrExit(SharedDataPath("gpt2/vocab.json"), merges));
  Loaded().opt.emplace(LoadOrExit(SharedDataPath("gpt2/opt_vocab.json"), merges));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const ByteLevelBpe& bpe = (mode & 1) != 0 ? *Loaded().opt : *Loaded().gpt2;
  const bool skip_special = (mode & 2) != 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  if ((mode & 4) != 0) {
    const absl::StatusOr<std::vector<int64_t>> ids = bpe.Encode(rest);
    RETRACE_FUZZ_CHECK(ids.ok(), absl::StrCat("Encode failed: ", ids.status().ToString()));
    const absl::StatusOr<std::string> text = bpe.Decode(*ids, /*skip_special=*/false);
    RETRACE_FUZZ_CHECK(text.ok(),
                       absl::StrCat("Decode of Encode's ids failed: ", text.status().ToString()));
    const std::string expected = retrace::text::internal::ReplaceInvalidUtf8(rest);
    RETRACE_FUZZ_CHECK(
        *text == expected,
        absl::StrCat("Decode(Encode(text)) != text for ",
                     absl::CHexEscape(absl::string_view(rest.data(), rest.size())),
                     "\n  ids: ", absl::StrJoin(*ids, " "), "\n  got: ", absl::CHexEscape(*text)));
    return 0;
  }

  std::vector<int64_t> ids;
  if ((mode & 8) != 0) {
    for (size_t i = 0; i + 4 <= rest.size(); i += 4) {
      const auto* p = reinterpret_cast<const uint8_t*>(rest.data()) + i;
      ids.push_back(static_cast<int32_t>(uint32_t{p[0]} | uint32_t{p[1]} << 8 |
                                         uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24));
    }
  } else {
    for (size_t i = 0; i + 2 <= rest.size(); i += 2) {
      const auto* p = reinterpret_cast<const uint8_t*>(rest.data()) + i;
      ids.push_back(p[0] | p[1] << 8);
    }
  }
  size_t first_unknown = ids.size();
  for (size_t i = 0; i < ids.size() && first_unknown == ids.size(); ++i) {
    // IdOf cannot say whether an id exists; a one-id Decode can.
    if (!bpe.Decode({ids[i]}, false).ok()) first_unknown = i;
  }
  const absl::StatusOr<std::string> text = bpe.Decode(ids, skip_special);
  if (first_unknown == ids.size()) {
    RETRACE_FUZZ_CHECK(text.ok(), absl::StrCat("Decode failed: ", text.status().ToString()));
    RETRACE_FUZZ_CHECK(retrace::IsValidUtf8(*text),
                       absl::StrCat("Decode gave invalid UTF-8: ", absl::CHexEscape(*text)));
  } else {
    RETRACE_FUZZ_CHECK(text.status().code() == absl::StatusCode::kInvalidArgument &&
                           absl::StrContains(text.status().message(),
                                             absl::StrCat("token id ", ids[first_unknown],
                                                          " at position ", first_unknown, " ")),
                       absl::StrCat("Decode with unknown id ", ids[first_unknown], " at ",
                                    first_unknown, " gave: ", text.status().ToString()));
  }
  return 0;
}
