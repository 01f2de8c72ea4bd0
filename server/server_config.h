// server_config.h — the server's configuration: one protobuf message (retrace.v1.ServerConfig)
// in text format, common fields overridable by flags, defaults applied and validated here, then
// handed to core as plain option structs.
//
// Thread-safety: functions only.
//
//   RETRACE_ASSIGN_OR_RETURN(v1::ServerConfig config, LoadServerConfig(path));
//   ApplyDefaults(config);  RETRACE_RETURN_IF_ERROR(ValidateServerConfig(config));
#ifndef RETRACE_SERVER_SERVER_CONFIG_H_
#define RETRACE_SERVER_SERVER_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/engine/engine.h"
#include "retrace/v1/config.pb.h"

namespace retrace::server {

// LoadServerConfig reads a text-format ServerConfig. NOT_FOUND if the file is missing;
// INVALID_ARGUMENT with the parser's line and column if malformed.
absl::StatusOr<v1::ServerConfig> LoadServerConfig(const std::string& path);

// ApplyDefaults fills every zero or empty field with its documented default.
void ApplyDefaults(v1::ServerConfig& config);

// ValidateServerConfig: INVALID_ARGUMENT naming the first field out of range. REQUIRES defaults.
absl::Status ValidateServerConfig(const v1::ServerConfig& config);

// ToEngineOptions converts a validated config for core.
engine::EngineOptions ToEngineOptions(const v1::ServerConfig& config);

}  // namespace retrace::server

#endif  // RETRACE_SERVER_SERVER_CONFIG_H_
