// image_batch.h — decoded images to one f32[B,3,S,S] tensor, preprocessed per manifest.
//
// Shared by every model with an encode_image method (CLIP, captioner, image encoder).
// Thread-safety: pure function.
#ifndef RETRACE_CORE_MODELS_INTERNAL_IMAGE_BATCH_H_
#define RETRACE_CORE_MODELS_INTERNAL_IMAGE_BATCH_H_

#include <vector>

#include "core/image/image.h"
#include "core/image/preprocess.h"
#include "core/models/tensor.h"

namespace retrace::models::internal {

// ImageBatch preprocesses each image into its slot of a [B,3,S,S] tensor, S = spec.size.
// REQUIRES: spec validated; every image non-empty.
inline Tensor ImageBatch(const std::vector<const image::Image*>& images,
                         const image::PreprocessSpec& spec) {
  const int64_t b = static_cast<int64_t>(images.size());
  const int64_t per_image = 3LL * spec.size * spec.size;
  std::vector<float> data(b * per_image);
  for (int64_t i = 0; i < b; ++i) image::PreprocessInto(*images[i], spec, data.data() + i * per_image);
  return Tensor::Float({b, 3, spec.size, spec.size}, std::move(data));
}

}  // namespace retrace::models::internal

#endif  // RETRACE_CORE_MODELS_INTERNAL_IMAGE_BATCH_H_
