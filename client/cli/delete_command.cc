// `retrace delete`: removes items from a collection by id.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/id_batches.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "delete";

constexpr char kDeleteUsage[] =
    R"(usage: retrace delete --collection NAME ID...

Deletes items by id, 64 per request, and prints "id  result" for each. With --json,
prints one DeleteResponse, results in ID order. Exit status 1 if any id failed (e.g.
NOT_FOUND).
)";

}  // namespace

int RunDeleteCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"collection", true}, {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kDeleteUsage);
  if (parsed->Has("help")) {
    context.out() << kDeleteUsage;
    return kExitOk;
  }
  if (!parsed->Has("collection")) {
    return context.UsageError(kCommand, "missing --collection", kDeleteUsage);
  }
  const std::vector<std::string>& ids = parsed->positional();
  if (ids.empty()) return context.UsageError(kCommand, "missing ID", kDeleteUsage);

  v1::DeleteRequest base;
  base.set_collection(parsed->Value("collection"));
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
