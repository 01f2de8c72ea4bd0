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
    R"(usage: retrace caption [--beam N] [--max-tokens M] [--min-tokens M] [--no-repeat-ngram K]
                       [--repetition-penalty P] [--length-penalty L] [--prompt TEXT] FILE...

Captions images, up to 32 per request, and prints "file  caption" (a failed file shows
its error). With --json, prints one CaptionResponse, results in FILE order.
Exit status 1 if any image failed. Options left out take the server's defaults.

Options:
  --beam N                 beam width, 1..8 (1: greedy decoding)
  --max-tokens M           most tokens per caption, 1..128 (default: the captioner's)
  --min-tokens M           fewest tokens before the caption may end, 0..128
  --no-repeat-ngram K      never repeat an n-gram of K tokens, 0..16 (0: off)
  --repetition-penalty P   penalise tokens already used, 1..10 (1: off)
  --length-penalty L       beam search: score = log-prob / length^L, -4..4 (> 0 favours longer)
  --prompt TEXT            text the caption continues, at most 512 bytes (the caption printed
                           is only the continuation)
)";

// ParseCaptionOptions fills `options` from the flags given; INVALID_ARGUMENT naming the flag.
absl::Status ParseCaptionOptions(const ParsedArgs& parsed, v1::CaptionOptions* options) {
  auto int_flag = [&](const char* flag, int64_t lo, int64_t hi,
                      void (v1::CaptionOptions::*set)(int32_t)) -> absl::Status {
    if (!parsed.Has(flag)) return absl::OkStatus();
    absl::StatusOr<int64_t> n = ParseInt(flag, parsed.Value(flag), lo, hi);
    if (!n.ok()) return n.status();
    (options->*set)(static_cast<int32_t>(*n));
    return absl::OkStatus();
  };
  auto float_flag = [&](const char* flag, double lo, double hi,
                        void (v1::CaptionOptions::*set)(float)) -> absl::Status {
    if (!parsed.Has(flag)) return absl::OkStatus();
    absl::StatusOr<double> v = ParseFloat(flag, parsed.Value(flag), lo, hi);
    if (!v.ok()) return v.status();
    (options->*set)(static_cast<float>(*v));
    return absl::OkStatus();
  };
  for (absl::Status s : {
           int_flag("beam", 1, 8, &v1::CaptionOptions::set_num_beams),
           int_flag("max-tokens", 1, 128, &v1::CaptionOptions::set_max_new_tokens),
           int_flag("min-tokens", 0, 128, &v1::CaptionOptions::set_min_new_tokens),
           int_flag("no-repeat-ngram", 0, 16, &v1::CaptionOptions::set_no_repeat_ngram_size),
           float_flag("repetition-penalty", 1, 10, &v1::CaptionOptions::set_repetition_penalty),
           float_flag("length-penalty", -4, 4, &v1::CaptionOptions::set_length_penalty)}) {
    if (!s.ok()) return s;
  }
  if (parsed.Has("min-tokens") && parsed.Has("max-tokens") &&
      options->min_new_tokens() > options->max_new_tokens()) {
    return absl::InvalidArgumentError(absl::StrCat("--min-tokens: ", options->min_new_tokens(),
                                                   " is more than --max-tokens ",
                                                   options->max_new_tokens()));
  }
  if (parsed.Has("prompt")) {
    const std::string prompt = parsed.Value("prompt");
    if (prompt.size() > 512) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt: ", prompt.size(), " bytes; at most 512"));
    }
    options->set_prompt(prompt);
  }
  return absl::OkStatus();
}

}  // namespace

int RunCaptionCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"beam", true},
                                 {"max-tokens", true},
                                 {"min-tokens", true},
                                 {"no-repeat-ngram", true},
                                 {"repetition-penalty", true},
                                 {"length-penalty", true},
                                 {"prompt", true},
                                 {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kCaptionUsage);
  if (parsed->Has("help")) {
    context.out() << kCaptionUsage;
    return kExitOk;
  }
  const std::vector<std::string>& files = parsed->positional();
  if (files.empty()) return context.UsageError(kCommand, "missing FILE", kCaptionUsage);
  v1::CaptionOptions options;
  if (absl::Status s = ParseCaptionOptions(*parsed, &options); !s.ok()) {
    return context.UsageError(kCommand, s.message(), kCaptionUsage);
  }

  // One result per file, in file order; files that cannot be read fail here, the rest are sent
  // in requests of at most kMaxImagesPerRequest images and one message's worth of bytes.
  v1::CaptionResponse all;
  v1::CaptionRequest request;
  std::vector<int> waiting;  // indexes in `all` of the images in `request`
  int64_t request_bytes = 0;
  auto flush = [&]() -> grpc::Status {
    if (waiting.empty()) return grpc::Status::OK;
    *request.mutable_options() = options;
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
