#include "client/bench/bench_calls.h"

#include <cmath>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace retrace::bench {
namespace {

// How many stored items lend their embeddings to embedding queries, and how many random
// vectors stand in for them in an empty collection.
constexpr int kQueryEmbeddings = 32;
// Ids per Delete call in Cleanup: the server's default max_items_per_call.
constexpr int kDeleteBatch = 64;

absl::Status ToAbsl(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

// ItemStatus: an item's status as a Status.
absl::Status ToAbsl(const v1::ItemStatus& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.message());
}

template <typename T>
const T& PickFrom(const std::vector<T>& values, std::mt19937_64& rng) {
  return values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng)];
}

}  // namespace

std::vector<std::string> BuiltInTexts() {
  return {"a photo of a dog",          "a sketch of a horse",
          "a painting of a house",     "a cartoon of an elephant",
          "a guitar on a stage",       "a giraffe in a field",
          "a person walking in rain",  "a watercolor of a mountain village",
          "a pencil drawing of a cat", "an anime girl with a red umbrella",
          "a castle at sunset",        "a black and white photo of a street"};
}

absl::StatusOr<std::unique_ptr<BenchCalls>> BenchCalls::Create(client::RetraceClient* client,
                                                               BenchCallOptions options,
                                                               const RpcMix& mix) {
  if ((mix.Uses(RpcKind::kSearchImage) || mix.Uses(RpcKind::kIndex)) && options.images.empty()) {
    return absl::InvalidArgumentError("search-image and index calls need images");
  }
  if (options.texts.empty()) return absl::InvalidArgumentError("no texts to query with");
  v1::DescribeCollectionRequest describe;
  describe.set_name(options.collection);
  v1::Collection collection;
  if (grpc::Status status = client->DescribeCollection(describe, &collection); !status.ok()) {
    return ToAbsl(status);
  }
  std::unique_ptr<BenchCalls> calls(new BenchCalls(client, std::move(options)));
  if (mix.Uses(RpcKind::kSearchEmbedding)) {
    if (absl::Status status = calls->PrepareEmbeddings(collection); !status.ok()) return status;
  }
  return calls;
}

absl::Status BenchCalls::PrepareEmbeddings(const v1::Collection& collection) {
  const bool caption_space = options_.mode == v1::CAPTION_MATCH;
  const int dim = caption_space ? collection.caption_dim() : collection.image_dim();
  if (dim <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection '", collection.name(), "' reports no ",
        caption_space ? "caption_dim" : "image_dim", ", so embedding queries cannot be made"));
  }

  // Some stored items: the hits of a text search (there is no call that lists items).
  v1::SearchRequest search;
  search.set_collection(options_.collection);
  search.set_text(options_.texts.front());
  search.set_top_k(kQueryEmbeddings);
  v1::SearchResponse hits;
  if (grpc::Status status = client_->Search(search, &hits); !status.ok()) return ToAbsl(status);
  if (hits.hits_size() > 0) {
    v1::GetRequest get;
    get.set_collection(options_.collection);
    get.set_include_embeddings(true);
    for (const v1::SearchHit& hit : hits.hits()) get.add_ids(hit.id());
    v1::GetResponse items;
    if (grpc::Status status = client_->Get(get, &items); !status.ok()) return ToAbsl(status);
    for (const v1::GetResult& result : items.results()) {
      if (result.status().code() != 0) continue;  // deleted since the search
      const v1::StoredItem& item = result.item();
      std::vector<float> vector;
      // The image space is [image encoder, CLIP] when there is an encoder (Collection.image_dim).
      if (!caption_space) {
        vector.assign(item.image_features().values().begin(), item.image_features().values().end());
      }
      vector.insert(vector.end(), item.clip_image().values().begin(),
                    item.clip_image().values().end());
      if (static_cast<int>(vector.size()) == dim) embeddings_.push_back(std::move(vector));
    }
  }
  if (!embeddings_.empty()) {
    embedding_source_ = "stored";
    return absl::OkStatus();
  }

  std::mt19937_64 rng(options_.seed);
  std::normal_distribution<float> normal;
  for (int i = 0; i < kQueryEmbeddings; ++i) {
    std::vector<float> vector(dim);
    double norm = 0;
    do {
      norm = 0;
      for (float& v : vector) {
        v = normal(rng);
        norm += double{v} * v;
      }
    } while (norm == 0);
    for (float& v : vector) v = static_cast<float>(v / std::sqrt(norm));
    embeddings_.push_back(std::move(vector));
  }
  embedding_source_ = "random";
  return absl::OkStatus();
}

CallOutcome BenchCalls::Run(RpcKind kind, std::mt19937_64& rng) {
  switch (kind) {
    case RpcKind::kSearchImage:
    case RpcKind::kSearchText:
    case RpcKind::kSearchEmbedding:
      return Search(kind, rng);
    case RpcKind::kIndex:
      return Index(rng);
    case RpcKind::kDelete:
      return Delete();
  }
  return {true, absl::InternalError("unknown kind of call")};
}

CallOutcome BenchCalls::Search(RpcKind kind, std::mt19937_64& rng) {
  v1::SearchRequest request;
  request.set_collection(options_.collection);
  request.set_mode(options_.mode);
  request.set_top_k(options_.top_k);
  const bool reranks = options_.mode != v1::CAPTION_MATCH;
  if (kind == RpcKind::kSearchImage) {
    request.set_image(PickFrom(options_.images, rng));
    if (reranks && options_.query_captions)
      request.set_query_caption(PickFrom(options_.texts, rng));
  } else if (kind == RpcKind::kSearchText) {
    request.set_text(PickFrom(options_.texts, rng));
  } else {
    const std::vector<float>& vector = PickFrom(embeddings_, rng);
    request.mutable_embedding()->mutable_values()->Add(vector.begin(), vector.end());
    // The API needs a Q_t for an embedding query that re-ranks by it (w2 > 0, the default).
    if (reranks) request.set_query_caption(PickFrom(options_.texts, rng));
  }
  v1::SearchResponse response;
  return {true, ToAbsl(client_->Search(request, &response))};
}

CallOutcome BenchCalls::Index(std::mt19937_64& rng) {
  std::vector<v1::Item> items(1);
  v1::Item& item = items[0];
  const std::string id = absl::StrCat("bench-", options_.run_id, "-", next_id_++);
  item.set_id(id);
  item.set_image(PickFrom(options_.images, rng));
  if (options_.index_captions) item.set_caption(PickFrom(options_.texts, rng));
  std::optional<v1::IndexResult> result;
  const grpc::Status status = client_->IndexItems(options_.collection, std::move(items), 1,
                                                  [&](const v1::IndexResult& r) { result = r; });
  absl::MutexLock lock(&mu_);
  if (!result.has_value()) {
    // The stream failed before the item's answer: it may or may not be stored.
    uncertain_.push_back(id);
    if (status.ok()) return {true, absl::InternalError("Index: no result for the item")};
    return {true, ToAbsl(status)};
  }
  if (result->status().code() == 0) indexed_.push_back(id);
  return {true, ToAbsl(result->status())};
}

CallOutcome BenchCalls::Delete() {
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    if (indexed_.empty()) return {false, absl::OkStatus()};
    id = std::move(indexed_.front());
    indexed_.pop_front();
  }
  v1::DeleteRequest request;
  request.set_collection(options_.collection);
  request.add_ids(id);
  v1::DeleteResponse response;
  const grpc::Status status = client_->Delete(request, &response);
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    uncertain_.push_back(id);
    return {true, ToAbsl(status)};
  }
  if (response.results_size() != 1) {
    return {true, absl::InternalError(
                      absl::StrCat("Delete: ", response.results_size(), " results for one id"))};
  }
  return {true, ToAbsl(response.results(0).status())};
}

absl::StatusOr<int64_t> BenchCalls::Cleanup() {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    ids.assign(indexed_.begin(), indexed_.end());
    ids.insert(ids.end(), uncertain_.begin(), uncertain_.end());
    indexed_.clear();
    uncertain_.clear();
  }
  int64_t deleted = 0;
  for (size_t first = 0; first < ids.size(); first += kDeleteBatch) {
    v1::DeleteRequest request;
    request.set_collection(options_.collection);
    for (size_t i = first; i < std::min(ids.size(), first + kDeleteBatch); ++i) {
      request.add_ids(ids[i]);
    }
    v1::DeleteResponse response;
    if (grpc::Status status = client_->Delete(request, &response); !status.ok()) {
      return ToAbsl(status);
    }
    for (const v1::IndexResult& result : response.results()) {
      if (result.status().code() == 0) ++deleted;
    }
  }
  return deleted;
}

}  // namespace retrace::bench
