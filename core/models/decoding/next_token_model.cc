#include "core/models/decoding/next_token_model.h"

#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"

namespace retrace::models::decoding {
namespace {

bool IsIdentity(const std::vector<size_t>& rows, size_t count) {
  if (rows.size() != count) return false;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] != i) return false;
  }
  return true;
}

absl::Status CheckLogits(const Tensor& logits, size_t rows, const CaptionerSpec& spec,
                         const ModelModule& module, const char* method) {
  if (logits.dtype != DType::kFloat32 || logits.shape.size() != 2 ||
      logits.shape[0] != static_cast<int64_t>(rows) || logits.shape[1] != spec.vocab_size) {
    return absl::InternalError(absl::StrCat(module.Source(), ": ", method, "() returned logits ",
                                            logits.ShapeString(), "; the manifest promises [",
                                            rows, ", ", spec.vocab_size, "] float"));
  }
  return absl::OkStatus();
}

// Recompute: logits(prefix, tokens) over the whole sequence at every step.
class RecomputeModel final : public NextTokenModel {
 public:
  RecomputeModel(const ModelModule& module, const CaptionerSpec& spec, Tensor prefix)
      : module_(module), spec_(spec), prefix_(std::move(prefix)) {}

  absl::StatusOr<Tensor> Start(const std::vector<int64_t>& start_tokens) override {
    sequences_.assign(static_cast<size_t>(prefix_.shape[0]), start_tokens);
    return Logits();
  }

  absl::StatusOr<Tensor> Advance(const std::vector<size_t>& parents,
                                 const std::vector<int64_t>& tokens) override {
    if (!IsIdentity(parents, sequences_.size())) prefix_ = SelectRows(prefix_, parents);
    std::vector<std::vector<int64_t>> next;
    next.reserve(parents.size());
    for (size_t r = 0; r < parents.size(); ++r) {
      next.push_back(sequences_[parents[r]]);
      next.back().push_back(tokens[r]);
    }
    sequences_ = std::move(next);
    return Logits();
  }

 private:
  absl::StatusOr<Tensor> Logits() {
    const size_t rows = sequences_.size();
    const int64_t length = static_cast<int64_t>(sequences_[0].size());  // all rows grow together
    std::vector<int64_t> flat;
    flat.reserve(rows * length);
    for (const auto& s : sequences_) flat.insert(flat.end(), s.begin(), s.end());
    RETRACE_ASSIGN_OR_RETURN(
        Tensor logits,
        module_.Call("logits", {prefix_, Tensor::Int64({static_cast<int64_t>(rows), length},
                                                       std::move(flat))}));
    RETRACE_RETURN_IF_ERROR(CheckLogits(logits, rows, spec_, module_, "logits"));
    return logits;
  }

  const ModelModule& module_;
  const CaptionerSpec& spec_;
  Tensor prefix_;                               // one row per sequence
  std::vector<std::vector<int64_t>> sequences_;  // BOS, prompt, generated
};

// Cached: prefill once, then step with the cache, whose dim-0 rows follow the sequences. The
// cache stays a ModelValue on the module's device; only the logits come to the host.
class CachedModel final : public NextTokenModel {
 public:
  CachedModel(const ModelModule& module, const CaptionerSpec& spec, Tensor prefix)
      : module_(module), spec_(spec), prefix_(std::move(prefix)) {}

  absl::StatusOr<Tensor> Start(const std::vector<int64_t>& start_tokens) override {
    const int64_t rows = prefix_.shape[0];
    const int64_t length = static_cast<int64_t>(start_tokens.size());
    std::vector<int64_t> flat;
    flat.reserve(rows * length);
    for (int64_t r = 0; r < rows; ++r) flat.insert(flat.end(), start_tokens.begin(), start_tokens.end());
    RETRACE_ASSIGN_OR_RETURN(
        std::vector<ModelValuePtr> out,
        module_.CallTupleKeep("prefill", {std::move(prefix_), Tensor::Int64({rows, length}, std::move(flat))}));
    return Take(std::move(out), static_cast<size_t>(rows), "prefill");
  }

  absl::StatusOr<Tensor> Advance(const std::vector<size_t>& parents,
                                 const std::vector<int64_t>& tokens) override {
    if (!IsIdentity(parents, static_cast<size_t>(cache_->shape()[0]))) {
      RETRACE_ASSIGN_OR_RETURN(cache_, module_.SelectRows(*cache_, parents));
    }
    const int64_t rows = static_cast<int64_t>(tokens.size());
    RETRACE_ASSIGN_OR_RETURN(
        std::vector<ModelValuePtr> out,
        module_.CallTupleKeep("step", {std::move(cache_), Tensor::Int64({rows, 1}, tokens)}));
    return Take(std::move(out), tokens.size(), "step");
  }

 private:
  // Take checks a (logits, cache) result, keeps the cache and returns the logits.
  absl::StatusOr<Tensor> Take(std::vector<ModelValuePtr> out, size_t rows, const char* method) {
    if (out.size() != 2) {
      return absl::InternalError(absl::StrCat(module_.Source(), ": ", method, "() returned ",
                                              out.size(), " tensors; expected (logits, cache)"));
    }
    RETRACE_ASSIGN_OR_RETURN(Tensor logits, module_.ToHost(*out[0]));
    RETRACE_RETURN_IF_ERROR(CheckLogits(logits, rows, spec_, module_, method));
    const ModelValue& cache = *out[1];
    if (!cache.is_floating_point() || cache.shape().empty() ||
        cache.shape()[0] != static_cast<int64_t>(rows)) {
      return absl::InternalError(absl::StrCat(
          module_.Source(), ": ", method, "() returned cache [", absl::StrJoin(cache.shape(), ", "),
          "] of ", cache.type_name(), "; expected float with ", rows, " rows in dim 0"));
    }
    cache_ = std::move(out[1]);
    return logits;
  }

  const ModelModule& module_;
  const CaptionerSpec& spec_;
  Tensor prefix_;        // consumed by Start
  ModelValuePtr cache_;  // one row per sequence, on the module's device
};

}  // namespace

bool HasCachedDecoding(const ModelModule& module) {
  return module.HasMethod("prefill") && module.HasMethod("step");
}

std::unique_ptr<NextTokenModel> MakeNextTokenModel(const ModelModule& module,
                                                   const CaptionerSpec& spec, Tensor prefix) {
  if (HasCachedDecoding(module)) {
    return std::make_unique<CachedModel>(module, spec, std::move(prefix));
  }
  return std::make_unique<RecomputeModel>(module, spec, std::move(prefix));
}

Tensor SelectRows(const Tensor& t, const std::vector<size_t>& rows) {
  int64_t per_row = 1;
  for (size_t d = 1; d < t.shape.size(); ++d) per_row *= t.shape[d];
  std::vector<float> data;
  data.reserve(rows.size() * per_row);
  for (size_t row : rows) {
    data.insert(data.end(), t.f32.begin() + row * per_row, t.f32.begin() + (row + 1) * per_row);
  }
  std::vector<int64_t> shape = t.shape;
  shape[0] = static_cast<int64_t>(rows.size());
  return Tensor::Float(std::move(shape), std::move(data));
}

}  // namespace retrace::models::decoding
