// image_space.h — how a collection's image-space vectors are laid out (CS-SLIP paper, Fig. 2).
//
// With an image encoder the vector is [e_enc, e_clip] / sqrt(2): both parts are L2-normalised,
// so the vector is too, and the inner product of two such vectors is the mean of the encoder's
// and CLIP's cosine similarities. Without one it is e_clip. Index, recovery and search all
// build vectors here, so the layout cannot drift between them.
//
// Thread-safety: pure functions.
//
//   RETRACE_ASSIGN_OR_RETURN(std::vector<float> v, ImageSpaceVector(record, item.image_features,
//                                                                   item.clip_image));
#ifndef RETRACE_CORE_ENGINE_IMAGE_SPACE_H_
#define RETRACE_CORE_ENGINE_IMAGE_SPACE_H_

#include <cmath>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/store/item_store.h"

namespace retrace::engine {

inline bool HasImageEncoder(const store::CollectionRecord& record) {
  return !record.image_encoder_model.empty();
}

// ImageSpaceVector builds an item's image-space vector from its normalised embeddings.
// DATA_LOSS if their sizes do not fit the collection's dimensions.
inline absl::StatusOr<std::vector<float>> ImageSpaceVector(const store::CollectionRecord& record,
                                                           const std::vector<float>& features,
                                                           const std::vector<float>& clip_image) {
  const size_t clip_dim = static_cast<size_t>(record.caption_dim);
  const size_t encoder_dim = HasImageEncoder(record) ? record.image_dim - clip_dim : 0;
  if (clip_image.size() != clip_dim || features.size() != encoder_dim) {
    return absl::DataLossError(absl::StrCat(
        "stored embeddings (", features.size(), " image-encoder and ", clip_image.size(),
        " CLIP floats) do not fit collection '", record.name, "' (", encoder_dim, " and ",
        clip_dim, ")"));
  }
  if (encoder_dim == 0) return clip_image;
  const float half = static_cast<float>(1.0 / std::sqrt(2.0));
  std::vector<float> v;
  v.reserve(record.image_dim);
  for (float x : features) v.push_back(x * half);
  for (float x : clip_image) v.push_back(x * half);
  return v;
}

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_IMAGE_SPACE_H_
