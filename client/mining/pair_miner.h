// pair_miner.h — CS-SLIP's conceptual-similar pairs, mined through the service's own API.
//
// The CS-SLIP paper (section III-A) pairs every training image with the image whose caption is
// nearest to its own caption in a frozen CLIP text space. retrace already stores that space: an
// item's caption embedding (StoredItem.caption_text) is the CLIP text embedding of its caption,
// and the caption index searches it. So, per batch of ids:
//   1. Get(include_embeddings) reads the items' captions and caption embeddings;
//   2. a CAPTION_MATCH Search by each embedding (several in flight) returns the nearest
//      captions; the item itself and, optionally, items with an identical caption are left out;
//   3. the similarity of the hits still in the running is recomputed from their stored
//      embeddings (a second Get): FAISS's scores depend in their last bits on how the server
//      batched the query, and the choice must not — the best exact cosine wins, ties go to the
//      smaller id, so a resumed run writes what an uninterrupted one does.
// The depth of a search starts at `top_k` and grows (x4, up to `max_top_k`) while every hit
// was left out or the best ones tie to the last hit. Memory is bounded by one batch.
//
// Thread-safety: MinePairs uses the client from several threads (it is thread-safe); the
// source and writer are used by the calling thread only.
//
//   MinerOptions options;  options.collection = "corpus";
//   absl::StatusOr<MinerSummary> s = MinePairs(client, *ids, *writer, options);
#ifndef RETRACE_CLIENT_MINING_PAIR_MINER_H_
#define RETRACE_CLIENT_MINING_PAIR_MINER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/mining/id_source.h"
#include "client/mining/pairs_files.h"
#include "client/retrace_client.h"

namespace retrace::mining {

// kNearTie: hits whose FAISS score is within this of the best are re-scored exactly. FAISS's
// error on unit vectors is ~1e-6; anything further below the best cannot win.
inline constexpr float kNearTie = 1e-4f;

struct MinerOptions {
  std::string collection;                   // required
  bool exclude_identical_captions = false;  // leave out items whose caption equals the item's
  int top_k = 8;                            // first search depth: the item itself and a few spare
  int max_top_k = 1000;  // the deepest search; the server's default limits.max_top_k
  int concurrency = 4;   // searches in flight
  int batch_size = 64;   // ids per Get; the server's default limits.max_items_per_call
  // progress: called after each batch with the items done (resumed ones included).
  std::function<void(int64_t done)> progress;
};

struct MinerSummary {
  int64_t items = 0;     // lines written by this run
  int64_t paired = 0;    // ... with a nearest item
  int64_t unpaired = 0;  // ... whose every candidate was left out
  int64_t failed = 0;    // ... with an error (not stored)
};

// MinePairs: mines the ids `ids` still holds into `writer`. Stops at the first failed call
// (its status, naming the call; what was written stands and can be resumed); per-id NOT_FOUND
// becomes an error line. INVALID_ARGUMENT for a bad option.
absl::StatusOr<MinerSummary> MinePairs(client::RetraceClient& client, IdSource& ids,
                                       PairsWriter& writer, const MinerOptions& options);

// Hit: a search hit as NearCandidates sees it.
struct Hit {
  std::string id;
  std::string caption;
  float score = 0;
};

// NearCandidates: the hits (best first) that may be `id`'s nearest: not `id` itself, not one
// whose caption equals `caption` when `exclude_identical_captions`, and within kNearTie of the
// best of those left. Empty when none is left.
std::vector<Hit> NearCandidates(const std::string& id, const std::string& caption,
                                const std::vector<Hit>& hits, bool exclude_identical_captions);

}  // namespace retrace::mining

#endif  // RETRACE_CLIENT_MINING_PAIR_MINER_H_
