// `retrace caption`: captions image files.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/image_files.h"
#include "client/cli/output.h"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "caption";
constexpr int kMaxImagesPerRequest = 32;

constexpr char kCaptionUsage[] =
    R"(usage: retrace caption [--max-tokens N] FILE...

Captions images, up to 32 per request, and prints "file  caption" (a failed file shows
its error). With --json, prints one CaptionResponse, results in FILE order.
Exit status 1 if any image failed.

Options:
  --max-tokens N   most tokens per caption, 1..128 (default: the captioner's)
)";

}  // namespace

int RunCaptionCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"max-tokens", true}, {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kCaptionUsage);
  if (parsed->Has("help")) {
    context.out() << kCaptionUsage;
    return kExitOk;
  }
  const std::vector<std::string>& files = parsed->positional();
  if (files.empty()) return context.UsageError(kCommand, "missing FILE", kCaptionUsage);
  int64_t max_tokens = 0;
  if (parsed->Has("max-tokens")) {
    auto n = ParseInt("max-tokens", parsed->Value("max-tokens"), 1, 128);
    if (!n.ok()) return context.UsageError(kCommand, n.status().message(), kCaptionUsage);
    max_tokens = *n;
  }

  // One result per file, in file order; files that cannot be read fail here, the rest are sent
  // in requests of at most kMaxImagesPerRequest images and one message's worth of bytes.
  v1::CaptionResponse all;
  v1::CaptionRequest request;
  std::vector<int> waiting;  // indexes in `all` of the images in `request`
  int64_t request_bytes = 0;
  auto flush = [&]() -> grpc::Status {
    if (waiting.empty()) return grpc::Status::OK;
    request.mutable_options()->set_max_new_tokens(static_cast<int32_t>(max_tokens));
    v1::CaptionResponse response;
    grpc::Status status = context.client().Caption(request, &response);
    if (status.ok() && response.results_size() != static_cast<int>(waiting.size())) {
      status = grpc::Status(grpc::StatusCode::INTERNAL,
                            absl::StrCat("the server returned ", response.results_size(),
                                         " results for ", waiting.size(), " images"));
    }
    if (!status.ok()) return status;
    for (size_t i = 0; i < waiting.size(); ++i) {
      *all.mutable_results(waiting[i]) = std::move(*response.mutable_results(i));
    }
    request.clear_images();
    waiting.clear();
    request_bytes = 0;
    return grpc::Status::OK;
  };
  for (const std::string& file : files) {
    v1::CaptionResult* result = all.add_results();
    absl::StatusOr<std::string> bytes = ReadFileBytes(file, context.max_image_bytes());
    if (!bytes.ok()) {
      result->mutable_status()->set_code(static_cast<int>(bytes.status().code()));
      result->mutable_status()->set_message(std::string(bytes.status().message()));
      continue;
    }
    const int64_t size = static_cast<int64_t>(bytes->size());
    if (waiting.size() == kMaxImagesPerRequest ||
        (!waiting.empty() && request_bytes + size > context.max_image_bytes())) {
      if (grpc::Status status = flush(); !status.ok()) return context.RpcError(kCommand, status);
    }
    request.add_images(std::move(*bytes));
    waiting.push_back(all.results_size() - 1);
    request_bytes += size;
  }
  if (grpc::Status status = flush(); !status.ok()) return context.RpcError(kCommand, status);

  int failed = 0;
  Table table{{"file", "caption"}, {}, {}, /*flexible_column=*/1};
  for (int i = 0; i < all.results_size(); ++i) {
    const v1::CaptionResult& result = all.results(i);
    std::string text = result.caption();
    if (result.status().code() != 0) {
      ++failed;
      text = absl::StrCat("error: ", CodeName(result.status().code()), ": ",
                          result.status().message());
    }
    table.rows.push_back({files[i], text});
  }
  if (context.json()) {
    for (v1::CaptionResult& result : *all.mutable_results()) result.mutable_status();
    context.out() << ToJson(all, /*multiline=*/true) << "\n";
  } else {
    context.out() << RenderTable(table);
  }
  return failed > 0 ? kExitFailed : kExitOk;
}

}  // namespace retrace::cli
