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
#include <string>
#include <vector>

#include "core/image/preprocess.h"

namespace retrace::models {

enum class ModelKind { kClip, kCaptioner, kImageEncoder };

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

  // Identity names the model for collections: embeddings of different identities never mix.
  // The fingerprint makes two files with the same name and version different models.
  std::string Identity() const {
    std::string id = version.empty() ? name : name + "@" + version;
    return fingerprint.empty() ? id : id + " [" + fingerprint + "]";
  }
};

}  // namespace retrace::models

#endif  // RETRACE_CORE_MODELS_MODEL_MANIFEST_H_
