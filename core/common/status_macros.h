// status_macros.h — the two small macros that abseil 20220623 lacks.
//
// RETRACE_RETURN_IF_ERROR(expr): evaluates an absl::Status expression and returns it from the
// enclosing function when it is not OK.
// RETRACE_ASSIGN_OR_RETURN(lhs, expr): evaluates an absl::StatusOr<T> expression; on error returns
// its status, else moves the value into `lhs` (a declaration or an existing variable).
//
//   RETRACE_ASSIGN_OR_RETURN(Image image, DecodeImage(bytes, limits));
//   RETRACE_RETURN_IF_ERROR(store.Put(items));
//
// Thread-safety: macros only; no state.
#ifndef RETRACE_CORE_COMMON_STATUS_MACROS_H_
#define RETRACE_CORE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RETRACE_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status retrace_status_ = (expr);           \
    if (!retrace_status_.ok()) return retrace_status_; \
  } while (0)

#define RETRACE_STATUS_CONCAT_INNER_(a, b) a##b
#define RETRACE_STATUS_CONCAT_(a, b) RETRACE_STATUS_CONCAT_INNER_(a, b)

#define RETRACE_ASSIGN_OR_RETURN(lhs, expr) \
  RETRACE_ASSIGN_OR_RETURN_IMPL_(RETRACE_STATUS_CONCAT_(retrace_statusor_, __LINE__), lhs, expr)

#define RETRACE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // RETRACE_CORE_COMMON_STATUS_MACROS_H_
