#include "core/text/byte_level_bpe.h"

#include <array>
#include <limits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/status_macros.h"
#include "core/text/internal/bpe_merge.h"
#include "core/text/internal/read_file.h"
#include "core/text/internal/unicode.h"
#include "nlohmann/json.hpp"

namespace retrace::text {

namespace {

constexpr size_t kMaxFileBytes = size_t{64} << 20;  // vocab.json is 0.8 MB, merges.txt 0.5 MB

bool IsSpecialToken(absl::string_view token) {
  for (absl::string_view special : {"<s>", "</s>", "<pad>", "<unk>", "<mask>", "<|endoftext|>"}) {
    if (token == special) return true;
  }
  // fairseq pads its dictionary with madeupword0000, madeupword0001, ...
  if (!absl::ConsumePrefix(&token, "madeupword") || token.empty()) return false;
  for (char c : token) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

enum class CharClass { kLetter, kNumber, kSpace, kOther };

CharClass Classify(char32_t c) {
  if (internal::IsLetter(c)) return CharClass::kLetter;
  if (internal::IsNumber(c)) return CharClass::kNumber;
  if (internal::IsRegexSpace(c)) return CharClass::kSpace;
  return CharClass::kOther;
}

// PieceEnd returns the end of the match of GPT-2's pre-tokenisation regex at `i` (< size):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Every character is in exactly one class, so some alternative always matches.
size_t PieceEnd(std::u32string_view text, size_t i) {
  const size_t n = text.size();
  if (text[i] == U'\'') {
    for (std::u32string_view contraction : {U"s", U"t", U"re", U"ve", U"m", U"ll", U"d"}) {
      if (text.substr(i + 1, contraction.size()) == contraction) return i + 1 + contraction.size();
    }
  }
  // ` ?X+` for the three non-space classes: an optional U+0020, then a run of one class.
  const size_t start =
      text[i] == U' ' && i + 1 < n && Classify(text[i + 1]) != CharClass::kSpace ? i + 1 : i;
  const CharClass run_class = Classify(text[start]);
  size_t j = start + 1;
  while (j < n && Classify(text[j]) == run_class) ++j;
  if (run_class != CharClass::kSpace) return j;
  // `\s+(?!\S)`: a whitespace run followed by a non-space gives back its last character
  // (which then starts the next piece, e.g. as the " " of " word"), unless that would leave
  // it empty; then `\s+` takes the single character.
  return j < n && j - i >= 2 ? j - 1 : j;
}

// VocabReader collects a JSON object of token -> id through nlohmann's SAX interface, which
// skips building a DOM (the 50k-entry vocabularies parse about twice as fast).
class VocabReader : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::vector<std::pair<std::string, int64_t>> entries;
  std::string error;  // set when a callback returns false

  bool start_object(std::size_t) override {
    return depth_++ == 0 || Fail("expected a flat object of token -> id, found a nested object");
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool key(string_t& key) override {
    key_ = std::move(key);
    return true;
  }
  bool number_unsigned(number_unsigned_t value) override {
    if (depth_ != 1) return NotAnId();
    if (value > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      return Fail(
          absl::StrCat("the id of token \"", key_, "\" is ", value, "; ids must be below 2^31"));
    }
    entries.emplace_back(std::move(key_), static_cast<int64_t>(value));
    return true;
  }
  bool number_integer(number_integer_t value) override {
    return value >= 0 ? number_unsigned(static_cast<number_unsigned_t>(value)) : NotAnId();
  }
  bool null() override { return NotAnId(); }
  bool boolean(bool) override { return NotAnId(); }
  bool number_float(number_float_t, const string_t&) override { return NotAnId(); }
  bool string(string_t&) override { return NotAnId(); }
  bool binary(binary_t&) override { return NotAnId(); }
  bool start_array(std::size_t) override { return NotAnId(); }
  bool end_array() override { return NotAnId(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return Fail(e.what());
  }

 private:
  bool Fail(std::string message) {
    if (error.empty()) error = std::move(message);
    return false;
  }
  bool NotAnId() {
    return Fail(depth_ == 1
                    ? absl::StrCat("the id of token \"", key_, "\" is not an integer in [0, 2^31)")
                    : "expected a JSON object of token -> id");
  }

  int depth_ = 0;
  std::string key_;
};

}  // namespace

struct ByteLevelBpe::Rep {
  struct Token {
    std::string bytes;  // what the token decodes to
    bool special;
  };
  absl::flat_hash_map<std::string, int64_t> ids;  // token string -> id
  absl::flat_hash_map<int64_t, Token> tokens;     // id -> token
  bool has_merges = false;
  std::array<int32_t, 256> byte_ids{};  // a byte's single-character token; valid with merges
  internal::MergeTable merges;
};

absl::StatusOr<ByteLevelBpe> ByteLevelBpe::Load(const std::string& vocab_json_path,
                                                const std::string& merges_path) {
  auto rep = std::make_shared<Rep>();
  {
    RETRACE_ASSIGN_OR_RETURN(const std::string contents,
                             internal::ReadFile(vocab_json_path, kMaxFileBytes));
    VocabReader reader;
    bool parsed = false;
    try {
      parsed = nlohmann::json::sax_parse(contents, &reader);
    } catch (const nlohmann::json::exception& e) {
      reader.error = e.what();
    }
    if (!parsed || reader.entries.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(vocab_json_path, ": ", reader.error.empty() ? "no tokens" : reader.error));
    }
    rep->ids.reserve(reader.entries.size());
    rep->tokens.reserve(reader.entries.size());
    for (auto& [token, id] : reader.entries) {
      std::string bytes;
      for (char32_t c : internal::DecodeUtf8(token)) {
        const int byte = internal::UnicodeToByte(c);
        if (byte < 0) {
          // A character outside the byte-to-unicode table: as in HF's ByteLevel decoder,
          // the token then stands for its own UTF-8.
          bytes = token;
          break;
        }
        bytes.push_back(static_cast<char>(byte));
      }
      if (!rep->tokens.try_emplace(id, Rep::Token{std::move(bytes), IsSpecialToken(token)})
               .second) {
        return absl::InvalidArgumentError(absl::StrCat(
            vocab_json_path, ": id ", id, " is used by two tokens, one is \"", token, "\""));
      }
      if (!rep->ids.emplace(token, id).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(vocab_json_path, ": token \"", token, "\" appears twice"));
      }
    }
  }
  if (merges_path.empty()) return ByteLevelBpe(std::move(rep));

  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    internal::AppendUtf8(internal::ByteToUnicode()[b], &symbol);
    auto it = rep->ids.find(symbol);
    if (it == rep->ids.end()) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_json_path, ": has no token for byte ", b,
                                                     " (\"", symbol, "\"), needed to encode"));
    }
    rep->byte_ids[b] = static_cast<int32_t>(it->second);
  }
  RETRACE_ASSIGN_OR_RETURN(const std::string merges,
                           internal::ReadFile(merges_path, kMaxFileBytes));
  auto line_error = [&merges_path](int line_number, absl::string_view message) {
    return absl::InvalidArgumentError(absl::StrCat(merges_path, ":", line_number, ": ", message));
  };
  int line_number = 0;
  int32_t rank = 0;
  for (absl::string_view line : absl::StrSplit(merges, '\n')) {
    ++line_number;
    absl::ConsumeSuffix(&line, "\r");
    if (line.empty() || (line_number == 1 && absl::StartsWith(line, "#version"))) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return line_error(line_number,
                        absl::StrCat("expected two symbols separated by one space, got \"",
                                     line.substr(0, 80), "\""));
    }
    const std::string merged = absl::StrCat(parts[0], parts[1]);
    int32_t symbol_ids[3];
    for (int k = 0; k < 3; ++k) {
      const absl::string_view symbol = k < 2 ? parts[k] : absl::string_view(merged);
      auto it = rep->ids.find(symbol);
      if (it == rep->ids.end()) {
        return line_error(line_number,
                          absl::StrCat("\"", symbol, "\" is not in ", vocab_json_path));
      }
      symbol_ids[k] = static_cast<int32_t>(it->second);
    }
    rep->merges.Add(symbol_ids[0], symbol_ids[1], rank++, symbol_ids[2]);
  }
  rep->has_merges = true;
  return ByteLevelBpe(std::move(rep));
}

absl::StatusOr<std::vector<int64_t>> ByteLevelBpe::Encode(std::string_view text) const {
  if (!rep_->has_merges) {
    return absl::FailedPreconditionError("ByteLevelBpe was loaded without merges; cannot encode");
  }
  const std::u32string code_points = internal::DecodeUtf8(text);
  std::vector<int64_t> ids;
  std::vector<int32_t> word;
  for (size_t i = 0; i < code_points.size();) {
    const size_t end = PieceEnd(code_points, i);
    const std::string bytes =
        internal::EncodeUtf8(std::u32string_view(code_points).substr(i, end - i));
    i = end;
    for (size_t start = 0; start < bytes.size();) {
      const size_t chunk_end = internal::WordChunkEnd(bytes, start);
      word.clear();
      for (size_t k = start; k < chunk_end; ++k) {
        word.push_back(rep_->byte_ids[static_cast<uint8_t>(bytes[k])]);
      }
      internal::ApplyMerges(rep_->merges, &word);
      ids.insert(ids.end(), word.begin(), word.end());
      start = chunk_end;
    }
  }
  return ids;
}

absl::StatusOr<std::string> ByteLevelBpe::Decode(const std::vector<int64_t>& ids,
                                                 bool skip_special) const {
  std::string bytes;
  for (size_t position = 0; position < ids.size(); ++position) {
    auto it = rep_->tokens.find(ids[position]);
    if (it == rep_->tokens.end()) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", ids[position], " at position ",
                                                     position, " is not in the vocabulary"));
    }
    if (skip_special && it->second.special) continue;
    bytes += it->second.bytes;
  }
  return internal::ReplaceInvalidUtf8(bytes);
}

int64_t ByteLevelBpe::IdOf(std::string_view token) const {
  auto it = rep_->ids.find(absl::string_view(token.data(), token.size()));
  return it == rep_->ids.end() ? -1 : it->second;
}

size_t ByteLevelBpe::vocab_size() const { return rep_->ids.size(); }

}  // namespace retrace::text
