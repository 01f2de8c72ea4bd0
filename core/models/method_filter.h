// method_filter.h — a ModelModule that hides some methods of another.
//
// Runs a model as if it lacked optional methods, e.g. a captioner without its prefill/step, so
// cached and recomputed decoding of one model can be compared (tests, benchmarks). Calls to the
// other methods go through unchanged.
//
// Thread-safety: as the wrapped module; the hidden set is immutable.
//
//   auto recompute = std::make_unique<MethodFilter>(std::move(module),
//                                                   std::vector<std::string>{"prefill", "step"});
#ifndef RETRACE_CORE_MODELS_METHOD_FILTER_H_
#define RETRACE_CORE_MODELS_METHOD_FILTER_H_

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/models/model_module.h"

namespace retrace::models {

class MethodFilter final : public ModelModule {
 public:
  MethodFilter(std::unique_ptr<ModelModule> inner, std::vector<std::string> hidden)
      : inner_(std::move(inner)), hidden_(std::move(hidden)) {}

  // Call, CallTuple and CallTupleKeep: INVALID_ARGUMENT for a hidden method, as for an absent one.
  absl::StatusOr<Tensor> Call(const std::string& method, std::vector<Tensor> inputs) const override {
    if (!HasMethod(method)) return Absent(method);
    return inner_->Call(method, std::move(inputs));
  }
  absl::StatusOr<std::vector<Tensor>> CallTuple(const std::string& method,
                                                std::vector<Tensor> inputs) const override {
    if (!HasMethod(method)) return Absent(method);
    return inner_->CallTuple(method, std::move(inputs));
  }
  absl::StatusOr<std::vector<ModelValuePtr>> CallTupleKeep(
      const std::string& method, std::vector<ModelInput> inputs) const override {
    if (!HasMethod(method)) return Absent(method);
    return inner_->CallTupleKeep(method, std::move(inputs));
  }
  absl::StatusOr<ModelValuePtr> SelectRows(const ModelValue& value,
                                           const std::vector<size_t>& rows) const override {
    return inner_->SelectRows(value, rows);
  }
  absl::StatusOr<Tensor> ToHost(const ModelValue& value) const override {
    return inner_->ToHost(value);
  }
  bool HasMethod(std::string_view method) const override {
    return std::find(hidden_.begin(), hidden_.end(), method) == hidden_.end() &&
           inner_->HasMethod(method);
  }
  const std::string& Source() const override { return inner_->Source(); }

 private:
  absl::Status Absent(const std::string& method) const {
    return absl::InvalidArgumentError(absl::StrCat(Source(), " has no method '", method, "'"));
  }

  std::unique_ptr<ModelModule> inner_;
  std::vector<std::string> hidden_;
};

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_METHOD_FILTER_H_
