#include "core/models/torch/torchscript_module.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <filesystem>
#include <memory>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace retrace::models {
namespace {

// ToTorch views `t` as a tensor of the module's float type on its device. from_blob borrows the
// data; `t` outlives the call that uses the result (a cast or a copy to the device owns its own).
at::Tensor ToTorch(Tensor& t, at::ScalarType float_type, const c10::Device& device) {
  at::Tensor view = t.dtype == DType::kFloat32
                        ? torch::from_blob(t.f32.data(), t.shape, torch::kFloat32).to(float_type)
                        : torch::from_blob(t.i64.data(), t.shape, torch::kInt64);
  return view.to(device);
}

absl::StatusOr<Tensor> FromTorch(const at::Tensor& value, const std::string& where) {
  at::Tensor out = value.to(torch::kCPU).contiguous();
  Tensor t;
  t.shape.assign(out.sizes().begin(), out.sizes().end());
  if (out.scalar_type() == torch::kInt64) {
    t.dtype = DType::kInt64;
    t.i64.assign(out.data_ptr<int64_t>(), out.data_ptr<int64_t>() + out.numel());
    return t;
  }
  if (!out.is_floating_point()) {
    return absl::InternalError(absl::StrCat(where, " returned a tensor of type ",
                                            c10::toString(out.scalar_type()),
                                            "; expected float or int64"));
  }
  out = out.to(torch::kFloat32);
  t.dtype = DType::kFloat32;
  t.f32.assign(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
  return t;
}

// TorchValue: a ModelValue that is a LibTorch tensor on the module's device, in its own type.
class TorchValue final : public ModelValue {
 public:
  explicit TorchValue(at::Tensor tensor)
      : tensor_(std::move(tensor)), shape_(tensor_.sizes().begin(), tensor_.sizes().end()) {}

  const std::vector<int64_t>& shape() const override { return shape_; }
  bool is_floating_point() const override { return tensor_.is_floating_point(); }
  std::string type_name() const override { return c10::toString(tensor_.scalar_type()); }
  std::string device() const override { return tensor_.device().str(); }
  const at::Tensor& tensor() const { return tensor_; }

 private:
  at::Tensor tensor_;
  std::vector<int64_t> shape_;
};

// AsTorch is `value` as this file's TorchValue; INVALID_ARGUMENT for another module kind's value.
absl::StatusOr<const TorchValue*> AsTorch(const ModelValue& value, const std::string& source) {
  const auto* torch_value = dynamic_cast<const TorchValue*>(&value);
  if (torch_value == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": a value kept by another kind of model module cannot be used here"));
  }
  return torch_value;
}

// TupleTensors lists the tensors of a method's result: one tensor, or a tuple of tensors.
absl::StatusOr<std::vector<at::Tensor>> TupleTensors(const torch::jit::IValue& result,
                                                     const std::string& where) {
  if (result.isTensor()) return std::vector<at::Tensor>{result.toTensor()};
  if (!result.isTuple()) {
    return absl::InternalError(
        absl::StrCat(where, " returned ", result.tagKind(), "; expected a tuple of tensors"));
  }
  std::vector<at::Tensor> out;
  const auto& elements = result.toTupleRef().elements();
  for (size_t i = 0; i < elements.size(); ++i) {
    if (!elements[i].isTensor()) {
      return absl::InternalError(absl::StrCat(where, " returned a tuple whose element ", i, " is ",
                                              elements[i].tagKind(), "; expected tensors"));
    }
    out.push_back(elements[i].toTensor());
  }
  return out;
}

class TorchScriptModule final : public ModelModule {
 public:
  TorchScriptModule(torch::jit::Module module, std::string source, at::ScalarType float_type,
                    c10::Device device)
      : module_(std::move(module)),
        source_(std::move(source)),
        float_type_(float_type),
        device_(device) {}

  absl::StatusOr<Tensor> Call(const std::string& method, std::vector<Tensor> inputs) const override {
    return Run(method, AsInputs(std::move(inputs)),
               [&](const torch::jit::IValue& result,
                   const std::string& where) -> absl::StatusOr<Tensor> {
                 if (!result.isTensor()) {
                   return absl::InternalError(absl::StrCat(where, " returned ", result.tagKind(),
                                                           "; expected one tensor"));
                 }
                 return FromTorch(result.toTensor(), where);
               });
  }

  absl::StatusOr<std::vector<Tensor>> CallTuple(const std::string& method,
                                                std::vector<Tensor> inputs) const override {
    return Run(method, AsInputs(std::move(inputs)),
               [&](const torch::jit::IValue& result,
                   const std::string& where) -> absl::StatusOr<std::vector<Tensor>> {
                 absl::StatusOr<std::vector<at::Tensor>> tensors = TupleTensors(result, where);
                 if (!tensors.ok()) return tensors.status();
                 std::vector<Tensor> out;
                 for (const at::Tensor& tensor : *tensors) {
                   absl::StatusOr<Tensor> t = FromTorch(tensor, where);
                   if (!t.ok()) return t.status();
                   out.push_back(std::move(*t));
                 }
                 return out;
               });
  }

  absl::StatusOr<std::vector<ModelValuePtr>> CallTupleKeep(
      const std::string& method, std::vector<ModelInput> inputs) const override {
    return Run(method, std::move(inputs),
               [&](const torch::jit::IValue& result,
                   const std::string& where) -> absl::StatusOr<std::vector<ModelValuePtr>> {
                 absl::StatusOr<std::vector<at::Tensor>> tensors = TupleTensors(result, where);
                 if (!tensors.ok()) return tensors.status();
                 std::vector<ModelValuePtr> out;
                 for (at::Tensor& tensor : *tensors) {
                   out.push_back(std::make_shared<TorchValue>(std::move(tensor)));
                 }
                 return out;
               });
  }

  absl::StatusOr<ModelValuePtr> SelectRows(const ModelValue& value,
                                           const std::vector<size_t>& rows) const override {
    absl::StatusOr<const TorchValue*> from = AsTorch(value, source_);
    if (!from.ok()) return from.status();
    const at::Tensor& tensor = (*from)->tensor();
    try {
      torch::InferenceMode inference;
      std::vector<int64_t> ids(rows.begin(), rows.end());
      // The ids are the only host-to-device copy: index_select runs where the value lives.
      at::Tensor index = torch::tensor(ids, torch::kInt64).to(tensor.device());
      return ModelValuePtr(std::make_shared<TorchValue>(tensor.index_select(0, index)));
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(source_, ": selecting rows failed: ", e.what_without_backtrace()));
    }
  }

  absl::StatusOr<Tensor> ToHost(const ModelValue& value) const override {
    absl::StatusOr<const TorchValue*> from = AsTorch(value, source_);
    if (!from.ok()) return from.status();
    return FromTorch((*from)->tensor(), source_);
  }

  bool HasMethod(std::string_view method) const override {
    return module_.find_method(std::string(method)).has_value();
  }

  const std::string& Source() const override { return source_; }

 private:
  static std::vector<ModelInput> AsInputs(std::vector<Tensor> tensors) {
    std::vector<ModelInput> inputs;
    inputs.reserve(tensors.size());
    for (Tensor& t : tensors) inputs.emplace_back(std::move(t));
    return inputs;
  }

  // Run calls `method` under InferenceMode and hands its result to `convert`, which must copy
  // what it keeps: the inputs' from_blob views die with `inputs`. A host Tensor input is copied
  // to the module's device (cast to its float type); a kept value is passed as it is. LibTorch
  // exceptions become INTERNAL naming the model file and the method.
  template <typename Convert>
  auto Run(const std::string& method, std::vector<ModelInput> inputs, Convert convert) const
      -> decltype(convert(torch::jit::IValue(), std::string())) {
    const std::string where = absl::StrCat(source_, ": ", method, "()");
    auto found = module_.find_method(method);
    if (!found.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(source_, " has no method '", method, "'"));
    }
    try {
      torch::InferenceMode inference;
      std::vector<torch::jit::IValue> args;
      args.reserve(inputs.size());
      for (ModelInput& input : inputs) {
        if (auto* tensor = std::get_if<Tensor>(&input)) {
          args.emplace_back(ToTorch(*tensor, float_type_, device_));
          continue;
        }
        const ModelValuePtr& value = std::get<ModelValuePtr>(input);
        if (value == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, ": a null value"));
        absl::StatusOr<const TorchValue*> kept = AsTorch(*value, where);
        if (!kept.ok()) return kept.status();
        args.emplace_back((*kept)->tensor());
      }
      return convert((*found)(std::move(args)), where);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(where, " failed: ", e.what_without_backtrace()));
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat(where, " failed: ", e.what()));
    }
  }

  // find_method and calls are const in spirit; Module's API is not const-qualified.
  mutable torch::jit::Module module_;
  std::string source_;
  at::ScalarType float_type_;  // what float inputs are cast to: the module's weights' type
  c10::Device device_;
};

// ConvertFloats casts the module's floating parameters and buffers to `type`. Module::to(dtype)
// would cast every tensor, integer buffers too (token-id tables would lose their ids).
void ConvertFloats(torch::jit::Module& module, at::ScalarType type) {
  for (at::Tensor t : module.parameters()) {
    if (t.is_floating_point()) t.set_data(t.to(type));
  }
  for (at::Tensor t : module.buffers()) {
    if (t.is_floating_point()) t.set_data(t.to(type));
  }
}

// Freeze inlines the module's attributes as constants and runs LibTorch's inference passes,
// keeping every method (torch::jit::freeze keeps only forward unless told otherwise).
torch::jit::Module Freeze(torch::jit::Module module) {
  std::vector<std::string> methods;
  for (const torch::jit::Method& method : module.get_methods()) {
    if (method.name() != "forward") methods.push_back(method.name());
  }
  torch::jit::Module frozen = torch::jit::freeze(module, methods);
  return torch::jit::optimize_for_inference(frozen, methods);
}

}  // namespace

absl::Status CheckTorchDevice(const std::string& device) {
  if (device == "cpu") return absl::OkStatus();
  int index = -1;
  if (!absl::StartsWith(device, "cuda:") || !absl::SimpleAtoi(device.substr(5), &index) ||
      index < 0 || !absl::ascii_isdigit(device.back())) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", device, "' is not \"cpu\" or \"cuda:N\""));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device '", device, "': this LibTorch has no usable CUDA (torch::cuda::is_available() is "
        "false); use \"cpu\""));
  }
  const size_t count = torch::cuda::device_count();
  if (static_cast<size_t>(index) >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("device '", device, "': this machine has ", count, " CUDA device(s)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ModelModule>> LoadTorchScriptModule(const std::string& path,
                                                                   const TorchRuntime& runtime) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat("model file not found: ", path));
  }
  try {
    const c10::Device device(runtime.device);
    torch::jit::Module module = torch::jit::load(path, device);
    module.eval();
    const at::ScalarType float_type =
        runtime.dtype == ModelDType::kBFloat16 ? torch::kBFloat16 : torch::kFloat32;
    if (float_type != torch::kFloat32) ConvertFloats(module, float_type);
    if (runtime.freeze) module = Freeze(std::move(module));
    return std::unique_ptr<ModelModule>(
        new TorchScriptModule(std::move(module), path, float_type, device));
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load TorchScript model ", path, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load TorchScript model ", path, ": ", e.what()));
  }
}

void ConfigureTorchThreads(int intra_op_threads) {
  const int n = intra_op_threads < 1 ? 1 : intra_op_threads;
  at::set_num_threads(n);
  // Looked up, not linked: Debian's libblas.so.3 may be OpenBLAS, BLIS or the reference BLAS.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(n);
  }
}

}  // namespace retrace::models
