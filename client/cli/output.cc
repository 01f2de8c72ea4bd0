#include "client/cli/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace retrace::cli {
namespace {

constexpr absl::string_view kEllipsis = "…";
constexpr size_t kMinFlexibleWidth = 10;

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::string CleanCell(absl::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  }
  return out;
}

}  // namespace

size_t DisplayWidth(absl::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return !IsContinuationByte(c); }));
}

std::string TruncateToWidth(absl::string_view s, size_t width) {
  if (DisplayWidth(s) <= width) return std::string(s);
  if (width == 0) return "";
  // Keep width-1 code points: stop at the lead byte of the width-th one.
  size_t kept = 0, end = 0;
  for (; end < s.size(); ++end) {
    if (!IsContinuationByte(s[end]) && kept++ == width - 1) break;
  }
  return absl::StrCat(s.substr(0, end), kEllipsis);
}

std::string RenderTable(const Table& table, size_t max_width) {
  size_t columns = table.headers.size();
  for (const auto& row : table.rows) columns = std::max(columns, row.size());
  std::vector<std::vector<std::string>> lines;
  if (!table.headers.empty()) lines.push_back(table.headers);
  for (const auto& row : table.rows) lines.push_back(row);
  std::vector<size_t> widths(columns, 0);
  for (auto& line : lines) {
    line.resize(columns);
    for (size_t c = 0; c < columns; ++c) {
      line[c] = CleanCell(line[c]);
      widths[c] = std::max(widths[c], DisplayWidth(line[c]));
    }
  }
  const int flex = table.flexible_column;
  if (flex >= 0 && static_cast<size_t>(flex) < columns) {
    size_t total = 2 * (columns - 1);
    for (size_t w : widths) total += w;
    if (total > max_width) {
      const size_t floor = std::max(
          kMinFlexibleWidth,
          table.headers.size() > static_cast<size_t>(flex) ? DisplayWidth(table.headers[flex]) : 0);
      const size_t others = total - widths[flex];
      const size_t room = max_width > others ? max_width - others : 0;
      widths[flex] = std::min(widths[flex], std::max(room, floor));
      for (auto& line : lines) line[flex] = TruncateToWidth(line[flex], widths[flex]);
    }
  }
  std::string out;
  for (const auto& line : lines) {
    // Trailing empty cells add no padding, so a line never ends in spaces.
    size_t last = columns;
    while (last > 0 && line[last - 1].empty()) --last;
    std::string text;
    for (size_t c = 0; c < last; ++c) {
      const size_t pad = widths[c] - DisplayWidth(line[c]);
      const bool right = c < table.right_aligned.size() && table.right_aligned[c];
      if (right) text.append(pad, ' ');
      text += line[c];
      if (c + 1 < last) {
        if (!right) text.append(pad, ' ');
        text += "  ";
      }
    }
    out += text;
    out += '\n';
  }
  return out;
}

std::string ToJson(const google::protobuf::Message& message, bool multiline) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  options.add_whitespace = multiline;
  std::string json;
  // Printing a valid message only fails on invalid UTF-8, which the parser has refused already.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  if (multiline && !json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

std::string CodeName(int code) {
  if (code < 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::StrCat("CODE(", code, ")");
  }
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string FormatProgress(int64_t done, int64_t total, double items_per_second, int bar_width,
                           absl::string_view verb) {
  const std::string rate = items_per_second < 10 ? absl::StrFormat("%.1f", items_per_second)
                                                 : absl::StrFormat("%.0f", items_per_second);
  if (total < 0) return absl::StrFormat("%s %d  %s items/s", verb, done, rate);
  const double fraction = total > 0 ? std::clamp(static_cast<double>(done) / total, 0.0, 1.0) : 1;
  const int filled = static_cast<int>(fraction * bar_width);
  std::string bar;
  for (int i = 0; i < bar_width; ++i) bar += i < filled ? "█" : "░";
  return absl::StrFormat("%s %d/%d ▕%s▏ %d%%  %s items/s", verb, done, total, bar,
                         static_cast<int>(fraction * 100), rate);
}

std::string CaptionWithAttributes(const std::string& caption,
                                  const google::protobuf::Map<std::string, std::string>& attributes) {
  std::vector<std::pair<std::string, std::string>> sorted(attributes.begin(), attributes.end());
  std::sort(sorted.begin(), sorted.end());
  std::string text = caption;
  for (const auto& [key, value] : sorted) {
    absl::StrAppend(&text, text.empty() ? "" : "  ", key, "=", value);
  }
  return text;
}

}  // namespace retrace::cli
