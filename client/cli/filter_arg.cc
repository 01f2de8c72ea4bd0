#include "client/cli/filter_arg.h"

#include "absl/strings/str_cat.h"
#include "core/engine/defaults.h"
#include "core/filter/parse.h"
#include "server/filter_convert.h"

namespace retrace::cli {

absl::Status ParseFilterArg(absl::string_view text, v1::Filter* out) {
  const filter::FilterLimits limits{
      engine::defaults::kMaxFilterTerms, engine::defaults::kMaxFilterDepth,
      static_cast<size_t>(engine::defaults::kMaxAttributeKeyBytes),
      static_cast<size_t>(engine::defaults::kMaxAttributeValueBytes)};
  absl::StatusOr<filter::Filter> f = filter::ParseFilter(text, limits);
  if (!f.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", f.status().message()));
  }
  server::FilterToProto(*f, out);
  return absl::OkStatus();
}

}  // namespace retrace::cli
