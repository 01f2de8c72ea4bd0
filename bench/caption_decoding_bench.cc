// caption_decoding_bench — time to caption one batch of images with a captioner that has
// prefill/step: cached decoding against full recompute (the same model with prefill/step hidden),
// greedy and beam search, side by side. Every caption is forced to --tokens tokens
// (min = max new tokens) so both paths do the same work. A benchmark, not a test.
//
//   tools/fixtures/make_models.py --kind lm --lm-width 256 --lm-layers 4 --out build/bench-lm
//   build/bench/caption_decoding_bench --captioner build/bench-lm/captioner --images 8 --tokens 30
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/models/method_filter.h"
#include "core/models/torch/torchscript_module.h"
#include "server/model_folder.h"

ABSL_FLAG(std::string, captioner, "build/bench-lm/captioner", "captioner model folder");
ABSL_FLAG(int, images, 8, "images in the batch");
ABSL_FLAG(int, tokens, 30, "tokens per caption (1..128)");
ABSL_FLAG(int, beams, 4, "beam width of the beam-search rows");
ABSL_FLAG(int, repeats, 3, "runs per row; the best is reported");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads");

namespace retrace {
namespace {

int Run() {
  models::ConfigureTorchThreads(absl::GetFlag(FLAGS_threads));
  const std::string folder = absl::GetFlag(FLAGS_captioner);
  auto cached = server::LoadCaptioner(folder);
  if (!cached.ok()) {
    std::fprintf(stderr, "%s\n", cached.status().ToString().c_str());
    return 1;
  }
  if (!(*cached)->cached_decoding()) {
    std::fprintf(stderr, "%s has no prefill/step to compare\n", folder.c_str());
    return 1;
  }
  auto manifest = server::ReadManifest(folder, models::ModelKind::kCaptioner);
  auto bpe = text::ByteLevelBpe::Load(manifest->tokenizer.vocab_path, "");
  auto module = models::LoadTorchScriptModule(folder + "/model.pt");
  if (!bpe.ok() || !module.ok()) return 1;
  auto recompute = models::Captioner::Create(
      *manifest,
      std::make_unique<models::MethodFilter>(*std::move(module),
                                             std::vector<std::string>{"prefill", "step"}),
      *std::move(bpe));
  if (!recompute.ok()) return 1;

  std::mt19937 rng(1);
  std::vector<image::Image> images(absl::GetFlag(FLAGS_images));
  std::vector<const image::Image*> batch;
  for (image::Image& image : images) {
    image.width = image.height = 96;
    image.rgb.resize(96 * 96 * 3);
    for (uint8_t& v : image.rgb) v = static_cast<uint8_t>(rng());
    batch.push_back(&image);
  }
  models::CaptionOptions greedy;
  greedy.max_new_tokens = greedy.min_new_tokens = absl::GetFlag(FLAGS_tokens);
  models::CaptionOptions beam = greedy;
  beam.num_beams = absl::GetFlag(FLAGS_beams);

  auto time = [&](const models::Captioner& captioner, const models::CaptionOptions& options,
                  std::vector<std::string>* captions) {
    double best = 1e30;
    for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
      const auto start = std::chrono::steady_clock::now();
      auto out = captioner.Caption(batch, options);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!out.ok()) {
        std::fprintf(stderr, "%s\n", out.status().ToString().c_str());
        std::exit(1);
      }
      *captions = *out;
      best = std::min(best, s);
    }
    return best;
  };
  std::printf("%s\n%d images, %d tokens each, best of %d\n", manifest->name.c_str(),
              static_cast<int>(batch.size()), greedy.max_new_tokens,
              absl::GetFlag(FLAGS_repeats));
  std::printf("%-14s %12s %12s %8s %s\n", "decoding", "recompute s", "cached s", "ratio",
              "same captions");
  for (const auto& [name, options] : {std::pair{"greedy", greedy}, std::pair{"beam", beam}}) {
    std::vector<std::string> a, b;
    const double slow = time(**recompute, options, &a);
    const double fast = time(**cached, options, &b);
    std::printf("%-14s %12.3f %12.3f %7.1fx %s\n",
                (std::string(name) + (options.num_beams > 1
                                          ? " K=" + std::to_string(options.num_beams)
                                          : ""))
                    .c_str(),
                slow, fast, slow / fast, a == b ? "yes" : "NO");
  }
  return 0;
}

}  // namespace
}  // namespace retrace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return retrace::Run();
}
