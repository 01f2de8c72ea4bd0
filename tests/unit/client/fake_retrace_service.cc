#include "tests/unit/client/fake_retrace_service.h"

#include <chrono>
#include <deque>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace retrace::testing {

namespace v1 = ::retrace::v1;

namespace {

void SetStatus(v1::ItemStatus* status, grpc::StatusCode code, const std::string& message) {
  status->set_code(code);
  status->set_message(message);
}

}  // namespace

grpc::Status FakeRetraceService::Caption(grpc::ServerContext*, const v1::CaptionRequest* request,
                                         v1::CaptionResponse* response) {
  {
    absl::MutexLock lock(&mu_);
    caption_batch_sizes_.push_back(request->images_size());
  }
  for (const std::string& image : request->images()) {
    v1::CaptionResult* result = response->add_results();
    if (image == "bad") {
      SetStatus(result->mutable_status(), grpc::StatusCode::INVALID_ARGUMENT,
                "image: cannot decode");
    } else {
      result->set_caption(absl::StrCat("caption ", image.size(), " bytes"));
    }
  }
  return grpc::Status::OK;
}

grpc::Status FakeRetraceService::Index(
    grpc::ServerContext*, grpc::ServerReaderWriter<v1::IndexResponse, v1::IndexRequest>* stream) {
  absl::Mutex queue_mu;
  std::deque<v1::IndexRequest> queue;  // read, not yet answered
  bool reading_done = false;
  int pending = 0;
  std::thread answerer([&] {
    for (;;) {
      v1::IndexRequest request;
      {
        auto ready = [&] { return !queue.empty() || reading_done; };
        absl::MutexLock lock(&queue_mu, absl::Condition(&ready));
        if (queue.empty()) return;
        request = std::move(queue.front());
        queue.pop_front();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      v1::IndexResponse response;
      for (const v1::Item& item : request.items()) {
        v1::IndexResult* result = response.add_results();
        result->set_id(item.id());
        if (absl::StartsWith(item.id(), "bad")) {
          SetStatus(result->mutable_status(), grpc::StatusCode::INVALID_ARGUMENT,
                    "image: cannot decode");
        } else {
          result->set_caption(absl::StrCat("caption of ", item.id()));
        }
      }
      {
        // Counted as answered before the write: the client may see the answer and send again
        // before Write returns here.
        absl::MutexLock lock(&queue_mu);
        --pending;
      }
      stream->Write(response);
    }
  });
  grpc::Status status = grpc::Status::OK;
  v1::IndexRequest request;
  while (stream->Read(&request)) {
    if (request.collection() == "missing") {
      status = grpc::Status(grpc::StatusCode::NOT_FOUND, "collection 'missing' not found");
      break;
    }
    {
      absl::MutexLock lock(&mu_);
      index_batch_sizes_.push_back(request.items_size());
    }
    absl::MutexLock lock(&queue_mu);
    queue.push_back(request);
    ++pending;
    absl::MutexLock stats_lock(&mu_);
    max_index_requests_pending_ = std::max(max_index_requests_pending_, pending);
  }
  {
    absl::MutexLock lock(&queue_mu);
    reading_done = true;
    if (!status.ok()) queue.clear();
  }
  answerer.join();
  return status;
}

grpc::Status FakeRetraceService::Search(grpc::ServerContext*, const v1::SearchRequest* request,
                                        v1::SearchResponse* response) {
  std::chrono::milliseconds delay;
  {
    absl::MutexLock lock(&mu_);
    last_search_ = *request;
    ++searches_;
    max_concurrent_searches_ = std::max(max_concurrent_searches_, ++concurrent_searches_);
    delay = search_delay_;
  }
  std::this_thread::sleep_for(delay);
  {
    absl::MutexLock lock(&mu_);
    --concurrent_searches_;
  }
  if (request->collection() == "missing") {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "collection 'missing' not found");
  }
  if (request->mode() != v1::CAPTION_MATCH && request->mode() != v1::SEARCH_MODE_UNSPECIFIED) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "mode: only CAPTION_MATCH for now");
  }
  const int top_k = std::min(request->top_k() == 0 ? 10 : request->top_k(), 3);
  const char* ids[] = {"a", "b", "c"};
  for (int i = 0; i < top_k; ++i) {
    v1::SearchHit* hit = response->add_hits();
    hit->set_id(ids[i]);
    hit->set_score(0.9f - 0.1f * i);
    hit->set_caption(absl::StrCat("caption of ", ids[i]));
    if (i == 1) {
      (*hit->mutable_attributes())["source"] = "pacs";
      (*hit->mutable_attributes())["domain"] = "sketch";
    }
  }
  return grpc::Status::OK;
}

grpc::Status FakeRetraceService::Delete(grpc::ServerContext*, const v1::DeleteRequest* request,
                                        v1::DeleteResponse* response) {
  {
    absl::MutexLock lock(&mu_);
    deleted_ids_.insert(deleted_ids_.end(), request->ids().begin(), request->ids().end());
  }
  for (const std::string& id : request->ids()) {
    v1::IndexResult* result = response->add_results();
    result->set_id(id);
    if (absl::StartsWith(id, "gone")) {
      SetStatus(result->mutable_status(), grpc::StatusCode::NOT_FOUND, "id: not in the collection");
    }
  }
  return grpc::Status::OK;
}

grpc::Status FakeRetraceService::CreateCollection(grpc::ServerContext*,
                                                  const v1::CreateCollectionRequest* request,
                                                  v1::Collection* response) {
  *response = request->collection();
  if (response->shards() == 0) response->set_shards(1);
  if (response->caption_index().empty()) response->set_caption_index("Flat");
  response->set_caption_dim(8);
  return grpc::Status::OK;
}

grpc::Status FakeRetraceService::ListCollections(grpc::ServerContext*,
                                                 const v1::ListCollectionsRequest*,
                                                 v1::ListCollectionsResponse* response) {
  for (const char* name : {"alpha", "beta"}) {
    v1::Collection* c = response->add_collections();
    c->set_name(name);
    c->set_shards(2);
    c->set_caption_index("Flat");
    c->set_item_count(12);
    c->set_caption_dim(8);
  }
  return grpc::Status::OK;
}

grpc::Status FakeRetraceService::DescribeCollection(grpc::ServerContext*,
                                                    const v1::DescribeCollectionRequest* request,
                                                    v1::Collection* response) {
  if (request->name() == "missing") {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "collection 'missing' not found");
  }
  response->set_name(request->name());
  response->set_shards(1);
  response->set_caption_index("Flat");
  return grpc::Status::OK;
}

grpc::Status FakeRetraceService::DropCollection(grpc::ServerContext*,
                                                const v1::DropCollectionRequest* request,
                                                v1::DropCollectionResponse*) {
  if (request->name() == "missing") {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "collection 'missing' not found");
  }
  return grpc::Status::OK;
}

std::vector<int> FakeRetraceService::index_batch_sizes() const {
  absl::MutexLock lock(&mu_);
  return index_batch_sizes_;
}

std::vector<int> FakeRetraceService::caption_batch_sizes() const {
  absl::MutexLock lock(&mu_);
  return caption_batch_sizes_;
}

int FakeRetraceService::max_index_requests_pending() const {
  absl::MutexLock lock(&mu_);
  return max_index_requests_pending_;
}

v1::SearchRequest FakeRetraceService::last_search() const {
  absl::MutexLock lock(&mu_);
  return last_search_;
}

int FakeRetraceService::searches() const {
  absl::MutexLock lock(&mu_);
  return searches_;
}

int FakeRetraceService::max_concurrent_searches() const {
  absl::MutexLock lock(&mu_);
  return max_concurrent_searches_;
}

std::vector<std::string> FakeRetraceService::deleted_ids() const {
  absl::MutexLock lock(&mu_);
  return deleted_ids_;
}

void FakeRetraceService::set_search_delay(std::chrono::milliseconds delay) {
  absl::MutexLock lock(&mu_);
  search_delay_ = delay;
}

FakeRetraceServer::FakeRetraceServer() {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeRetraceServer::~FakeRetraceServer() { server_->Shutdown(); }

}  // namespace retrace::testing
