// tensor.h — a plain, dense, row-major tensor: what crosses the model interface.
//
// Only two element types cross it: float32 (images, embeddings, logits) and int64 (token ids).
// Keeping LibTorch types out of this header keeps every non-model file free of LibTorch.
//
// Thread-safety: a value type; no shared state.
//
//   Tensor images = Tensor::Float({batch, 3, 224, 224}, std::move(pixels));
//   Tensor tokens = Tensor::Int64({batch, 77}, std::move(ids));
#ifndef RETRACE_CORE_MODELS_TENSOR_H_
#define RETRACE_CORE_MODELS_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

namespace retrace::models {

enum class DType { kFloat32, kInt64 };

struct Tensor {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<float> f32;    // the data when dtype == kFloat32
  std::vector<int64_t> i64;  // the data when dtype == kInt64

  // Float and Int64 build a tensor; REQUIRES: data.size() == product of shape.
  static Tensor Float(std::vector<int64_t> shape, std::vector<float> data) {
    Tensor t;
    t.dtype = DType::kFloat32;
    t.shape = std::move(shape);
    t.f32 = std::move(data);
    return t;
  }
  static Tensor Int64(std::vector<int64_t> shape, std::vector<int64_t> data) {
    Tensor t;
    t.dtype = DType::kInt64;
    t.shape = std::move(shape);
    t.i64 = std::move(data);
    return t;
  }

  // ShapeString renders the shape as "[2, 3, 224, 224]" for error messages.
  std::string ShapeString() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_TENSOR_H_
