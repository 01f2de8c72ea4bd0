#include "core/text/clip_tokenizer.h"

#include <unicode/locid.h>
#include <unicode/unistr.h>

#include <array>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "core/common/status_macros.h"
#include "core/text/internal/bpe_merge.h"
#include "core/text/internal/html_unescape.h"
#include "core/text/internal/read_file.h"
#include "core/text/internal/unicode.h"

namespace retrace::text {

namespace {

constexpr size_t kMaxFileBytes = size_t{64} << 20;  // the real file is 2.6 MB uncompressed
constexpr std::u32string_view kStartOfTextPiece = U"<|startoftext|>";
constexpr std::u32string_view kEndOfTextPiece = U"<|endoftext|>";
constexpr char32_t kCombiningYpogegrammeni = 0x345;

// SameIgnoringCase returns whether the pattern character `lower` (ASCII lowercase) matches
// `c` under the `regex` module's IGNORECASE: its case variants, which for 's' include
// U+017F LATIN SMALL LETTER LONG S (the only variant that survives lowercasing).
bool SameIgnoringCase(char32_t c, char32_t lower) {
  if (c == lower) return true;
  if (lower >= U'a' && lower <= U'z' && c == lower - U'a' + U'A') return true;
  return lower == U's' && c == 0x17F;
}

// MatchesAt returns whether `literal` (ASCII, lowercase) matches `text` at `i`, ignoring case.
bool MatchesAt(std::u32string_view text, size_t i, std::u32string_view literal) {
  if (text.size() - i < literal.size()) return false;
  for (size_t k = 0; k < literal.size(); ++k) {
    if (!SameIgnoringCase(text[i + k], literal[k])) return false;
  }
  return true;
}

// IsOtherSymbol is `[^\s\p{L}\p{N}]` under IGNORECASE: U+0345 is excluded because its
// uppercase is a letter, yet `[\p{L}]` does not match it either, so the reference drops it.
bool IsOtherSymbol(char32_t c) {
  return !internal::IsRegexSpace(c) && !internal::IsLetter(c) && !internal::IsNumber(c) &&
         c != kCombiningYpogegrammeni;
}

// PieceEnd returns the end of the match of CLIP's pre-tokenisation regex
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (IGNORECASE) at `i`, or `i` when no alternative matches there (findall skips the character).
size_t PieceEnd(std::u32string_view text, size_t i) {
  for (std::u32string_view special : {kStartOfTextPiece, kEndOfTextPiece}) {
    if (MatchesAt(text, i, special)) return i + special.size();
  }
  if (text[i] == '\'') {
    for (std::u32string_view contraction : {U"s", U"t", U"re", U"ve", U"m", U"ll", U"d"}) {
      if (MatchesAt(text, i + 1, contraction)) return i + 1 + contraction.size();
    }
  }
  size_t j = i;
  if (internal::IsLetter(text[i])) {
    while (j < text.size() && internal::IsLetter(text[j])) ++j;
  } else if (internal::IsNumber(text[i])) {
    ++j;
  } else if (IsOtherSymbol(text[i])) {
    while (j < text.size() && IsOtherSymbol(text[j])) ++j;
  }
  return j;
}

std::u32string_view StripPythonSpace(std::u32string_view text) {
  while (!text.empty() && internal::IsPythonSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && internal::IsPythonSpace(text.back())) text.remove_suffix(1);
  return text;
}

// CleanText returns whitespace_clean(basic_clean(text)).lower() without ftfy:
// html.unescape twice, strip, `\s+` -> " ", strip, then full Unicode lowercasing.
std::u32string CleanText(std::string_view text) {
  const std::string unescaped =
      internal::HtmlUnescape(internal::HtmlUnescape(internal::ReplaceInvalidUtf8(text)));
  const std::u32string code_points = internal::DecodeUtf8(unescaped);
  std::u32string collapsed;
  collapsed.reserve(code_points.size());
  bool in_space = false;
  for (char32_t c : StripPythonSpace(code_points)) {
    const bool space = internal::IsRegexSpace(c);
    if (!space) {
      collapsed.push_back(c);
    } else if (!in_space) {
      collapsed.push_back(U' ');
    }
    in_space = space;
  }
  const std::u32string_view stripped = StripPythonSpace(collapsed);
  if (stripped.empty()) return {};

  // The root locale gives Python's str.lower(): full mappings ("İ" -> "i̇") and final sigma.
  icu::UnicodeString unicode = icu::UnicodeString::fromUTF32(
      reinterpret_cast<const UChar32*>(stripped.data()), static_cast<int32_t>(stripped.size()));
  unicode.toLower(icu::Locale::getRoot());
  std::u32string lowered(unicode.countChar32(), U'\0');
  UErrorCode error = U_ZERO_ERROR;
  unicode.toUTF32(reinterpret_cast<UChar32*>(lowered.data()), static_cast<int32_t>(lowered.size()),
                  error);
  return lowered;
}

}  // namespace

struct ClipTokenizer::Rep {
  std::array<int32_t, 256> byte_ids{};  // a byte as a (non-final) symbol
  internal::MergeTable merges;
  std::vector<std::string> token_bytes;  // id -> the bytes it stands for, for Decode
};

absl::StatusOr<ClipTokenizer> ClipTokenizer::Load(const std::string& bpe_path) {
  RETRACE_ASSIGN_OR_RETURN(const std::string contents, internal::ReadFile(bpe_path, kMaxFileBytes));
  const std::array<char32_t, 256>& byte_to_unicode = internal::ByteToUnicode();
  const std::array<int32_t, 256>& byte_order = internal::ByteOrder();

  // The vocabulary as simple_tokenizer.py lists it; its index is the id.
  std::vector<std::string> vocab(512);
  vocab.reserve(kVocabSize);
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    internal::AppendUtf8(byte_to_unicode[b], &symbol);
    vocab[byte_order[b]] = symbol;
    vocab[256 + byte_order[b]] = symbol + "</w>";
  }
  struct MergeLine {
    absl::string_view left, right;
    int line_number;
  };
  auto line_error = [&bpe_path](int line_number, absl::string_view message) {
    return absl::InvalidArgumentError(absl::StrCat(bpe_path, ":", line_number, ": ", message));
  };
  std::vector<MergeLine> merge_lines;
  merge_lines.reserve(kNumMerges);
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    if (line_number == 1) continue;  // the "#version" header
    if (line_number > kNumMerges + 1) break;
    if (!internal::IsValidUtf8(std::string_view(line.data(), line.size()))) {
      return line_error(line_number, "not valid UTF-8");
    }
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (parts.size() != 2) {
      return line_error(line_number,
                        absl::StrCat("expected a merge of two symbols separated by a space, got \"",
                                     line.substr(0, 80), "\""));
    }
    merge_lines.push_back({parts[0], parts[1], line_number});
    vocab.push_back(absl::StrCat(parts[0], parts[1]));
  }
  if (merge_lines.size() < static_cast<size_t>(kNumMerges)) {
    return absl::InvalidArgumentError(absl::StrCat(bpe_path, ": has ", merge_lines.size(),
                                                   " merge lines; CLIP needs ", kNumMerges));
  }
  vocab.push_back("<|startoftext|>");
  vocab.push_back("<|endoftext|>");

  // As dict(zip(vocab, range(len(vocab)))): a repeated string keeps its last id.
  absl::flat_hash_map<absl::string_view, int32_t> ids;
  ids.reserve(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) ids.insert_or_assign(vocab[i], static_cast<int32_t>(i));

  auto rep = std::make_shared<Rep>();
  for (int b = 0; b < 256; ++b) rep->byte_ids[b] = byte_order[b];
  for (size_t rank = 0; rank < merge_lines.size(); ++rank) {
    const MergeLine& m = merge_lines[rank];
    auto left = ids.find(m.left);
    auto right = ids.find(m.right);
    if (left == ids.end() || right == ids.end()) {
      return line_error(m.line_number,
                        absl::StrCat("symbol \"", left == ids.end() ? m.left : m.right,
                                     "\" is neither a byte nor made by a merge"));
    }
    const int32_t merged = ids.find(vocab[512 + rank])->second;  // inserted above
    rep->merges.Add(left->second, right->second, static_cast<int32_t>(rank), merged);
  }

  rep->token_bytes.reserve(vocab.size());
  for (const std::string& token : vocab) {
    std::string bytes;
    for (char32_t c : internal::DecodeUtf8(token)) {
      const int byte = internal::UnicodeToByte(c);
      if (byte >= 0) {
        bytes.push_back(static_cast<char>(byte));
      } else {
        internal::AppendUtf8(c, &bytes);
      }
    }
    rep->token_bytes.push_back(std::move(bytes));
  }
  return ClipTokenizer(std::move(rep));
}

void ClipTokenizer::EncodeUpTo(std::string_view text, size_t max_ids,
                               std::vector<int32_t>* ids) const {
  const std::u32string cleaned = CleanText(text);
  std::vector<int32_t> word;
  std::string bytes;
  for (size_t i = 0; i < cleaned.size() && ids->size() < max_ids;) {
    const size_t end = PieceEnd(cleaned, i);
    if (end == i) {
      ++i;
      continue;
    }
    const std::u32string_view piece(cleaned.data() + i, end - i);
    i = end;
    // The reference's BPE cache is seeded with the two special strings, so they never merge.
    if (piece == kStartOfTextPiece) {
      ids->push_back(kStartOfText);
      continue;
    }
    if (piece == kEndOfTextPiece) {
      ids->push_back(kEndOfText);
      continue;
    }
    bytes = internal::EncodeUtf8(piece);
    for (size_t start = 0; start < bytes.size() && ids->size() < max_ids;) {
      const size_t chunk_end = internal::WordChunkEnd(bytes, start);
      word.clear();
      for (size_t k = start; k < chunk_end; ++k) {
        word.push_back(rep_->byte_ids[static_cast<uint8_t>(bytes[k])]);
      }
      if (chunk_end == bytes.size()) word.back() += 256;  // the same symbol with "</w>"
      internal::ApplyMerges(rep_->merges, &word);
      ids->insert(ids->end(), word.begin(), word.end());
      start = chunk_end;
    }
  }
}

std::vector<int32_t> ClipTokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  EncodeUpTo(text, std::numeric_limits<size_t>::max(), &ids);
  return ids;
}

std::vector<int64_t> ClipTokenizer::Tokenize(std::string_view text, int context_length) const {
  if (context_length <= 0) return {};
  const size_t length = static_cast<size_t>(context_length);
  // length - 1 BPE ids are enough to know whether [SOT] + ids + [EOT] exceeds `length`.
  std::vector<int32_t> ids;
  EncodeUpTo(text, length - 1, &ids);
  std::vector<int64_t> tokens;
  tokens.reserve(ids.size() + 2);
  tokens.push_back(kStartOfText);
  tokens.insert(tokens.end(), ids.begin(), ids.end());
  tokens.push_back(kEndOfText);
  if (tokens.size() > length) {
    tokens.resize(length);
    tokens.back() = kEndOfText;
  }
  tokens.resize(length, 0);
  return tokens;
}

std::string ClipTokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < rep_->token_bytes.size()) {
      bytes += rep_->token_bytes[id];
    }
  }
  return absl::StrReplaceAll(internal::ReplaceInvalidUtf8(bytes), {{"</w>", " "}});
}

}  // namespace retrace::text
