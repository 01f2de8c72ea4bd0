// model_manifest.h — what a model folder says about its model, as plain C++ types.
//
// The schema is the protobuf message retrace.v1.ModelManifest (proto/retrace/v1/
// model_manifest.proto); server/ reads manifest.json into it and converts it to these structs, so
// core stays free of protobuf. Defaults here equal the proto's documented defaults.
//
// Thread-safety: plain values.
//
//   ModelManifest m;  m.kind = ModelKind::kClip;  m.embedding_dim = 512;
//   m.image.size = 224;  m.tokenizer.vocab_path = dir + "/bpe_simple_vocab_16e6.txt.gz";
#ifndef RETRACE_CORE_MODELS_MODEL_MANIFEST_H_
#define RETRACE_CORE_MODELS_MODEL_MANIFEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/image/preprocess.h"

namespace retrace::models {

enum class ModelKind { kClip, kCaptioner, kImageEncoder };

// ModelDType: the precision a model runs at. kBFloat16 converts float32 weights at load;
// kInt8Dynamic is a model file exported with int8 linear layers (dynamic quantization), since
// LibTorch's C++ API cannot quantize. Embeddings leave the model as float32 whatever the dtype.
enum class ModelDType { kFloat32, kBFloat16, kInt8Dynamic };

// ModelDTypeName is the dtype's name in manifests and the server config: "float32", "bfloat16",
// "int8-dynamic".
inline const char* ModelDTypeName(ModelDType dtype) {
  switch (dtype) {
    case ModelDType::kBFloat16: return "bfloat16";
    case ModelDType::kInt8Dynamic: return "int8-dynamic";
    default: return "float32";
  }
}

// ParseModelDType is ModelDTypeName's inverse; nullopt for any other string (callers name the
// field in their error).
inline std::optional<ModelDType> ParseModelDType(std::string_view name) {
  for (ModelDType d : {ModelDType::kFloat32, ModelDType::kBFloat16, ModelDType::kInt8Dynamic}) {
    if (name == ModelDTypeName(d)) return d;
  }
  return std::nullopt;
}

struct TokenizerSpec {
  enum class Kind { kNone, kClipBpe, kGpt2Bpe };
  Kind kind = Kind::kNone;
  std::string vocab_path;   // absolute or relative to the working directory (resolved by loaders)
  std::string merges_path;  // GPT-2 BPE only; empty when the model only decodes
  int context_length = 77;  // CLIP BPE: tokens per text including start and end
};

struct CaptionerSpec {
  int64_t bos_token_id = 0;
  std::vector<int64_t> eos_token_ids;
  int64_t pad_token_id = 0;
  int vocab_size = 0;      // V
  int prefix_length = 0;   // Q
  int prefix_dim = 0;      // H
  int max_new_tokens = 30;
};

struct ModelManifest {
  ModelKind kind = ModelKind::kClip;
  std::string name;
  std::string version;
  int embedding_dim = 0;  // CLIP and image encoders
  image::PreprocessSpec image;
  TokenizerSpec tokenizer;
  CaptionerSpec captioner;  // captioners only
  std::string folder;       // where the model was loaded from, for messages
  std::string fingerprint;  // of model.pt's bytes (set by the loader), e.g. "crc32:1a2b3c4d/4116494"
  ModelDType dtype = ModelDType::kFloat32;  // the precision it runs at (set by the loader)

  // Identity names the model for collections: embeddings of different identities never mix.
  // The fingerprint makes two files with the same name and version different models; the dtype
  // makes one file run at two precisions two models. float32 adds nothing, so the identities
  // stored before dtypes existed (all float32) still match: "clip@1 [crc32:1a2b3c4d/4116494]",
  // "clip@1 [crc32:1a2b3c4d/4116494] (bfloat16)". The device is not part of it: a model gives
  // the same embeddings on any device, to the precision's tolerance.
  std::string Identity() const {
    std::string id = version.empty() ? name : name + "@" + version;
    if (!fingerprint.empty()) id += " [" + fingerprint + "]";
    if (dtype != ModelDType::kFloat32) id += std::string(" (") + ModelDTypeName(dtype) + ")";
    return id;
  }
};

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_MODEL_MANIFEST_H_
