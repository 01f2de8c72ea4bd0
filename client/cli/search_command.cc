// `retrace search`: the best items of a collection for an image, a text or an embedding.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/image_files.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "search";

constexpr char kSearchUsage[] =
    R"(usage: retrace search --collection NAME (--image FILE | --text TEXT | --embedding V1,V2,...)
                      [--top-k K] [--mode caption|provenance|hybrid]

Prints "rank  score  id  caption", best first; an item's attributes follow its caption
as k=v. --top-k: default 10. --mode: default caption (Caption-Matching); provenance and
hybrid are reserved (the server answers UNIMPLEMENTED). With --json, prints the
SearchResponse.
)";


}  // namespace

absl::StatusOr<v1::SearchMode> ParseSearchMode(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "caption") return v1::CAPTION_MATCH;
  if (lower == "provenance") return v1::PROVENANCE;
  if (lower == "hybrid") return v1::HYBRID;
  return absl::InvalidArgumentError(
      absl::StrCat("--mode: expected caption, provenance or hybrid, got '", name, "'"));
}

int RunSearchCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"collection", true},
                                 {"image", true},
                                 {"text", true},
                                 {"embedding", true},
                                 {"top-k", true},
                                 {"mode", true},
                                 {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kSearchUsage);
  if (parsed->Has("help")) {
    context.out() << kSearchUsage;
    return kExitOk;
  }
  if (!parsed->positional().empty()) {
    return context.UsageError(kCommand,
                              absl::StrCat("unexpected argument '", parsed->positional()[0], "'"),
                              kSearchUsage);
  }
  if (!parsed->Has("collection")) {
    return context.UsageError(kCommand, "missing --collection", kSearchUsage);
  }
  const int queries = parsed->Has("image") + parsed->Has("text") + parsed->Has("embedding");
  if (queries != 1) {
    return context.UsageError(kCommand, "give exactly one of --image, --text and --embedding",
                              kSearchUsage);
  }

  v1::SearchRequest request;
  request.set_collection(parsed->Value("collection"));
  if (parsed->Has("top-k")) {
    auto top_k = ParseInt("top-k", parsed->Value("top-k"), 1, INT32_MAX);
    if (!top_k.ok()) return context.UsageError(kCommand, top_k.status().message(), kSearchUsage);
    request.set_top_k(static_cast<int32_t>(*top_k));
  }
  if (parsed->Has("mode")) {
    auto mode = ParseSearchMode(parsed->Value("mode"));
    if (!mode.ok()) return context.UsageError(kCommand, mode.status().message(), kSearchUsage);
    request.set_mode(*mode);
  } else {
    request.set_mode(v1::CAPTION_MATCH);
  }
  if (parsed->Has("image")) {
    const std::string file = parsed->Value("image");
    absl::StatusOr<std::string> bytes = ReadFileBytes(file, context.max_image_bytes());
    if (!bytes.ok())
      return context.Error(kCommand, absl::StrCat(file, ": ", bytes.status().message()));
    request.set_image(std::move(*bytes));
  } else if (parsed->Has("text")) {
    request.set_text(parsed->Value("text"));
  } else {
    auto values = ParseFloatList("embedding", parsed->Value("embedding"));
    if (!values.ok()) return context.UsageError(kCommand, values.status().message(), kSearchUsage);
    request.mutable_embedding()->mutable_values()->Add(values->begin(), values->end());
  }

  v1::SearchResponse response;
  grpc::Status status = context.client().Search(request, &response);
  if (!status.ok()) return context.RpcError(kCommand, status);
  if (context.json()) {
    context.out() << ToJson(response, /*multiline=*/true) << "\n";
    return kExitOk;
  }
  if (response.hits().empty()) {
    context.out() << "no hits\n";
    return kExitOk;
  }
  Table table{{"rank", "score", "id", "caption"}, {}, {true, true}, /*flexible_column=*/3};
  int rank = 0;
  for (const v1::SearchHit& hit : response.hits()) {
    table.rows.push_back(
        {absl::StrCat(++rank), absl::StrFormat("%.4f", hit.score()), hit.id(), CaptionWithAttributes(hit.caption(), hit.attributes())});
  }
  context.out() << RenderTable(table);
  return kExitOk;
}

}  // namespace retrace::cli
