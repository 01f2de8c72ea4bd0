// gpu_model_bench — retrace's model path alone: images/s through a CLIP `encode_image` and
// captions/s through a captioner's encode_image + cached greedy decoding (prefill/step, the cache
// kept on the module's device), per batch size, on one device and dtype. Built by
// bench/gpu/CMakeLists.txt against any LibTorch (a CUDA one for cuda:N); run by bench/gpu/run.sh,
// which compares it with Hugging Face eager on the same GPU. A benchmark, not a test.
//
// Every call goes through ModelModule as the server's does: host inputs copied to the device,
// results (embeddings, logits) copied back, which also waits for the device. Captions are forced
// to --tokens new tokens (EOS banned until then) so both sides decode the same number of steps.
//
//   gpu_model_bench --clip clip.pt --captioner captioner.pt --device cuda:0 --dtype bfloat16 \
//     --batches 1,8,32 --image-size 224 --vocab 50272 --bos 2 --eos 50118 --tokens 30
// Output: one CSV line per measurement: side,model,batch,items_per_s,calls,seconds
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/models/decoding/greedy_search.h"
#include "core/models/decoding/next_token_model.h"
#include "core/models/torch/torchscript_module.h"

namespace retrace {
namespace {

// Flags: --name value pairs; plain parsing keeps the build free of absl's flags library.
struct Flags {
  std::string clip, captioner, device = "cpu", dtype = "bfloat16", batches = "1,8,32";
  int image_size = 224, tokens = 30, threads = 1;
  int64_t vocab = 0, bos = 2, eos = 50118;
  double seconds = 10;
};

bool Parse(int argc, char** argv, Flags& f) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i], value = argv[i + 1];
    bool ok = true;
    if (name == "--clip")
      f.clip = value;
    else if (name == "--captioner")
      f.captioner = value;
    else if (name == "--device")
      f.device = value;
    else if (name == "--dtype")
      f.dtype = value;
    else if (name == "--batches")
      f.batches = value;
    else if (name == "--image-size")
      ok = absl::SimpleAtoi(value, &f.image_size);
    else if (name == "--tokens")
      ok = absl::SimpleAtoi(value, &f.tokens);
    else if (name == "--threads")
      ok = absl::SimpleAtoi(value, &f.threads);
    else if (name == "--vocab")
      ok = absl::SimpleAtoi(value, &f.vocab);
    else if (name == "--bos")
      ok = absl::SimpleAtoi(value, &f.bos);
    else if (name == "--eos")
      ok = absl::SimpleAtoi(value, &f.eos);
    else if (name == "--seconds")
      ok = absl::SimpleAtod(value, &f.seconds);
    else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, "gpu_model_bench: bad flag %s %s\n", name.c_str(), value.c_str());
      return false;
    }
  }
  if (argc % 2 != 1) {
    std::fprintf(stderr, "gpu_model_bench: flags come as --name value pairs\n");
    return false;
  }
  return true;
}

models::Tensor RandomImages(int64_t batch, int size, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> pixels(batch * 3 * size * size);
  for (float& p : pixels) p = normal(rng);
  return models::Tensor::Float({batch, 3, size, size}, std::move(pixels));
}

// Measure runs `call` once to warm up (allocator, kernels' autotuning), then repeatedly for
// `seconds`, and prints items/s for `items` per call. Returns false if a call failed.
template <typename Call>
bool Measure(const char* model, int64_t batch, int64_t items, double seconds, Call call) {
  using Clock = std::chrono::steady_clock;
  if (!call()) return false;
  const auto start = Clock::now();
  int calls = 0;
  double elapsed = 0;
  do {
    if (!call()) return false;
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  std::printf("retrace,%s,%lld,%.2f,%d,%.2f\n", model, static_cast<long long>(batch),
              calls * items / elapsed, calls, elapsed);
  std::fflush(stdout);
  return true;
}

int Run(const Flags& f) {
  models::ConfigureTorchThreads(f.threads);
  absl::Status device_ok = models::CheckTorchDevice(f.device);
  if (!device_ok.ok()) {
    std::fprintf(stderr, "gpu_model_bench: --device: %s\n", device_ok.ToString().c_str());
    return 2;
  }
  models::TorchRuntime runtime;
  runtime.device = f.device;
  if (f.dtype == "bfloat16") {
    runtime.dtype = models::ModelDType::kBFloat16;
  } else if (f.dtype != "float32") {
    std::fprintf(stderr, "gpu_model_bench: --dtype %s is not float32 or bfloat16\n",
                 f.dtype.c_str());
    return 2;
  }
  std::vector<int64_t> batches;
  for (absl::string_view b : absl::StrSplit(f.batches, ',')) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(b, &n) || n < 1) {
      std::fprintf(stderr, "gpu_model_bench: --batches: %s\n", f.batches.c_str());
      return 2;
    }
    batches.push_back(n);
  }
  std::mt19937 rng(1);
  std::printf("side,model,batch,items_per_s,calls,seconds\n");

  if (!f.clip.empty()) {
    auto clip = models::LoadTorchScriptModule(f.clip, runtime);
    if (!clip.ok()) {
      std::fprintf(stderr, "gpu_model_bench: %s\n", clip.status().ToString().c_str());
      return 1;
    }
    for (int64_t batch : batches) {
      const models::Tensor images = RandomImages(batch, f.image_size, rng);
      bool ok = Measure("clip", batch, batch, f.seconds, [&] {
        auto out = (*clip)->Call("encode_image", {images});
        if (!out.ok()) std::fprintf(stderr, "%s\n", out.status().ToString().c_str());
        return out.ok();
      });
      if (!ok) return 1;
    }
  }

  if (!f.captioner.empty()) {
    auto captioner = models::LoadTorchScriptModule(f.captioner, runtime);
    if (!captioner.ok()) {
      std::fprintf(stderr, "gpu_model_bench: %s\n", captioner.status().ToString().c_str());
      return 1;
    }
    if (!models::decoding::HasCachedDecoding(**captioner)) {
      std::fprintf(stderr, "gpu_model_bench: %s has no prefill/step\n", f.captioner.c_str());
      return 1;
    }
    models::decoding::SearchParams params;
    params.max_new_tokens = f.tokens;
    params.rules.min_new_tokens = f.tokens;  // EOS banned until the last token: fixed work
    params.rules.eos_token_ids = {f.eos};
    for (int64_t batch : batches) {
      const models::Tensor images = RandomImages(batch, f.image_size, rng);
      bool ok = Measure("captioner", batch, batch, f.seconds, [&]() -> bool {
        auto prefix = (*captioner)->Call("encode_image", {images});
        if (!prefix.ok() || prefix->shape.size() != 3) {
          std::fprintf(stderr, "encode_image: %s\n", prefix.status().ToString().c_str());
          return false;
        }
        models::CaptionerSpec spec;
        spec.bos_token_id = f.bos;
        spec.eos_token_ids = {f.eos};
        spec.vocab_size = static_cast<int>(f.vocab);
        spec.prefix_length = static_cast<int>(prefix->shape[1]);
        spec.prefix_dim = static_cast<int>(prefix->shape[2]);
        auto model = models::decoding::MakeNextTokenModel(**captioner, spec, *std::move(prefix));
        auto tokens = models::decoding::GreedySearch(*model, batch, {f.bos}, params);
        if (!tokens.ok()) std::fprintf(stderr, "%s\n", tokens.status().ToString().c_str());
        return tokens.ok();
      });
      if (!ok) return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace retrace

int main(int argc, char** argv) {
  retrace::Flags flags;
  if (!retrace::Parse(argc, argv, flags)) return 2;
  return retrace::Run(flags);
}
