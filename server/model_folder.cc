#include "server/model_folder.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <zlib.h>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/models/torch/torchscript_module.h"
#include "retrace/v1/model_manifest.pb.h"

namespace retrace::server {
namespace {

namespace fs = std::filesystem;
using v1::ImagePreprocessing;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("file not found: ", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Fingerprint: CRC-32 and size of a file, read in 4 MiB pieces — enough to tell two model files
// apart (this guards against mistakes, not adversaries) at disk speed.
absl::StatusOr<std::string> Fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("file not found: ", path));
  std::vector<char> buffer(4 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  uint64_t size = 0;
  while (in) {
    in.read(buffer.data(), buffer.size());
    const std::streamsize got = in.gcount();
    if (got <= 0) break;
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(got));
    size += static_cast<uint64_t>(got);
  }
  return absl::StrCat("crc32:", absl::Hex(crc, absl::kZeroPad8), "/", size);
}

absl::Status Invalid(const std::string& file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", what));
}

absl::StatusOr<std::string> ExistingFile(const std::string& folder, const std::string& relative,
                                         const std::string& field, const std::string& manifest) {
  if (relative.empty()) return Invalid(manifest, absl::StrCat(field, " is required"));
  const std::string path = (fs::path(folder) / relative).string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(manifest, ": ", field, " names ", path,
                                            ", which does not exist"));
  }
  return path;
}

absl::StatusOr<image::PreprocessSpec> ToPreprocess(const ImagePreprocessing& p,
                                                   const std::string& manifest) {
  image::PreprocessSpec spec;
  if (p.size() < 1 || p.size() > 4096) {
    return Invalid(manifest, absl::StrCat("image.size ", p.size(), " is not in 1..4096"));
  }
  spec.size = p.size();
  switch (p.resize_mode()) {
    case ImagePreprocessing::LETTERBOX: spec.resize_mode = image::ResizeMode::kLetterbox; break;
    case ImagePreprocessing::STRETCH: spec.resize_mode = image::ResizeMode::kStretch; break;
    default: spec.resize_mode = image::ResizeMode::kShortestSideCenterCrop; break;
  }
  spec.interpolation = p.interpolation() == ImagePreprocessing::BILINEAR
                           ? image::Interpolation::kBilinear
                           : image::Interpolation::kBicubic;
  auto three = [&](const auto& values, const char* field) -> absl::Status {
    if (!values.empty() && values.size() != 3) {
      return Invalid(manifest, absl::StrCat("image.", field, " needs 3 values (R, G, B), got ",
                                            values.size()));
    }
    return absl::OkStatus();
  };
  RETRACE_RETURN_IF_ERROR(three(p.mean(), "mean"));
  RETRACE_RETURN_IF_ERROR(three(p.std(), "std"));
  RETRACE_RETURN_IF_ERROR(three(p.letterbox_fill(), "letterbox_fill"));
  for (int c = 0; c < 3; ++c) {
    if (!p.mean().empty()) spec.mean[c] = p.mean(c);
    if (!p.std().empty()) spec.std[c] = p.std(c);
    if (!p.letterbox_fill().empty()) {
      if (p.letterbox_fill(c) < 0 || p.letterbox_fill(c) > 255) {
        return Invalid(manifest, "image.letterbox_fill values must be in 0..255");
      }
      spec.letterbox_fill[c] = static_cast<uint8_t>(p.letterbox_fill(c));
    } else {
      spec.letterbox_fill[c] = static_cast<uint8_t>(std::lround(spec.mean[c] * 255.f));
    }
  }
  absl::Status valid = image::ValidatePreprocessSpec(spec);
  if (!valid.ok()) return Invalid(manifest, std::string(valid.message()));
  return spec;
}

// ToTorchRuntime checks `runtime` (ServerConfig.model_runtimes.<model>, named by `setting`) against
// the model folder's manifest and settles the dtype the model runs at into `manifest`: the
// setting's, else the manifest's. An int8-dynamic file holds quantized weights, so it runs only
// as int8-dynamic, and only such a file can.
absl::StatusOr<models::TorchRuntime> ToTorchRuntime(const v1::ModelRuntime& runtime,
                                                    const std::string& setting,
                                                    models::ModelManifest& manifest) {
  models::TorchRuntime out;
  if (!runtime.dtype().empty()) {
    std::optional<models::ModelDType> dtype = models::ParseModelDType(runtime.dtype());
    if (!dtype.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(setting, ".dtype: '", runtime.dtype(),
                                                     "' is not float32, bfloat16 or int8-dynamic"));
    }
    const bool file_is_int8 = manifest.dtype == models::ModelDType::kInt8Dynamic;
    if ((*dtype == models::ModelDType::kInt8Dynamic) != file_is_int8) {
      return absl::InvalidArgumentError(absl::StrCat(
          setting, ".dtype: '", runtime.dtype(), "' cannot run ", manifest.folder,
          ", whose manifest dtype is ", models::ModelDTypeName(manifest.dtype),
          "; int8-dynamic needs a folder exported with int8 linear layers "
          "(tools/fixtures/make_models.py --dtype int8-dynamic), which runs only as that"));
    }
    manifest.dtype = *dtype;
  }
  if (manifest.kind == models::ModelKind::kCaptioner &&
      manifest.dtype != models::ModelDType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        setting, ".dtype: the captioner runs float32 only (", manifest.folder, " would run ",
        models::ModelDTypeName(manifest.dtype), ")"));
  }
  out.dtype = manifest.dtype;
  if (!runtime.device().empty()) out.device = runtime.device();
  if (absl::Status device = models::CheckTorchDevice(out.device); !device.ok()) {
    return absl::Status(device.code(), absl::StrCat(setting, ".device: ", device.message()));
  }
  if (runtime.has_freeze()) out.freeze = runtime.freeze();
  return out;
}

// LoadModule loads `<folder>/model.pt` as `runtime` says and fingerprints it into `manifest`.
absl::StatusOr<std::unique_ptr<models::ModelModule>> LoadModule(const std::string& folder,
                                                                const v1::ModelRuntime& runtime,
                                                                const std::string& setting,
                                                                models::ModelManifest& manifest) {
  RETRACE_ASSIGN_OR_RETURN(models::TorchRuntime torch_runtime,
                           ToTorchRuntime(runtime, setting, manifest));
  const std::string model_file = (fs::path(folder) / "model.pt").string();
  RETRACE_ASSIGN_OR_RETURN(auto module, models::LoadTorchScriptModule(model_file, torch_runtime));
  RETRACE_ASSIGN_OR_RETURN(manifest.fingerprint, Fingerprint(model_file));
  return module;
}

}  // namespace

absl::StatusOr<models::ModelManifest> ReadManifest(const std::string& folder,
                                                   models::ModelKind expected) {
  const std::string file = (fs::path(folder) / "manifest.json").string();
  RETRACE_ASSIGN_OR_RETURN(std::string json, ReadFile(file));
  v1::ModelManifest proto;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field is an error, not a silent default
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &proto, options);
  if (!parsed.ok()) return Invalid(file, absl::StrCat("not a valid ModelManifest: ", parsed.message().as_string()));

  static constexpr v1::ModelManifest::Kind kProtoKind[] = {
      v1::ModelManifest::CLIP, v1::ModelManifest::CAPTIONER, v1::ModelManifest::IMAGE_ENCODER};
  const v1::ModelManifest::Kind want = kProtoKind[static_cast<int>(expected)];
  if (proto.kind() != want) {
    return Invalid(file, absl::StrCat("kind is ", v1::ModelManifest::Kind_Name(proto.kind()),
                                      "; this folder must hold a ",
                                      v1::ModelManifest::Kind_Name(want)));
  }
  models::ModelManifest m;
  if (!proto.dtype().empty()) {
    std::optional<models::ModelDType> dtype = models::ParseModelDType(proto.dtype());
    if (!dtype.has_value()) {
      return Invalid(file, absl::StrCat("dtype '", proto.dtype(),
                                        "' is not float32, bfloat16 or int8-dynamic"));
    }
    m.dtype = *dtype;
  }
  m.kind = expected;
  m.folder = folder;
  m.name = proto.name().empty() ? fs::path(folder).filename().string() : proto.name();
  m.version = proto.version();
  m.embedding_dim = proto.embedding_dim();
  RETRACE_ASSIGN_OR_RETURN(m.image, ToPreprocess(proto.image(), file));

  const v1::Tokenizer& tok = proto.tokenizer();
  if (expected == models::ModelKind::kClip) {
    if (tok.kind() != v1::Tokenizer::CLIP_BPE) return Invalid(file, "tokenizer.kind must be CLIP_BPE");
    m.tokenizer.kind = models::TokenizerSpec::Kind::kClipBpe;
    m.tokenizer.context_length = tok.context_length() == 0 ? 77 : tok.context_length();
    if (m.tokenizer.context_length < 3 || m.tokenizer.context_length > 1024) {
      return Invalid(file, "tokenizer.context_length must be in 3..1024");
    }
  } else if (expected == models::ModelKind::kCaptioner) {
    if (tok.kind() != v1::Tokenizer::GPT2_BPE) return Invalid(file, "tokenizer.kind must be GPT2_BPE");
    m.tokenizer.kind = models::TokenizerSpec::Kind::kGpt2Bpe;
  }
  if (m.tokenizer.kind != models::TokenizerSpec::Kind::kNone) {
    RETRACE_ASSIGN_OR_RETURN(m.tokenizer.vocab_path,
                             ExistingFile(folder, tok.vocab_file(), "tokenizer.vocab_file", file));
    if (!tok.merges_file().empty()) {
      RETRACE_ASSIGN_OR_RETURN(m.tokenizer.merges_path, ExistingFile(folder, tok.merges_file(),
                                                                     "tokenizer.merges_file", file));
    }
  }
  const v1::CaptionerSpec& cap = proto.captioner();
  m.captioner.bos_token_id = cap.bos_token_id();
  m.captioner.eos_token_ids.assign(cap.eos_token_ids().begin(), cap.eos_token_ids().end());
  m.captioner.pad_token_id = cap.pad_token_id();
  m.captioner.vocab_size = cap.vocab_size();
  m.captioner.prefix_length = cap.prefix_length();
  m.captioner.prefix_dim = cap.prefix_dim();
  m.captioner.max_new_tokens = cap.max_new_tokens() == 0 ? 30 : cap.max_new_tokens();
  return m;
}

absl::StatusOr<std::unique_ptr<models::Captioner>> LoadCaptioner(const std::string& folder,
                                                                 const v1::ModelRuntime& runtime) {
  RETRACE_ASSIGN_OR_RETURN(models::ModelManifest manifest,
                           ReadManifest(folder, models::ModelKind::kCaptioner));
  RETRACE_ASSIGN_OR_RETURN(text::ByteLevelBpe decoder,
                           text::ByteLevelBpe::Load(manifest.tokenizer.vocab_path,
                                                    manifest.tokenizer.merges_path));
  RETRACE_ASSIGN_OR_RETURN(auto module,
                           LoadModule(folder, runtime, "model_runtimes.captioner", manifest));
  return models::Captioner::Create(std::move(manifest), std::move(module), std::move(decoder));
}

absl::StatusOr<engine::ModelSet> LoadModelSet(const std::string& dir,
                                              const v1::ModelRuntimes& runtimes) {
  engine::ModelSet set;
  {
    const std::string folder = (fs::path(dir) / "clip").string();
    RETRACE_ASSIGN_OR_RETURN(models::ModelManifest manifest,
                             ReadManifest(folder, models::ModelKind::kClip));
    RETRACE_ASSIGN_OR_RETURN(text::ClipTokenizer tokenizer,
                             text::ClipTokenizer::Load(manifest.tokenizer.vocab_path));
    RETRACE_ASSIGN_OR_RETURN(
        auto module, LoadModule(folder, runtimes.clip(), "model_runtimes.clip", manifest));
    RETRACE_ASSIGN_OR_RETURN(set.clip, models::ClipModel::Create(std::move(manifest), std::move(module),
                                                                 std::move(tokenizer)));
  }
  RETRACE_ASSIGN_OR_RETURN(set.captioner, LoadCaptioner((fs::path(dir) / "captioner").string(),
                                                        runtimes.captioner()));
  const fs::path encoder_folder = fs::path(dir) / "image_encoder";
  if (fs::exists(encoder_folder)) {  // optional: without it the image space is CLIP's alone
    const std::string folder = encoder_folder.string();
    RETRACE_ASSIGN_OR_RETURN(models::ModelManifest manifest,
                             ReadManifest(folder, models::ModelKind::kImageEncoder));
    RETRACE_ASSIGN_OR_RETURN(auto module, LoadModule(folder, runtimes.image_encoder(),
                                                     "model_runtimes.image_encoder", manifest));
    RETRACE_ASSIGN_OR_RETURN(set.image_encoder,
                             models::ImageEncoder::Create(std::move(manifest), std::move(module)));
  }
  return set;
}

absl::Status WarmUpModels(const engine::ModelSet& models, const models::CaptionOptions& caption) {
  image::Image image;
  image.width = 64;
  image.height = 48;
  image.rgb.resize(static_cast<size_t>(image.width) * image.height * 3);
  for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<uint8_t>(i * 31 % 251);
  models::CaptionOptions short_caption = caption;
  short_caption.max_new_tokens = 2;
  short_caption.min_new_tokens = 0;
  for (int round = 0; round < 2; ++round) {
    RETRACE_RETURN_IF_ERROR(models.clip->EncodeImages({&image}).status());
    RETRACE_RETURN_IF_ERROR(models.clip->EncodeTexts({"a photo of a dog"}).status());
    RETRACE_RETURN_IF_ERROR(models.captioner->Caption({&image}, short_caption).status());
    if (models.image_encoder) {
      RETRACE_RETURN_IF_ERROR(models.image_encoder->EncodeImages({&image}).status());
    }
  }
  return absl::OkStatus();
}

}  // namespace retrace::server
