// model_folder.h — loads the model folders of `--models DIR` (manifest.json + model.pt).
//
// DIR holds clip/ and captioner/, and optionally image_encoder/ (CS-SLIP). Each manifest.json is parsed as the
// protobuf message retrace.v1.ModelManifest, checked, and turned into core's plain
// models::ModelManifest; tokenizer files are resolved relative to the folder. Every failure names
// the file, and for a missing method the method.
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

namespace retrace::server {

// ReadManifest parses `<folder>/manifest.json`. NOT_FOUND if missing; INVALID_ARGUMENT naming the
// file and field when malformed or when it is not of `expected` kind.
absl::StatusOr<models::ModelManifest> ReadManifest(const std::string& folder,
                                                   models::ModelKind expected);

// LoadCaptioner loads one captioner folder (manifest.json, model.pt, tokenizer files).
absl::StatusOr<std::unique_ptr<models::Captioner>> LoadCaptioner(const std::string& folder);

// LoadModelSet loads `<dir>/clip`, `<dir>/captioner` and, when present, `<dir>/image_encoder`.
absl::StatusOr<engine::ModelSet> LoadModelSet(const std::string& dir);

// WarmUpModels runs every model of `models` twice on a synthetic image and text, so that
// TorchScript's profiling executor has optimised each method before the first real call (its
// first two runs are slow) and a model that fails to run fails the start, not a caller's call.
// `caption` is the server's captioning config; the warm-up caption is capped at 2 tokens.
absl::Status WarmUpModels(const engine::ModelSet& models, const models::CaptionOptions& caption);

}  // namespace retrace::server

#endif  // RETRACE_SERVER_MODEL_FOLDER_H_
