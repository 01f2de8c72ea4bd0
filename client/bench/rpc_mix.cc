#include "client/bench/rpc_mix.h"

#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace retrace::bench {

absl::string_view RpcKindName(RpcKind kind) {
  switch (kind) {
    case RpcKind::kSearchImage:
      return "search-image";
    case RpcKind::kSearchText:
      return "search-text";
    case RpcKind::kSearchEmbedding:
      return "search-embedding";
    case RpcKind::kIndex:
      return "index";
    case RpcKind::kDelete:
      return "delete";
  }
  return "unknown";
}

absl::StatusOr<RpcMix> RpcMix::Parse(absl::string_view text) {
  RpcMix mix;
  std::array<bool, kRpcKindCount> seen{};
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    const size_t eq = part.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mix: expected KIND=WEIGHT, got '", part, "'"));
    }
    const absl::string_view name = absl::StripAsciiWhitespace(part.substr(0, eq));
    const absl::string_view value = absl::StripAsciiWhitespace(part.substr(eq + 1));
    int kind = -1;
    for (int k = 0; k < kRpcKindCount; ++k) {
      if (RpcKindName(static_cast<RpcKind>(k)) == name) kind = k;
    }
    if (kind < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--mix: unknown kind '", name,
          "' (expected search-image, search-text, search-embedding, index or delete)"));
    }
    if (seen[kind]) {
      return absl::InvalidArgumentError(absl::StrCat("--mix: '", name, "' is given twice"));
    }
    seen[kind] = true;
    double weight;
    if (!absl::SimpleAtod(value, &weight) || !std::isfinite(weight) || weight < 0) {
      return absl::InvalidArgumentError(absl::StrCat("--mix: the weight of '", name,
                                                     "' must be a number >= 0, got '", value, "'"));
    }
    mix.weights_[kind] = weight;
  }
  double total = 0;
  for (double w : mix.weights_) total += w;
  if (total <= 0) return absl::InvalidArgumentError("--mix: every weight is 0");
  return mix;
}

RpcKind RpcMix::Pick(std::mt19937_64& rng) const {
  double total = 0;
  for (double w : weights_) total += w;
  double u = std::uniform_real_distribution<double>(0, total)(rng);
  int last = 0;  // the last kind with weight, for u landing on the very end by rounding
  for (int k = 0; k < kRpcKindCount; ++k) {
    if (weights_[k] <= 0) continue;
    if (u < weights_[k]) return static_cast<RpcKind>(k);
    u -= weights_[k];
    last = k;
  }
  return static_cast<RpcKind>(last);
}

std::string RpcMix::ToString() const {
  std::vector<std::string> parts;
  for (int k = 0; k < kRpcKindCount; ++k) {
    if (weights_[k] > 0) {
      parts.push_back(absl::StrCat(RpcKindName(static_cast<RpcKind>(k)), "=", weights_[k]));
    }
  }
  return absl::StrJoin(parts, ",");
}

}  // namespace retrace::bench
