// model_module.h — the one narrow interface every model call goes through.
//
// A ModelModule is a loaded model with named methods (the TorchScript contract in
// ARCHITECTURE.md: encode_image, encode_text, logits, ...). ClipModel, Captioner and the image
// encoder are typed wrappers over it, so a dynamic batcher (or a remote model) can slot in later
// as another ModelModule that wraps this one, without touching the callers.
//
// Thread-safety: implementations must be safe for concurrent Call()s.
//
//   RETRACE_ASSIGN_OR_RETURN(Tensor emb, module.Call("encode_image", {std::move(pixels)}));
//   RETRACE_ASSIGN_OR_RETURN(std::vector<Tensor> out, module.CallTuple("step", {cache, tokens}));
//   if (!module.HasMethod("prefill")) { /* full recompute */ }
#ifndef RETRACE_CORE_MODELS_MODEL_MODULE_H_
#define RETRACE_CORE_MODELS_MODEL_MODULE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/models/tensor.h"

namespace retrace::models {

class ModelModule {
 public:
  virtual ~ModelModule() = default;

  // Call runs `method` on `inputs` and returns its single tensor output. INVALID_ARGUMENT if the
  // method is absent; INTERNAL (with the model's message) if the model fails or returns something
  // other than one float32 or int64 tensor.
  virtual absl::StatusOr<Tensor> Call(const std::string& method,
                                      std::vector<Tensor> inputs) const = 0;

  // CallTuple runs `method` and returns the tensors of the tuple it returns, in order (a method
  // that returns one tensor gives a vector of one). INVALID_ARGUMENT if the method is absent;
  // INTERNAL if the model fails or an element is not a float32 or int64 tensor.
  virtual absl::StatusOr<std::vector<Tensor>> CallTuple(const std::string& method,
                                                        std::vector<Tensor> inputs) const = 0;

  // HasMethod says whether the model has `method`.
  virtual bool HasMethod(std::string_view method) const = 0;

  // Source names where the model came from (its file path), for messages.
  virtual const std::string& Source() const = 0;
};

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_MODEL_MODULE_H_
