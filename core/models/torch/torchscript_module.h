// torchscript_module.h — a ModelModule backed by a TorchScript file, run by LibTorch on the CPU
// (or a CUDA device), at float32 or bfloat16, optionally frozen.
//
// The only LibTorch-facing files are under core/models/torch/; this header stays free of LibTorch.
// Calls run under torch::InferenceMode. The module is shared by all calls. Inputs cross the
// interface as float32/int64 and outputs come back as float32/int64 on the CPU, whatever the
// runtime: a bfloat16 module gets its float inputs cast to bfloat16 and its outputs cast back.
// CallTupleKeep's values are the exception: they stay on the module's device in its type (a
// decoding cache never leaves a GPU), and SelectRows reorders them there with index_select.
//
// Thread-safety: Call() is safe from many threads at once (TorchScript inference is re-entrant);
// ConfigureTorchThreads sets process-wide state and belongs in main().
//
//   ConfigureTorchThreads(/*intra_op=*/1);
//   RETRACE_ASSIGN_OR_RETURN(auto clip, LoadTorchScriptModule("models/clip/model.pt"));
#ifndef RETRACE_CORE_MODELS_TORCH_TORCHSCRIPT_MODULE_H_
#define RETRACE_CORE_MODELS_TORCH_TORCHSCRIPT_MODULE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/models/model_manifest.h"
#include "core/models/model_module.h"

namespace retrace::models {

// TorchRuntime: how a loaded module runs. The defaults run the file as saved, on the CPU.
struct TorchRuntime {
  // kFloat32 runs the file as saved (float32, or int8 linear layers for an int8-dynamic file);
  // kBFloat16 converts the module's floating weights and buffers to bfloat16 at load.
  // kInt8Dynamic is run as saved: the quantization is in the file (see ModelDType).
  ModelDType dtype = ModelDType::kFloat32;
  std::string device = "cpu";  // "cpu" or "cuda:N"; REQUIRES: CheckTorchDevice(device).ok()
  // freeze: torch::jit::freeze (attributes and weights inlined as constants, every method kept)
  // then optimize_for_inference. On the fixture models float32 and int8-dynamic outputs equal the
  // unfrozen module's exactly; bfloat16 ones differ within its rounding (fused ops round at other
  // points): tests/unit/models/model_precision_test.cc.
  bool freeze = false;
};

// LoadTorchScriptModule loads `path` (a file written by torch.jit.save) and prepares it as
// `runtime` says. NOT_FOUND if the file is missing; INVALID_ARGUMENT (with LibTorch's message) if
// it is not a loadable TorchScript module or cannot be converted or frozen.
absl::StatusOr<std::unique_ptr<ModelModule>> LoadTorchScriptModule(const std::string& path,
                                                                   const TorchRuntime& runtime = {});

// CheckTorchDevice: OK for "cpu" and for "cuda:N" when this LibTorch has CUDA and device N exists.
// INVALID_ARGUMENT for another spelling; FAILED_PRECONDITION for a CUDA device this process cannot
// use (a CPU-only LibTorch, or N >= the device count). Messages name the value, not the setting.
absl::Status CheckTorchDevice(const std::string& device);

// ConfigureTorchThreads sets LibTorch's intra-op thread count (process-wide, and the calling
// thread's OpenMP count) and, when LibTorch runs its matrix products on OpenBLAS, OpenBLAS's own
// thread pool to the same size. OpenBLAS sizes that pool to the cores whatever LibTorch is told,
// and its idle threads spin in sched_yield: profiled, one took 43% of a server's CPU samples
// with intra-op 1. Values < 1 mean 1.
void ConfigureTorchThreads(int intra_op_threads);

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_TORCH_TORCHSCRIPT_MODULE_H_
