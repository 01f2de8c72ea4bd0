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
//   RETRACE_ASSIGN_OR_RETURN(auto kept, module.CallTupleKeep("step", {cache_value, tokens}));
#ifndef RETRACE_CORE_MODELS_MODEL_MODULE_H_
#define RETRACE_CORE_MODELS_MODEL_MODULE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "core/models/tensor.h"

namespace retrace::models {

// ModelValue: a result a module keeps where it computed it — on its device, in its own element
// type (bfloat16 stays bfloat16) — so that state carried from call to call, like a decoding
// cache, does not go to the host and back each time. Opaque: only a module of the kind that made
// it can read it (ToHost), reorder it (SelectRows) or take it as an input (CallTupleKeep).
//
// Thread-safety: immutable once made; share it freely.
class ModelValue {
 public:
  virtual ~ModelValue() = default;
  virtual const std::vector<int64_t>& shape() const = 0;
  virtual bool is_floating_point() const = 0;
  // type_name and device name where the value lives, for messages and tests: "BFloat16", "cuda:0".
  virtual std::string type_name() const = 0;
  virtual std::string device() const = 0;
};
using ModelValuePtr = std::shared_ptr<const ModelValue>;

// ModelInput: a host tensor (copied to the module's device, as Call's inputs are) or a value the
// same module kept.
using ModelInput = std::variant<Tensor, ModelValuePtr>;

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

  // CallTupleKeep runs `method` like CallTuple but keeps every element of the result as a
  // ModelValue instead of copying it to the host; inputs may be values this module kept before.
  // INVALID_ARGUMENT if the method is absent or an input value came from another kind of module;
  // INTERNAL if the model fails or an element is not a tensor.
  virtual absl::StatusOr<std::vector<ModelValuePtr>> CallTupleKeep(
      const std::string& method, std::vector<ModelInput> inputs) const = 0;

  // SelectRows returns the dim-0 rows `rows` of `value` in that order (repeats allowed), made
  // where `value` lives. INVALID_ARGUMENT for a value of another kind of module; INTERNAL for a
  // row out of range.
  virtual absl::StatusOr<ModelValuePtr> SelectRows(const ModelValue& value,
                                                   const std::vector<size_t>& rows) const = 0;

  // ToHost copies `value` to a host Tensor as Call's outputs are (float types become float32).
  // INVALID_ARGUMENT for a value of another kind of module; INTERNAL for an element type other
  // than float or int64.
  virtual absl::StatusOr<Tensor> ToHost(const ModelValue& value) const = 0;

  // HasMethod says whether the model has `method`.
  virtual bool HasMethod(std::string_view method) const = 0;

  // Source names where the model came from (its file path), for messages.
  virtual const std::string& Source() const = 0;
};

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_MODEL_MODULE_H_
