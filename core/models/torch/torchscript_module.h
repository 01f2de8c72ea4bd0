// torchscript_module.h — a ModelModule backed by a TorchScript file, run on the CPU by LibTorch.
//
// The only LibTorch-facing files are under core/models/torch/; this header stays free of LibTorch.
// Calls run under torch::InferenceMode. The module is shared by all calls.
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

#include "absl/status/statusor.h"
#include "core/models/model_module.h"

namespace retrace::models {

// LoadTorchScriptModule loads `path` (a file written by torch.jit.save). NOT_FOUND if the file is
// missing; INVALID_ARGUMENT (with LibTorch's message) if it is not a loadable TorchScript module.
absl::StatusOr<std::unique_ptr<ModelModule>> LoadTorchScriptModule(const std::string& path);

// ConfigureTorchThreads sets LibTorch's intra-op thread count (process-wide, and the calling
// thread's OpenMP count) and, when LibTorch runs its matrix products on OpenBLAS, OpenBLAS's own
// thread pool to the same size. OpenBLAS sizes that pool to the cores whatever LibTorch is told,
// and its idle threads spin in sched_yield: profiled, one took 43% of a server's CPU samples
// with intra-op 1. Values < 1 mean 1.
void ConfigureTorchThreads(int intra_op_threads);

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_TORCH_TORCHSCRIPT_MODULE_H_
