// `retrace delete`: removes items from a collection by id, or every item a filter matches.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/filter_arg.h"
#include "client/cli/id_batches.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "delete";

constexpr char kDeleteUsage[] =
    R"(usage: retrace delete --collection NAME ID...
       retrace delete --collection NAME --filter EXPR [--dry-run]

Deletes items by id, 64 per request, and prints "id  result" for each. With --json,
prints one DeleteResponse, results in ID order. Exit status 1 if any id failed (e.g.
NOT_FOUND).
--filter EXPR: deletes every item that satisfies it (the syntax of `retrace search
--help`) and prints how many matched and were deleted; --dry-run only counts them.
The server deletes in batches: if the call fails part way, the error says how many
were deleted, and the same command again deletes the rest.
)";

}  // namespace

int RunDeleteCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(
      args, {{"collection", true}, {"filter", true}, {"dry-run", false}, {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kDeleteUsage);
  if (parsed->Has("help")) {
    context.out() << kDeleteUsage;
    return kExitOk;
  }
  if (!parsed->Has("collection")) {
    return context.UsageError(kCommand, "missing --collection", kDeleteUsage);
  }
  const std::vector<std::string>& ids = parsed->positional();
  v1::DeleteRequest base;
  base.set_collection(parsed->Value("collection"));
  if (parsed->Has("filter")) {
    if (!ids.empty()) {
      return context.UsageError(kCommand, "give IDs or --filter, not both", kDeleteUsage);
    }
    absl::Status f = ParseFilterArg(parsed->Value("filter"), base.mutable_filter());
    if (!f.ok()) return context.UsageError(kCommand, f.message(), kDeleteUsage);
    base.set_dry_run(parsed->Has("dry-run"));
    v1::DeleteResponse response;
    grpc::Status status = context.client().Delete(base, &response);
    if (!status.ok()) return context.RpcError(kCommand, status);
    if (context.json()) {
      context.out() << ToJson(response, /*multiline=*/true) << "\n";
    } else if (base.dry_run()) {
      context.out() << response.matched() << " items match; nothing deleted (--dry-run)\n";
    } else {
      context.out() << response.matched() << " items matched, " << response.deleted()
                    << " deleted\n";
      if (response.position() > 0) context.out() << "position " << response.position() << "\n";
    }
    return kExitOk;
  }
  if (parsed->Has("dry-run")) {
    return context.UsageError(kCommand, "--dry-run goes with --filter", kDeleteUsage);
  }
  if (ids.empty()) return context.UsageError(kCommand, "missing ID or --filter", kDeleteUsage);

  v1::DeleteResponse all;
  grpc::Status status =
      CallInIdBatches(context.client(), &client::RetraceClient::Delete, base, ids, &all);
  if (!status.ok()) return context.RpcError(kCommand, status);

  int failed = 0;
  Table table{{"id", "result"}, {}, {}, /*flexible_column=*/-1};
  for (int i = 0; i < all.results_size(); ++i) {
    const v1::ItemStatus& status = all.results(i).status();
    if (status.code() != 0) ++failed;
    table.rows.push_back({ids[i], status.code() == 0 ? "deleted"
                                                     : absl::StrCat(CodeName(status.code()), ": ",
                                                                    status.message())});
  }
  if (context.json()) {
    for (v1::IndexResult& result : *all.mutable_results()) result.mutable_status();
    context.out() << ToJson(all, /*multiline=*/true) << "\n";
  } else {
    context.out() << RenderTable(table);
    if (all.position() > 0) context.out() << "position " << all.position() << "\n";
  }
  return failed > 0 ? kExitFailed : kExitOk;
}

}  // namespace retrace::cli
