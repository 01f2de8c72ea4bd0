// parse.cc — a tokenizer and a recursive-descent parser for parse.h's grammar:
//   expr := and_expr ("or" and_expr)*      and_expr := unary ("and" unary)*
//   unary := "not" unary | "(" expr ")" | condition
//   condition := key ( "=" value | "!=" value | cmp number | ["not"] "in" "(" values ")"
//                    | "exists" | "prefix" value )
//              | ("@created" | "@updated") cmp (number | string)
#include "core/filter/parse.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/common/utf8.h"

namespace retrace::filter {
namespace {

enum class Tok { kEnd, kWord, kString, kNumber, kSymbol };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // a word or number as written, a string's value, a symbol
  size_t offset = 0; // byte offset in the input
};

bool IsWordStart(unsigned char c) { return absl::ascii_isalpha(c) || c == '_' || c >= 0x80; }
bool IsWordChar(unsigned char c) {
  return IsWordStart(c) || absl::ascii_isdigit(c) || c == '.' || c == '-' || c == ':' || c == '/';
}

class Parser {
 public:
  Parser(absl::string_view text, const FilterLimits& limits) : text_(text), limits_(limits) {}

  absl::StatusOr<Filter> Run() {
    absl::Status s = Tokenize();
    if (!s.ok()) return s;
    absl::StatusOr<Filter> f = Or(1);
    if (!f.ok()) return f;
    if (Peek().kind != Tok::kEnd) return Unexpected(Peek());
    return f;
  }

 private:
  // Column is 1 + the characters (UTF-8 lead bytes) before `offset`.
  size_t Column(size_t offset) const {
    size_t column = 1;
    for (size_t i = 0; i < offset && i < text_.size(); ++i) {
      if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) ++column;
    }
    return column;
  }
  absl::Status ErrorAt(size_t offset, absl::string_view why) const {
    return absl::InvalidArgumentError(
        absl::StrCat("filter: ", why, " at column ", Column(offset)));
  }
  static std::string Shown(const Token& t) {
    std::string s = t.kind == Tok::kString ? absl::StrCat("\"", t.text, "\"") : t.text;
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return absl::StrCat("\"", s, "\"");
  }
  absl::Status Unexpected(const Token& t, absl::string_view expected = "") const {
    const std::string want = expected.empty() ? "" : absl::StrCat(" (expected ", expected, ")");
    if (t.kind == Tok::kEnd) return ErrorAt(t.offset, absl::StrCat("unexpected end", want));
    return ErrorAt(t.offset, absl::StrCat("unexpected token ", Shown(t), want));
  }

  absl::Status Tokenize() {
    size_t i = 0;
    while (i < text_.size()) {
      const unsigned char c = static_cast<unsigned char>(text_[i]);
      if (absl::ascii_isspace(c)) {
        ++i;
        continue;
      }
      Token t;
      t.offset = i;
      if (c == '"') {
        t.kind = Tok::kString;
        ++i;
        bool closed = false;
        while (i < text_.size()) {
          const char d = text_[i++];
          if (d == '"') {
            closed = true;
            break;
          }
          if (d != '\\') {
            t.text.push_back(d);
            continue;
          }
          if (i >= text_.size()) break;
          const char e = text_[i++];
          switch (e) {
            case '"': case '\\': t.text.push_back(e); break;
            case 'n': t.text.push_back('\n'); break;
            case 't': t.text.push_back('\t'); break;
            default:
              return ErrorAt(i - 2, absl::StrCat("unknown escape \"\\", std::string(1, e),
                                                 "\" in a string (use \\\" \\\\ \\n \\t)"));
          }
        }
        if (!closed) return ErrorAt(t.offset, "unterminated string starting");
      } else if (absl::ascii_isdigit(c) ||
                 ((c == '-' || c == '+' || c == '.') && i + 1 < text_.size() &&
                  (absl::ascii_isdigit(text_[i + 1]) || text_[i + 1] == '.'))) {
        t.kind = Tok::kNumber;
        size_t j = i + 1;
        while (j < text_.size() &&
               (absl::ascii_isalnum(text_[j]) || text_[j] == '.' ||
                ((text_[j] == '-' || text_[j] == '+') && (text_[j - 1] == 'e' || text_[j - 1] == 'E')))) {
          ++j;
        }
        t.text = std::string(text_.substr(i, j - i));
        double unused;
        if (!absl::SimpleAtod(t.text, &unused)) {
          return ErrorAt(i, absl::StrCat("bad number \"", t.text, "\""));
        }
        i = j;
      } else if (IsWordStart(c) ||
                 (c == '@' && i + 1 < text_.size() &&
                  IsWordStart(static_cast<unsigned char>(text_[i + 1])))) {
        // A word; `@word` names an item time (ConditionAt).
        t.kind = Tok::kWord;
        size_t j = i + 1;
        while (j < text_.size() && IsWordChar(static_cast<unsigned char>(text_[j]))) ++j;
        t.text = std::string(text_.substr(i, j - i));
        i = j;
      } else {
        t.kind = Tok::kSymbol;
        const absl::string_view two = text_.substr(i, 2);
        if (two == "<=" || two == ">=" || two == "!=" || two == "==") {
          t.text = std::string(two);
          i += 2;
        } else if (c == '=' || c == '<' || c == '>' || c == '(' || c == ')' || c == ',') {
          t.text = std::string(1, static_cast<char>(c));
          ++i;
        } else {
          // Show the whole character, not a stray byte of it.
          size_t j = i + 1;
          while (j < text_.size() && (static_cast<unsigned char>(text_[j]) & 0xC0) == 0x80) ++j;
          t.text = std::string(text_.substr(i, j - i));
          return Unexpected(t);
        }
      }
      tokens_.push_back(std::move(t));
    }
    Token end;
    end.offset = text_.size();
    tokens_.push_back(end);
    return absl::OkStatus();
  }

  const Token& Peek() const { return tokens_[next_]; }
  const Token& Take() { return tokens_[next_ < tokens_.size() - 1 ? next_++ : next_]; }
  bool IsKeyword(const Token& t, absl::string_view word) const {
    return t.kind == Tok::kWord && absl::EqualsIgnoreCase(t.text, word);
  }
  bool IsSymbol(const Token& t, absl::string_view s) const {
    return t.kind == Tok::kSymbol && t.text == s;
  }
  static bool IsReserved(const std::string& word) {
    for (absl::string_view k : {"and", "or", "not", "in", "exists", "prefix"}) {
      if (absl::EqualsIgnoreCase(word, k)) return true;
    }
    return false;
  }
  absl::Status Deeper(int depth, const Token& at) const {
    if (depth > limits_.max_depth) {
      return ErrorAt(at.offset, absl::StrCat("nested deeper than ", limits_.max_depth, " levels"));
    }
    return absl::OkStatus();
  }

  // Group parses `sub (word sub)*` into one group of kind, or the single operand.
  template <typename Sub>
  absl::StatusOr<Filter> Group(int depth, absl::string_view word, Filter::Kind kind, Sub sub) {
    absl::StatusOr<Filter> first = sub(depth);
    if (!first.ok() || !IsKeyword(Peek(), word)) return first;
    std::vector<Filter> children;
    children.push_back(*std::move(first));
    while (IsKeyword(Peek(), word)) {
      const Token& op = Take();
      absl::Status s = Deeper(depth + 1, op);
      if (!s.ok()) return s;
      absl::StatusOr<Filter> next = sub(depth + 1);
      if (!next.ok()) return next;
      children.push_back(*std::move(next));
    }
    Filter f;
    f.kind = kind;
    f.children = std::move(children);
    return f;
  }
  absl::StatusOr<Filter> Or(int depth) {
    return Group(depth, "or", Filter::Kind::kAny, [this](int d) { return And(d); });
  }
  absl::StatusOr<Filter> And(int depth) {
    return Group(depth, "and", Filter::Kind::kAll, [this](int d) { return Unary(d); });
  }
  absl::StatusOr<Filter> Unary(int depth) {
    const Token& t = Peek();
    if (IsKeyword(t, "not")) {
      Take();
      absl::Status s = Deeper(depth + 1, t);
      if (!s.ok()) return s;
      absl::StatusOr<Filter> inner = Unary(depth + 1);
      if (!inner.ok()) return inner;
      return Filter::Not(*std::move(inner));
    }
    if (IsSymbol(t, "(")) {
      // Parentheses add no level to the tree but do to the parser's stack: bound them too.
      if (++parens_ > limits_.max_depth) {
        return ErrorAt(t.offset, absl::StrCat("parentheses nested deeper than ",
                                              limits_.max_depth, " levels"));
      }
      Take();
      absl::StatusOr<Filter> inner = Or(depth);
      --parens_;
      if (!inner.ok()) return inner;
      if (!IsSymbol(Peek(), ")")) return Unexpected(Peek(), "\")\"");
      Take();
      return inner;
    }
    return ConditionAt(depth);
  }

  absl::StatusOr<std::string> Value(absl::string_view after) {
    const Token& t = Take();
    if (t.kind == Tok::kString || t.kind == Tok::kNumber) return t.text;
    return Unexpected(t, absl::StrCat("a \"quoted string\" or a number after ", after));
  }
  absl::StatusOr<std::vector<std::string>> ValueList() {
    if (!IsSymbol(Peek(), "(")) return Unexpected(Peek(), "\"(\" after in");
    Take();
    std::vector<std::string> values;
    while (true) {
      absl::StatusOr<std::string> v = Value("\"(\" or \",\"");
      if (!v.ok()) return v.status();
      values.push_back(*std::move(v));
      if (static_cast<int>(values.size()) > limits_.max_terms) {
        return ErrorAt(Peek().offset, absl::StrCat("more than ", limits_.max_terms, " values"));
      }
      const Token& sep = Take();
      if (IsSymbol(sep, ")")) return values;
      if (!IsSymbol(sep, ",")) return Unexpected(sep, "\",\" or \")\"");
    }
  }

  // Milliseconds reads a time bound: a number of milliseconds since the Unix epoch, or a quoted
  // RFC 3339 time ("2026-01-31T12:00:00Z", "…+01:00") or date ("2026-01-31", midnight UTC).
  absl::StatusOr<double> Milliseconds(const Token& bound, const Token& op) const {
    double x = 0;
    if (bound.kind == Tok::kNumber && absl::SimpleAtod(bound.text, &x) && std::isfinite(x)) {
      return x;
    }
    absl::Time t;
    std::string unused;
    if (bound.kind == Tok::kString &&
        (absl::ParseTime(absl::RFC3339_full, bound.text, &t, &unused) ||
         absl::ParseTime("%Y-%m-%d", bound.text, absl::UTCTimeZone(), &t, &unused))) {
      return static_cast<double>(absl::ToUnixMillis(t));
    }
    return ErrorAt(bound.offset,
                   absl::StrCat("\"", op.text, "\" on a time needs milliseconds since the epoch "
                                "or a quoted RFC 3339 time or date (\"2026-01-31\"), not ",
                                bound.kind == Tok::kEnd ? "the end" : Shown(bound)));
  }

  // TimeConditionAt parses the rest of `@created <op> bound` after its key.
  absl::StatusOr<Filter> TimeConditionAt(const Token& key) {
    Condition::Subject subject;
    if (absl::EqualsIgnoreCase(key.text, "@created")) {
      subject = Condition::Subject::kCreated;
    } else if (absl::EqualsIgnoreCase(key.text, "@updated")) {
      subject = Condition::Subject::kUpdated;
    } else {
      return ErrorAt(key.offset, absl::StrCat("unknown item time ", Shown(key),
                                              " (@created or @updated; quote an attribute key "
                                              "that starts with @)"));
    }
    const Token& op = Take();
    if (!IsSymbol(op, "<") && !IsSymbol(op, "<=") && !IsSymbol(op, ">") && !IsSymbol(op, ">=")) {
      return Unexpected(op, absl::StrCat("<, <=, > or >= after ", key.text));
    }
    absl::StatusOr<double> ms = Milliseconds(Take(), op);
    if (!ms.ok()) return ms.status();
    const bool inclusive = op.text.size() == 2;
    if (op.text[0] == '>') return Filter::Time(subject, Bound{*ms, inclusive}, std::nullopt);
    return Filter::Time(subject, std::nullopt, Bound{*ms, inclusive});
  }

  absl::StatusOr<Filter> ConditionAt(int depth) {
    const Token& key = Take();
    if (key.kind == Tok::kWord && key.text[0] == '@') return TimeConditionAt(key);
    if (key.kind == Tok::kWord && IsReserved(key.text)) {
      return Unexpected(key, "a key; quote a key that is a keyword");
    }
    if (key.kind != Tok::kWord && key.kind != Tok::kString) return Unexpected(key, "a key");
    const std::string attribute = key.text;
    const Token& op = Take();
    if (IsSymbol(op, "=") || IsSymbol(op, "==") || IsSymbol(op, "!=")) {
      absl::StatusOr<std::string> v = Value(absl::StrCat("\"", op.text, "\""));
      if (!v.ok()) return v.status();
      Filter eq = Filter::Equals(attribute, *std::move(v));
      if (!IsSymbol(op, "!=")) return eq;
      absl::Status s = Deeper(depth + 1, op);
      if (!s.ok()) return s;
      return Filter::Not(std::move(eq));
    }
    if (IsSymbol(op, "<") || IsSymbol(op, "<=") || IsSymbol(op, ">") || IsSymbol(op, ">=")) {
      const Token& bound = Take();
      double x = 0;
      if ((bound.kind != Tok::kNumber && bound.kind != Tok::kString) ||
          !absl::SimpleAtod(bound.text, &x) || !std::isfinite(x)) {
        return ErrorAt(bound.offset,
                       absl::StrCat("\"", op.text, "\" needs a finite number, not ",
                                    bound.kind == Tok::kEnd ? "the end" : Shown(bound)));
      }
      const bool inclusive = op.text.size() == 2;
      if (op.text[0] == '>') return Filter::Range(attribute, Bound{x, inclusive}, std::nullopt);
      return Filter::Range(attribute, std::nullopt, Bound{x, inclusive});
    }
    if (IsKeyword(op, "in") || IsKeyword(op, "not")) {
      const bool negated = IsKeyword(op, "not");
      if (negated) {
        if (!IsKeyword(Peek(), "in")) return Unexpected(Peek(), "in after not");
        Take();
        absl::Status s = Deeper(depth + 1, op);
        if (!s.ok()) return s;
      }
      absl::StatusOr<std::vector<std::string>> values = ValueList();
      if (!values.ok()) return values.status();
      Filter in = Filter::In(attribute, *std::move(values));
      return negated ? Filter::Not(std::move(in)) : in;
    }
    if (IsKeyword(op, "exists")) return Filter::Exists(attribute);
    if (IsKeyword(op, "prefix")) {
      absl::StatusOr<std::string> v = Value("prefix");
      if (!v.ok()) return v.status();
      return Filter::Prefix(attribute, *std::move(v));
    }
    return Unexpected(op, "=, !=, <, <=, >, >=, in, not in, exists or prefix");
  }

  const absl::string_view text_;
  const FilterLimits& limits_;
  std::vector<Token> tokens_;
  size_t next_ = 0;
  int parens_ = 0;  // open parentheses around the current token
};

}  // namespace

absl::StatusOr<Filter> ParseFilter(absl::string_view text, const FilterLimits& limits) {
  if (text.size() > kMaxFilterTextBytes) {
    return absl::InvalidArgumentError(absl::StrCat("filter: ", text.size(),
                                                   " bytes; at most ", kMaxFilterTextBytes));
  }
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("filter: must be valid UTF-8");
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError("filter: empty; give a condition such as license = \"cc-by\"");
  }
  Parser parser(text, limits);
  absl::StatusOr<Filter> f = parser.Run();
  if (!f.ok()) return f;
  absl::Status valid = Validate(*f, limits);
  if (!valid.ok()) return valid;
  return f;
}

}  // namespace retrace::filter
