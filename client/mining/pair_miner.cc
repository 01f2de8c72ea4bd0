#include "client/mining/pair_miner.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "core/common/thread_pool.h"

namespace retrace::mining {
namespace {

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

// Stored: what a Get gave for one item.
struct Stored {
  std::string caption;
  std::vector<float> embedding;
};

// GetStored reads `ids` (at most one request's worth) with their embeddings. Ids that are not
// stored are absent from the result, or, with `errors`, get an error message there.
absl::Status GetStored(client::RetraceClient& client, const std::string& collection,
                       const std::vector<std::string>& ids, std::map<std::string, Stored>* stored,
                       std::map<std::string, std::string>* errors) {
  v1::GetRequest request;
  request.set_collection(collection);
  request.set_include_embeddings(true);
  for (const std::string& id : ids) request.add_ids(id);
  v1::GetResponse response;
  if (grpc::Status s = client.Get(request, &response); !s.ok()) {
    return FromGrpc(s, absl::StrCat("Get ", ids.size(), " items of '", collection, "'"));
  }
  if (response.results_size() != static_cast<int>(ids.size())) {
    return absl::InternalError(absl::StrCat("Get: the server returned ", response.results_size(),
                                            " results for ", ids.size(), " ids"));
  }
  for (int i = 0; i < response.results_size(); ++i) {
    const v1::GetResult& result = response.results(i);
    if (result.status().code() != 0) {
      if (errors != nullptr) {
        (*errors)[ids[i]] = absl::StrCat(
            absl::StatusCodeToString(static_cast<absl::StatusCode>(result.status().code())), ": ",
            result.status().message());
      }
      continue;
    }
    const v1::StoredItem& item = result.item();
    Stored& s = (*stored)[ids[i]];
    s.caption = item.caption();
    s.embedding.assign(item.caption_text().values().begin(), item.caption_text().values().end());
  }
  return absl::OkStatus();
}

// SearchCandidates: NearCandidates of `pair` over a search deep enough to decide (see the
// header's banner on depth).
absl::Status SearchCandidates(client::RetraceClient& client, const MinerOptions& options,
                              const MinedPair& pair, std::vector<Hit>* out) {
  for (int depth = options.top_k;; depth = std::min(depth * 4, options.max_top_k)) {
    v1::SearchRequest request;
    request.set_collection(options.collection);
    request.set_mode(v1::CAPTION_MATCH);
    request.set_top_k(depth);
    request.mutable_embedding()->mutable_values()->Add(pair.embedding.begin(),
                                                       pair.embedding.end());
    v1::SearchResponse response;
    if (grpc::Status s = client.Search(request, &response); !s.ok()) {
      return FromGrpc(s, absl::StrCat("Search for the caption of '", pair.id, "'"));
    }
    std::vector<Hit> hits;
    for (const v1::SearchHit& hit : response.hits()) {
      hits.push_back({hit.id(), hit.caption(), hit.score()});
    }
    *out = NearCandidates(pair.id, pair.caption, hits, options.exclude_identical_captions);
    const bool more_exist = static_cast<int>(hits.size()) == depth && depth < options.max_top_k;
    // Deeper when nothing is left, or when the last hit ties with the best (more may tie).
    const bool undecided =
        out->empty() || (!hits.empty() && hits.back().score >= out->front().score - kNearTie);
    if (!more_exist || !undecided) return absl::OkStatus();
  }
}

absl::Status CheckOptions(const MinerOptions& o) {
  if (o.collection.empty()) return absl::InvalidArgumentError("collection: required");
  if (o.top_k < 2) return absl::InvalidArgumentError("top_k: at least 2 (the item and one more)");
  if (o.max_top_k < o.top_k) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_top_k: ", o.max_top_k, " is below top_k ", o.top_k));
  }
  if (o.concurrency < 1) return absl::InvalidArgumentError("concurrency: at least 1");
  if (o.batch_size < 1) return absl::InvalidArgumentError("batch_size: at least 1");
  return absl::OkStatus();
}

}  // namespace

std::vector<Hit> NearCandidates(const std::string& id, const std::string& caption,
                                const std::vector<Hit>& hits, bool exclude_identical_captions) {
  std::vector<Hit> near;
  for (const Hit& hit : hits) {
    if (hit.id == id || (exclude_identical_captions && hit.caption == caption)) continue;
    if (!near.empty() && hit.score < near.front().score - kNearTie) break;  // hits: best first
    near.push_back(hit);
  }
  return near;
}

absl::StatusOr<MinerSummary> MinePairs(client::RetraceClient& client, IdSource& ids,
                                       PairsWriter& writer, const MinerOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  ThreadPool searchers(options.concurrency);
  MinerSummary summary;
  for (;;) {
    std::vector<std::string> batch;
    while (static_cast<int>(batch.size()) < options.batch_size) {
      absl::StatusOr<std::optional<std::string>> id = ids.Next();
      if (!id.ok()) return id.status();
      if (!id->has_value()) break;
      batch.push_back(std::move(**id));
    }
    if (batch.empty()) return summary;

    // 1. The items' captions and caption embeddings.
    std::map<std::string, Stored> items;
    std::map<std::string, std::string> errors;
    if (absl::Status s = GetStored(client, options.collection, batch, &items, &errors); !s.ok()) {
      return s;
    }
    std::vector<MinedPair> pairs(batch.size());
    std::vector<size_t> found;
    for (size_t i = 0; i < batch.size(); ++i) {
      pairs[i].id = batch[i];
      auto it = items.find(batch[i]);
      if (it == items.end()) {
        pairs[i].error = errors.count(batch[i]) ? errors[batch[i]] : "NOT_FOUND";
        continue;
      }
      pairs[i].caption = it->second.caption;
      pairs[i].embedding = it->second.embedding;
      found.push_back(i);
    }

    // 2. Their nearest captions, several searches in flight.
    std::vector<std::vector<Hit>> candidates(batch.size());
    std::vector<absl::Status> statuses(batch.size());
    absl::BlockingCounter searched(static_cast<int>(found.size()));
    for (size_t i : found) {
      searchers.Submit([&, i] {
        statuses[i] = SearchCandidates(client, options, pairs[i], &candidates[i]);
        searched.DecrementCount();
      });
    }
    searched.Wait();
    for (const absl::Status& s : statuses) {
      if (!s.ok()) return s;
    }

    // 3. Exact similarities of the candidates, from their stored embeddings.
    std::set<std::string> wanted;
    for (size_t i : found) {
      for (const Hit& hit : candidates[i]) wanted.insert(hit.id);
    }
    std::map<std::string, Stored> neighbours;
    std::vector<std::string> chunk;
    for (auto it = wanted.begin(); it != wanted.end();) {
      chunk.push_back(*it++);
      if (static_cast<int>(chunk.size()) == options.batch_size || it == wanted.end()) {
        // A candidate deleted since the search is simply not a candidate any more.
        if (absl::Status s = GetStored(client, options.collection, chunk, &neighbours, nullptr);
            !s.ok()) {
          return s;
        }
        chunk.clear();
      }
    }
    for (size_t i : found) {
      MinedPair& pair = pairs[i];
      for (const Hit& hit : candidates[i]) {  // candidates are distinct ids
        auto it = neighbours.find(hit.id);
        if (it == neighbours.end()) continue;
        const double similarity = Dot(pair.embedding, it->second.embedding);
        if (!pair.nearest || similarity > pair.similarity ||
            (similarity == pair.similarity && hit.id < *pair.nearest)) {
          pair.nearest = hit.id;
          pair.nearest_caption = it->second.caption;
          pair.similarity = similarity;
        }
      }
    }

    if (absl::Status s = writer.Write(pairs); !s.ok()) return s;
    for (const MinedPair& pair : pairs) {
      ++summary.items;
      if (!pair.error.empty()) {
        ++summary.failed;
      } else if (pair.nearest) {
        ++summary.paired;
      } else {
        ++summary.unpaired;
      }
    }
    if (options.progress) options.progress(writer.done());
  }
}

}  // namespace retrace::mining
