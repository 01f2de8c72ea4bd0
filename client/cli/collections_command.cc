// `retrace collections`: create, list, describe and drop collections.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

constexpr char kCollectionsUsage[] =
    R"(usage: retrace collections create NAME [--shards N] [--index FACTORY]
                                 [--image-index FACTORY]
       retrace collections list
       retrace collections describe NAME
       retrace collections drop NAME

create: N shards per search space (default 1); --index is the caption space's FAISS
index factory string, --image-index the image space's (PROVENANCE), each default Flat,
e.g. HNSW32 or IVF1024,PQ64. With --json, prints the Collection (create,
describe), the ListCollectionsResponse (list) or the DropCollectionResponse (drop).
)";

// DescribeTable: a collection as "field  value" lines, named as in the proto.
std::string DescribeTable(const v1::Collection& c) {
  Table table;
  table.rows = {{"name", c.name()},
                {"item_count", absl::StrCat(c.item_count())},
                {"shards", absl::StrCat(c.shards())},
                {"caption_index", c.caption_index()},
                {"caption_dim", absl::StrCat(c.caption_dim())},
                {"clip_model", c.clip_model()},
                {"captioner_model", c.captioner_model()},
                {"image_index", c.image_index()},
                {"image_dim", absl::StrCat(c.image_dim())},
                {"image_encoder_model",
                 c.image_encoder_model().empty() ? "(none: CLIP alone)" : c.image_encoder_model()},
                {"created_position", absl::StrCat(c.created_position())},
                {"applied_position", absl::StrCat(c.applied_position())},
                {"lag", absl::StrCat(c.lag())},
                {"degraded", c.degraded().empty() ? "no" : c.degraded()}};
  return RenderTable(table);
}

}  // namespace

int RunCollectionsCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(
      args, {{"shards", true}, {"index", true}, {"image-index", true}, {"help", false}});
  if (!parsed.ok()) {
    return context.UsageError("collections", parsed.status().message(), kCollectionsUsage);
  }
  if (parsed->Has("help")) {
    context.out() << kCollectionsUsage;
    return kExitOk;
  }
  const std::vector<std::string>& positional = parsed->positional();
  if (positional.empty()) {
    return context.UsageError("collections", "missing create|list|describe|drop",
                              kCollectionsUsage);
  }
  const std::string& verb = positional[0];
  const std::string command = absl::StrCat("collections ", verb);
  if (verb != "create" && verb != "list" && verb != "describe" && verb != "drop") {
    return context.UsageError("collections", absl::StrCat("unknown subcommand '", verb, "'"),
                              kCollectionsUsage);
  }
  const size_t wanted = verb == "list" ? 1 : 2;
  if (positional.size() < wanted) {
    return context.UsageError(command, "missing NAME", kCollectionsUsage);
  }
  if (positional.size() > wanted) {
    return context.UsageError(
        command, absl::StrCat("unexpected argument '", positional[wanted], "'"), kCollectionsUsage);
  }
  if (verb != "create" &&
      (parsed->Has("shards") || parsed->Has("index") || parsed->Has("image-index"))) {
    return context.UsageError(command, "--shards, --index and --image-index go with create only",
                              kCollectionsUsage);
  }

  grpc::Status status;
  if (verb == "create") {
    v1::CreateCollectionRequest request;
    request.mutable_collection()->set_name(positional[1]);
    if (parsed->Has("shards")) {
      auto shards = ParseInt("shards", parsed->Value("shards"), 1, 256);
      if (!shards.ok()) {
        return context.UsageError(command, shards.status().message(), kCollectionsUsage);
      }
      request.mutable_collection()->set_shards(static_cast<int32_t>(*shards));
    }
    request.mutable_collection()->set_caption_index(parsed->Value("index"));
    request.mutable_collection()->set_image_index(parsed->Value("image-index"));
    v1::Collection collection;
    status = context.client().CreateCollection(request, &collection);
    if (status.ok()) {
      context.out() << (context.json() ? ToJson(collection, /*multiline=*/true) + "\n"
                                       : absl::StrCat("created collection '", collection.name(),
                                                      "'\n", DescribeTable(collection)));
    }
  } else if (verb == "list") {
    v1::ListCollectionsResponse response;
    status = context.client().ListCollections(v1::ListCollectionsRequest(), &response);
    if (status.ok() && context.json()) {
      context.out() << ToJson(response, /*multiline=*/true) << "\n";
    } else if (status.ok() && response.collections().empty()) {
      context.out() << "no collections\n";
    } else if (status.ok()) {
      // The model names are long: describe and --json show them.
      Table table{
          {"name", "items", "shards", "index", "dim"}, {}, {false, true, true, false, true}};
      for (const v1::Collection& c : response.collections()) {
        table.rows.push_back({c.name(), absl::StrCat(c.item_count()), absl::StrCat(c.shards()),
                              c.caption_index(), absl::StrCat(c.caption_dim())});
      }
      context.out() << RenderTable(table);
    }
  } else if (verb == "describe") {
    v1::DescribeCollectionRequest request;
    request.set_name(positional[1]);
    v1::Collection collection;
    status = context.client().DescribeCollection(request, &collection);
    if (status.ok()) {
      context.out() << (context.json() ? ToJson(collection, /*multiline=*/true) + "\n"
                                       : DescribeTable(collection));
    }
  } else {
    v1::DropCollectionRequest request;
    request.set_name(positional[1]);
    v1::DropCollectionResponse response;
    status = context.client().DropCollection(request, &response);
    if (status.ok()) {
      context.out() << (context.json()
                            ? ToJson(response, /*multiline=*/true) + "\n"
                            : absl::StrCat("dropped collection '", positional[1], "'\n"));
    }
  }
  return status.ok() ? kExitOk : context.RpcError(command, status);
}

}  // namespace retrace::cli
