// require_methods.h — start-up check that a model has the methods its kind promises.
// Thread-safety: pure function.
#ifndef RETRACE_CORE_MODELS_INTERNAL_REQUIRE_METHODS_H_
#define RETRACE_CORE_MODELS_INTERNAL_REQUIRE_METHODS_H_

#include <initializer_list>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/models/model_module.h"

namespace retrace::models::internal {

// RequireMethods: FAILED_PRECONDITION naming the model file and the first missing method.
inline absl::Status RequireMethods(const ModelModule& module,
                                   std::initializer_list<const char*> methods, const char* what) {
  for (const char* method : methods) {
    if (!module.HasMethod(method)) {
      return absl::FailedPreconditionError(absl::StrCat(
          module.Source(), " lacks method '", method, "', which ", what, " must have"));
    }
  }
  return absl::OkStatus();
}

}  // namespace retrace::models::internal

#endif  // RETRACE_CORE_MODELS_INTERNAL_REQUIRE_METHODS_H_
