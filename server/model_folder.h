// model_folder.h — loads the model folders of `--models DIR` (manifest.json + model.pt).
//
// DIR holds clip/ and captioner/, and optionally image_encoder/ (CS-SLIP). Each manifest.json is parsed as the
// protobuf message retrace.v1.ModelManifest, checked, and turned into core's plain
// models::ModelManifest; tokenizer files are resolved relative to the folder. Every failure names
// the file, and for a missing method the method. ServerConfig.model_runtimes (dtype, device,
// freezing) is checked and applied here; its errors name the setting ("model_runtimes.clip.dtype").
//
// Thread-safety: functions only.
//
//   RETRACE_ASSIGN_OR_RETURN(engine::ModelSet models, LoadModelSet("build/models"));
#ifndef RETRACE_SERVER_MODEL_FOLDER_H_
#define RETRACE_SERVER_MODEL_FOLDER_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/engine/engine.h"
#include "core/models/model_manifest.h"
#include "retrace/v1/config.pb.h"

namespace retrace::server {

// ReadManifest parses `<folder>/manifest.json`. NOT_FOUND if missing; INVALID_ARGUMENT naming the
// file and field when malformed or when it is not of `expected` kind.
absl::StatusOr<models::ModelManifest> ReadManifest(const std::string& folder,
                                                   models::ModelKind expected);

// LoadCaptioner loads one captioner folder (manifest.json, model.pt, tokenizer files), run as
// `runtime` says (ServerConfig.model_runtimes.captioner; float32 only).
absl::StatusOr<std::unique_ptr<models::Captioner>> LoadCaptioner(
    const std::string& folder, const v1::ModelRuntime& runtime = {});

// LoadModelSet loads `<dir>/clip`, `<dir>/captioner` and, when present, `<dir>/image_encoder`,
// each run as `runtimes` says. A model's manifest dtype becomes the dtype it runs at (part of its
// identity). INVALID_ARGUMENT naming the setting for an unknown dtype or device spelling, or a
// dtype the folder cannot run at; FAILED_PRECONDITION naming it for a CUDA device this process
// cannot use.
absl::StatusOr<engine::ModelSet> LoadModelSet(const std::string& dir,
                                              const v1::ModelRuntimes& runtimes = {});

// WarmUpModels runs every model of `models` twice on a synthetic image and text, so that
// TorchScript's profiling executor has optimised each method before the first real call (its
// first two runs are slow) and a model that fails to run fails the start, not a caller's call.
// `caption` is the server's captioning config; the warm-up caption is capped at 2 tokens.
absl::Status WarmUpModels(const engine::ModelSet& models, const models::CaptionOptions& caption);

}  // namespace retrace::server

#endif  // RETRACE_SERVER_MODEL_FOLDER_H_
