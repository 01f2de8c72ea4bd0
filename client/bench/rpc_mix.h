// rpc_mix: the kinds of call `retrace bench` makes and the weights that mix them.
//
// A mix is written "KIND=WEIGHT,KIND=WEIGHT,...", e.g. "search-image=6,search-text=2,index=1".
// KIND is one of search-image, search-text, search-embedding, index, delete; WEIGHT is a
// finite number >= 0 (fractions allowed). Kinds left out weigh 0; each call picks its kind at
// random with probability weight / sum of weights. An RpcMix is an immutable value: safe to
// share between threads (Pick takes the caller's random generator).
//
// Example:
//   absl::StatusOr<RpcMix> mix = RpcMix::Parse("search-text=3,index=1");
//   RpcKind kind = mix->Pick(rng);  // kSearchText three times in four
#ifndef RETRACE_CLIENT_BENCH_RPC_MIX_H_
#define RETRACE_CLIENT_BENCH_RPC_MIX_H_

#include <array>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace retrace::bench {

// RpcKind: one kind of call. The values index arrays of per-kind figures.
enum class RpcKind : int {
  kSearchImage = 0,      // Search with an image query
  kSearchText = 1,       // Search with a text query
  kSearchEmbedding = 2,  // Search with an embedding query
  kIndex = 3,            // one item over a short Index stream
  kDelete = 4,           // one id the run indexed earlier
};
inline constexpr int kRpcKindCount = 5;

// RpcKindName: "search-image", "search-text", "search-embedding", "index" or "delete".
absl::string_view RpcKindName(RpcKind kind);

// RpcMix: non-negative weights per kind, at least one of them positive.
class RpcMix {
 public:
  // Parse: the mix in `text` ("KIND=WEIGHT,..."). INVALID_ARGUMENT, naming the offending part,
  // for an unknown kind, a kind given twice, a weight that is not a finite number >= 0, a part
  // without '=', or weights that are all 0.
  static absl::StatusOr<RpcMix> Parse(absl::string_view text);

  // weight: the weight of `kind` (0 when the mix left it out).
  double weight(RpcKind kind) const { return weights_[static_cast<int>(kind)]; }
  // Uses: whether calls of `kind` can be picked (weight > 0).
  bool Uses(RpcKind kind) const { return weight(kind) > 0; }
  // Pick: a kind drawn with probability weight / total.
  RpcKind Pick(std::mt19937_64& rng) const;
  // ToString: the mix in Parse's syntax, every kind with a positive weight, in enum order.
  std::string ToString() const;

 private:
  RpcMix() = default;
  std::array<double, kRpcKindCount> weights_{};
};

}  // namespace retrace::bench

#endif  // RETRACE_CLIENT_BENCH_RPC_MIX_H_
