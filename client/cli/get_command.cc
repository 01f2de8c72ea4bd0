// `retrace get`: shows stored items by id — caption and attributes, embeddings with --json.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/id_batches.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "get";

constexpr char kGetUsage[] =
    R"(usage: retrace get --collection NAME [--embeddings] [--after POSITION] ID...

Shows stored items, 64 ids per request: "id  caption" with attributes as k=v, or the
error for an id that is not stored. With --json, prints one GetResponse (with
--embeddings, each item's clip_image and caption_text vectors too). Exit status 1 if
any id was not found. --after POSITION: as in search, answer once the server has
applied the store's changes up to POSITION.
)";

}  // namespace

int RunGetCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"collection", true},
                                 {"embeddings", false},
                                 {"after", true},
                                 {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kGetUsage);
  if (parsed->Has("help")) {
    context.out() << kGetUsage;
    return kExitOk;
  }
  if (!parsed->Has("collection")) {
    return context.UsageError(kCommand, "missing --collection", kGetUsage);
  }
  const std::vector<std::string>& ids = parsed->positional();
  if (ids.empty()) return context.UsageError(kCommand, "missing ID", kGetUsage);

  v1::GetRequest base;
  base.set_collection(parsed->Value("collection"));
  base.set_include_embeddings(parsed->Has("embeddings"));
  if (parsed->Has("after")) {
    auto after = ParseInt("after", parsed->Value("after"), 0, INT64_MAX);
    if (!after.ok()) return context.UsageError(kCommand, after.status().message(), kGetUsage);
    base.set_min_position(*after);
  }
  v1::GetResponse all;
  grpc::Status status =
      CallInIdBatches(context.client(), &client::RetraceClient::Get, base, ids, &all);
  if (!status.ok()) return context.RpcError(kCommand, status);

  int failed = 0;
  Table table{{"id", "caption"}, {}, {}, /*flexible_column=*/1};
  for (int i = 0; i < all.results_size(); ++i) {
    const v1::GetResult& result = all.results(i);
    if (result.status().code() != 0) {
      ++failed;
      table.rows.push_back(
          {ids[i], absl::StrCat(CodeName(result.status().code()), ": ", result.status().message())});
    } else {
      table.rows.push_back(
          {ids[i], CaptionWithAttributes(result.item().caption(), result.item().attributes())});
    }
  }
  if (context.json()) {
    for (v1::GetResult& result : *all.mutable_results()) result.mutable_status();
    context.out() << ToJson(all, /*multiline=*/true) << "\n";
  } else {
    context.out() << RenderTable(table);
  }
  return failed > 0 ? kExitFailed : kExitOk;
}

}  // namespace retrace::cli
