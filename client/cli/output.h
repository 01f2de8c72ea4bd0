// output: how the `retrace` CLI prints — aligned tables, JSON, status codes, the progress line.
//
// Widths are counted in code points (a caption in any script lines up as long as its characters
// are one column wide), and cells lose control characters so one caption is always one line.
// Plain functions; safe to use from any thread.
//
// Example:
//   Table table{{"rank", "score", "id", "caption"}, rows, {true, true}, /*flexible_column=*/3};
//   std::cout << RenderTable(table);
#ifndef RETRACE_CLIENT_CLI_OUTPUT_H_
#define RETRACE_CLIENT_CLI_OUTPUT_H_

#include <google/protobuf/map.h>
#include <google/protobuf/message.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace retrace::cli {

// kTableWidth: the width RenderTable fits a table into by shortening its flexible column.
inline constexpr size_t kTableWidth = 120;

// DisplayWidth: the number of code points in `s` (bytes that are not UTF-8 continuation bytes).
size_t DisplayWidth(absl::string_view s);

// TruncateToWidth: `s` if DisplayWidth(s) <= width; else its first width-1 code points and "…".
// Never splits a code point. width 0 gives "".
std::string TruncateToWidth(absl::string_view s, size_t width);

// Table: rows of cells under a header line (no header line when `headers` is empty).
struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> right_aligned;  // per column; columns past its end are left-aligned
  int flexible_column = -1;         // shortened with "…" to fit the width; -1: none
};

// CaptionWithAttributes: a caption followed by its attributes as k=v, sorted by key.
std::string CaptionWithAttributes(const std::string& caption,
                                  const google::protobuf::Map<std::string, std::string>& attributes);

// RenderTable: the table as text, one line per row ending in '\n', columns two spaces apart and
// padded to their widest cell, without trailing spaces. Control characters in cells become
// spaces. When a line would pass `max_width`, the flexible column is cut to fit, though never
// below 10 columns (or its header's width).
std::string RenderTable(const Table& table, size_t max_width = kTableWidth);

// ToJson: `message` in protobuf's JSON mapping with proto field names and every field printed,
// defaults included; indented over several lines when `multiline`, else on one line.
std::string ToJson(const google::protobuf::Message& message, bool multiline);

// CodeName: the canonical name of a google.rpc.Code / grpc::StatusCode value, e.g. "NOT_FOUND";
// "CODE(42)" for a value outside the enum.
std::string CodeName(int code);

// FormatProgress: a progress line, e.g. "indexed 120/224 ▕████░░░░▏ 53%  18 items/s": `verb`,
// a bar of `bar_width` cells; the rate with one decimal below 10 items/s. A negative `total`
// (not known) gives no bar: "mined 120  18 items/s".
std::string FormatProgress(int64_t done, int64_t total, double items_per_second,
                           int bar_width = 20, absl::string_view verb = "indexed");

}  // namespace retrace::cli

#endif  // RETRACE_CLIENT_CLI_OUTPUT_H_
