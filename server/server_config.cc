#include "server/server_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <cstdlib>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/engine/defaults.h"

namespace retrace::server {
namespace {

// Collects parser errors so the message can name line and column.
class ErrorCollector final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty()) first_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

}  // namespace

absl::StatusOr<v1::ServerConfig> LoadServerConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config file not found: ", path));
  std::ostringstream text;
  text << in.rdbuf();
  v1::ServerConfig config;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text.str(), &config)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", errors.first()));
  }
  return config;
}

void ApplyDefaults(v1::ServerConfig& c) {
  namespace d = engine::defaults;
  if (c.listen().empty()) c.set_listen(d::kListen);
  if (c.http_listen().empty()) c.set_http_listen(d::kHttpListen);
  v1::Cluster& cluster = *c.mutable_cluster();
  if (cluster.role().empty()) cluster.set_role(d::kRoleAll);
  if (cluster.advertise().empty()) cluster.set_advertise(c.listen());
  if (cluster.shard_map_poll_ms() == 0) cluster.set_shard_map_poll_ms(d::kShardMapPollMs);
  if (c.models_dir().empty()) c.set_models_dir(d::kModelsDir);
  if (c.data_dir().empty()) c.set_data_dir(d::kDataDir);
  if (c.shutdown_grace_seconds() == 0) c.set_shutdown_grace_seconds(d::kShutdownGraceSeconds);
  if (c.snapshot_interval_seconds() == 0) {
    c.set_snapshot_interval_seconds(d::kSnapshotIntervalSeconds);
  }
  v1::Limits& l = *c.mutable_limits();
  if (l.max_message_bytes() == 0) l.set_max_message_bytes(d::kMaxMessageBytes);
  if (l.max_image_bytes() == 0) l.set_max_image_bytes(d::kMaxImageBytes);
  if (l.max_image_pixels() == 0) l.set_max_image_pixels(d::kMaxImagePixels);
  if (l.max_image_side() == 0) l.set_max_image_side(d::kMaxImageSide);
  if (l.max_items_per_call() == 0) l.set_max_items_per_call(d::kMaxItemsPerCall);
  if (l.max_top_k() == 0) l.set_max_top_k(d::kMaxTopK);
  if (l.max_id_bytes() == 0) l.set_max_id_bytes(d::kMaxIdBytes);
  if (l.max_caption_bytes() == 0) l.set_max_caption_bytes(d::kMaxCaptionBytes);
  if (l.max_text_bytes() == 0) l.set_max_text_bytes(d::kMaxTextBytes);
  if (l.max_attributes() == 0) l.set_max_attributes(d::kMaxAttributes);
  if (l.max_attribute_key_bytes() == 0) l.set_max_attribute_key_bytes(d::kMaxAttributeKeyBytes);
  if (l.max_attribute_value_bytes() == 0) {
    l.set_max_attribute_value_bytes(d::kMaxAttributeValueBytes);
  }
  if (l.max_collections() == 0) l.set_max_collections(d::kMaxCollections);
  if (l.max_shards() == 0) l.set_max_shards(d::kMaxShards);
  if (l.max_candidates() == 0) l.set_max_candidates(d::kMaxCandidates);
  if (l.max_queries_per_call() == 0) l.set_max_queries_per_call(d::kMaxQueriesPerCall);
  if (l.max_items_per_stream() == 0) l.set_max_items_per_stream(d::kMaxItemsPerStream);
  if (l.max_index_streams() == 0) l.set_max_index_streams(d::kMaxIndexStreams);
  if (l.max_pending_calls() == 0) l.set_max_pending_calls(d::kMaxPendingCalls);
  if (l.default_deadline_ms() == 0) l.set_default_deadline_ms(d::kDefaultDeadlineMs);
  v1::Replication& r = *c.mutable_replication();
  if (r.ack_timeout_ms() == 0) r.set_ack_timeout_ms(absl::ToInt64Milliseconds(d::kAckTimeout));
  if (r.ready_max_lag() == 0) r.set_ready_max_lag(d::kReadyMaxLag);
  if (r.heartbeat_interval_ms() == 0) {
    r.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(d::kHeartbeatInterval));
  }
  if (r.replica_expiry_seconds() == 0) {
    r.set_replica_expiry_seconds(absl::ToInt64Seconds(d::kReplicaExpiry));
  }
  if (r.poll_interval_ms() == 0) r.set_poll_interval_ms(absl::ToInt64Milliseconds(d::kPollInterval));
  if (r.postgres_pool_size() == 0) r.set_postgres_pool_size(d::kPostgresPoolSize);
  if (c.observability().log_format().empty()) c.mutable_observability()->set_log_format("text");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const bool batching = !c.batching().disabled();
  // A model batch gets half the cores: the other half decodes images, serves gRPC and runs the
  // other lane's model (measured on 2 cores, a 2-thread batch lost to a 1-thread one: the idle
  // OpenMP and OpenBLAS threads spin). OMP_NUM_THREADS, when set, is the operator's word.
  int omp_env = 0;
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env != nullptr) {
    if (!absl::SimpleAtoi(env, &omp_env) || omp_env < 0) omp_env = 0;
  }
  v1::Threads& t = *c.mutable_threads();
  if (t.workers() == 0) t.set_workers(batching ? std::max(32, 4 * cores) : cores);
  if (t.index_workers() == 0) t.set_index_workers(t.workers());
  if (!t.has_bulk_nice()) t.set_bulk_nice(d::kBulkNice);
  if (t.torch_intra_op() == 0) {
    t.set_torch_intra_op(omp_env > 0 ? omp_env : batching ? std::max(1, cores / 2) : 1);
  }
  // One OpenMP thread per FAISS call: the search batcher runs one batch per core instead, and
  // FAISS's large batches go to BLAS, whose pool has the intra-op size. (An OpenMP team's idle
  // threads spin after each search; measured, that halved HNSW search throughput.)
  if (t.faiss_omp() == 0) t.set_faiss_omp(omp_env > 0 ? omp_env : 1);
  v1::Batching& b = *c.mutable_batching();
  auto batcher = [](v1::Batcher* o, d::BatcherDefaults defaults, int threads) {
    if (o->max_batch_size() == 0) o->set_max_batch_size(defaults.max_batch_size);
    if (!o->has_max_queue_delay_us()) o->set_max_queue_delay_us(defaults.max_queue_delay_us);
    if (o->max_queue_size() == 0) {
      o->set_max_queue_size(std::max(d::kBatcherQueueSize, o->max_batch_size()));
    }
    if (o->threads() == 0) o->set_threads(threads);
    if (!o->has_adaptive_wait_fraction()) {
      o->set_adaptive_wait_fraction(defaults.adaptive_wait_fraction);
    }
    if (!o->has_adaptive_wait_max_us()) o->set_adaptive_wait_max_us(defaults.adaptive_wait_max_us);
  };
  // Two batches of a model at once (on 2 cores, each on 1 intra-op thread): with one, a
  // saturated server used 1.33 of 2 cores — the model's batch ran on one core while the other
  // had only decoding to do — and a batch on both cores loses to two on one each (idle OpenMP
  // and OpenBLAS threads spin). A lone call runs as before, on one batch's intra-op threads.
  // Measured (BENCHMARKS.md (b), (c)): 1.22x the QPS at concurrency 32 on the demo models, 2.1x
  // on a CPU ViT-B/32; at concurrency 8, 0.87x on the demo models (two smaller batches cost
  // more per call than one, and 8 callers do not fill 2 cores).
  const int model_threads = std::max(1, cores / t.torch_intra_op());
  batcher(b.mutable_clip_image(), d::kClipImageBatcher, model_threads);
  batcher(b.mutable_clip_text(), d::kClipTextBatcher, model_threads);
  batcher(b.mutable_image_encoder(), d::kImageEncoderBatcher, model_threads);
  batcher(b.mutable_captioner(), d::kCaptionerBatcher, model_threads);
  batcher(b.mutable_search(), d::kSearchBatcher, cores);
  v1::Captioning& cap = *c.mutable_captioning();
  if (cap.num_beams() == 0) cap.set_num_beams(1);
  if (!cap.has_length_penalty()) cap.set_length_penalty(1.0f);
  if (cap.repetition_penalty() == 0) cap.set_repetition_penalty(1.0f);
}

namespace {

absl::Status ValidateBatcher(const std::string& name, const v1::Batcher& b) {
  if (b.max_batch_size() < 1 || b.max_batch_size() > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", name, ".max_batch_size = ",
                                                   b.max_batch_size(), " is not in 1..1024"));
  }
  if (b.threads() < 1 || b.threads() > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", name, ".threads = ", b.threads(), " is not in 1..256"));
  }
  if (b.max_queue_delay_us() < 0 || b.max_queue_delay_us() > 1'000'000) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", name, ".max_queue_delay_us = ",
                                                   b.max_queue_delay_us(),
                                                   " is not in 0..1000000"));
  }
  if (!(b.adaptive_wait_fraction() >= 0 && b.adaptive_wait_fraction() <= 1)) {  // NaN too
    return absl::InvalidArgumentError(absl::StrCat("config: ", name, ".adaptive_wait_fraction = ",
                                                   b.adaptive_wait_fraction(), " is not in 0..1"));
  }
  if (b.adaptive_wait_max_us() < 0 || b.adaptive_wait_max_us() > 1'000'000) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", name, ".adaptive_wait_max_us = ",
                                                   b.adaptive_wait_max_us(),
                                                   " is not in 0..1000000"));
  }
  // An Index or Caption call hands over up to 16 images at once (the engine's chunk), and a
  // group never fits a queue smaller than itself.
  const int least = std::max(64, b.max_batch_size());
  if (b.max_queue_size() < least || b.max_queue_size() > 1'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", name, ".max_queue_size = ", b.max_queue_size(), " is not in ",
                     least, " (64 or its max_batch_size)..1000000"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateServerConfig(const v1::ServerConfig& c) {
  auto range = [](const char* field, int64_t value, int64_t lo, int64_t hi) -> absl::Status {
    if (value < lo || value > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat("config: ", field, " = ", value, " is not in ", lo, "..", hi));
    }
    return absl::OkStatus();
  };
  const v1::Limits& l = c.limits();
  for (absl::Status s :
       {range("limits.max_message_bytes", l.max_message_bytes(), 1 << 20, 1LL << 31),
        range("limits.max_image_bytes", l.max_image_bytes(), 1024, l.max_message_bytes()),
        range("limits.max_image_pixels", l.max_image_pixels(), 1, 1LL << 32),
        range("limits.max_image_side", l.max_image_side(), 1, 1 << 17),
        range("limits.max_items_per_call", l.max_items_per_call(), 1, 100000),
        range("limits.max_top_k", l.max_top_k(), 1, 100000),
        range("limits.max_id_bytes", l.max_id_bytes(), 1, 65536),
        range("limits.max_caption_bytes", l.max_caption_bytes(), 1, 1 << 20),
        range("limits.max_text_bytes", l.max_text_bytes(), 1, 1 << 20),
        range("limits.max_attributes", l.max_attributes(), 0, 10000),
        range("limits.max_attribute_key_bytes", l.max_attribute_key_bytes(), 1, 65536),
        range("limits.max_attribute_value_bytes", l.max_attribute_value_bytes(), 0, 1 << 20),
        range("limits.max_collections", l.max_collections(), 1, 1000000),
        range("limits.max_shards", l.max_shards(), 1, 256),
        range("limits.max_candidates", l.max_candidates(), 1, 10000),
        range("limits.max_queries_per_call", l.max_queries_per_call(), 1, 100000),
        range("limits.max_items_per_stream", l.max_items_per_stream(), 1, 1LL << 40),
        range("limits.max_index_streams", l.max_index_streams(), 1, 100000),
        range("limits.max_pending_calls", l.max_pending_calls(), 1, 1 << 24),
        range("limits.default_deadline_ms", l.default_deadline_ms(), 1, 24 * 3600 * 1000),
        range("threads.workers", c.threads().workers(), 1, 1024),
        range("threads.index_workers", c.threads().index_workers(), 1, 1024),
        range("threads.torch_intra_op", c.threads().torch_intra_op(), 1, 1024),
        range("threads.faiss_omp", c.threads().faiss_omp(), 1, 1024),
        range("threads.bulk_nice", c.threads().bulk_nice(), 0, 19),
        range("captioning.max_new_tokens", c.captioning().max_new_tokens(), 0, 128),
        ValidateBatcher("batching.clip_image", c.batching().clip_image()),
        ValidateBatcher("batching.clip_text", c.batching().clip_text()),
        ValidateBatcher("batching.image_encoder", c.batching().image_encoder()),
        ValidateBatcher("batching.captioner", c.batching().captioner()),
        ValidateBatcher("batching.search", c.batching().search()),
        range("captioning.num_beams", c.captioning().num_beams(), 1, 8),
        range("captioning.min_new_tokens", c.captioning().min_new_tokens(), 0,
              c.captioning().max_new_tokens() == 0 ? 128 : c.captioning().max_new_tokens()),
        range("captioning.no_repeat_ngram_size", c.captioning().no_repeat_ngram_size(), 0, 16),
        range("captioning.prompt bytes", c.captioning().prompt().size(), 0, 512),
        range("shutdown_grace_seconds", c.shutdown_grace_seconds(), 0, 3600),
        range("replication.ack_timeout_ms", c.replication().ack_timeout_ms(), 1, 3600 * 1000),
        range("replication.ready_max_lag", c.replication().ready_max_lag(), 0, 1LL << 40),
        range("replication.heartbeat_interval_ms", c.replication().heartbeat_interval_ms(), 100,
              3600 * 1000),
        range("replication.replica_expiry_seconds", c.replication().replica_expiry_seconds(), 1,
              30 * 86400),
        range("replication.poll_interval_ms", c.replication().poll_interval_ms(), 10, 600000),
        range("replication.postgres_pool_size", c.replication().postgres_pool_size(), 1, 256),
        range("replication.replica_id bytes", c.replication().replica_id().size(), 0, 256),
        range("snapshot_interval_seconds", c.snapshot_interval_seconds(), -1, 86400),
        range("cluster.shard_map_poll_ms", c.cluster().shard_map_poll_ms(), 10, 3600 * 1000)}) {
    if (!s.ok()) return s;
  }
  namespace d = engine::defaults;
  const v1::Cluster& cluster = c.cluster();
  if (cluster.role() != d::kRoleAll && cluster.role() != d::kRoleFrontend &&
      cluster.role() != d::kRoleShard) {
    return absl::InvalidArgumentError(absl::StrCat("config: cluster.role = '", cluster.role(),
                                                   "' is not all, frontend or shard (--role)"));
  }
  if (cluster.role() != d::kRoleAll) {
    if (c.store().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config: cluster.role ", cluster.role(),
          " needs a PostgreSQL store shared by the cluster (--store postgresql://...)"));
    }
    if (cluster.shard_map().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("config: cluster.role ", cluster.role(),
                                                     " needs cluster.shard_map (--shard-map)"));
    }
  } else if (!cluster.shard_map().empty()) {
    return absl::InvalidArgumentError(
        "config: cluster.shard_map is for --role frontend or shard; role all holds every shard");
  }
  auto finite_range = [](const char* field, float value, float lo, float hi) -> absl::Status {
    if (!(value >= lo && value <= hi)) {  // also refuses NaN
      return absl::InvalidArgumentError(
          absl::StrCat("config: ", field, " = ", value, " is not in ", lo, "..", hi));
    }
    return absl::OkStatus();
  };
  for (absl::Status s :
       {finite_range("captioning.length_penalty", c.captioning().length_penalty(), -4, 4),
        finite_range("captioning.repetition_penalty", c.captioning().repetition_penalty(), 1, 10)}) {
    if (!s.ok()) return s;
  }
  const v1::Security& sec = c.security();
  if (sec.tls_cert().empty() != sec.tls_key().empty()) {
    return absl::InvalidArgumentError(
        "config: security.tls_cert and security.tls_key go together (--tls-cert, --tls-key)");
  }
  if (!sec.tls_client_ca().empty() && sec.tls_cert().empty()) {
    return absl::InvalidArgumentError(
        "config: security.tls_client_ca needs security.tls_cert and tls_key (TLS)");
  }
  const std::string& format = c.observability().log_format();
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError(absl::StrCat("config: observability.log_format = '", format,
                                                   "' is not \"text\" or \"json\""));
  }
  return absl::OkStatus();
}

engine::EngineOptions ToEngineOptions(const v1::ServerConfig& c) {
  engine::EngineOptions o;
  const v1::Limits& l = c.limits();
  o.limits.decode.max_bytes = l.max_image_bytes();
  o.limits.decode.max_pixels = l.max_image_pixels();
  o.limits.decode.max_side = l.max_image_side();
  o.limits.max_items_per_call = l.max_items_per_call();
  o.limits.max_top_k = l.max_top_k();
  o.limits.max_id_bytes = l.max_id_bytes();
  o.limits.max_caption_bytes = l.max_caption_bytes();
  o.limits.max_text_bytes = l.max_text_bytes();
  o.limits.max_attributes = l.max_attributes();
  o.limits.max_attribute_key_bytes = l.max_attribute_key_bytes();
  o.limits.max_attribute_value_bytes = l.max_attribute_value_bytes();
  o.limits.max_collections = l.max_collections();
  o.limits.max_shards = l.max_shards();
  o.limits.max_candidates = l.max_candidates();
  o.limits.max_queries_per_call = l.max_queries_per_call();
  const v1::Captioning& cap = c.captioning();
  o.caption.max_new_tokens = cap.max_new_tokens();
  o.caption.num_beams = cap.num_beams();
  o.caption.length_penalty = cap.length_penalty();
  o.caption.min_new_tokens = cap.min_new_tokens();
  o.caption.no_repeat_ngram_size = cap.no_repeat_ngram_size();
  o.caption.repetition_penalty = cap.repetition_penalty();
  o.caption.prompt = cap.prompt();
  o.snapshot_dir = (std::filesystem::path(c.data_dir()) / "snapshots").string();
  o.snapshot_interval_seconds = c.snapshot_interval_seconds();
  o.mmap_snapshots = c.mmap_snapshots();
  const v1::Replication& r = c.replication();
  o.replication.replica_id = r.replica_id();
  o.replication.ack_timeout = absl::Milliseconds(r.ack_timeout_ms());
  o.replication.ready_max_lag = r.ready_max_lag();
  o.replication.heartbeat_interval = absl::Milliseconds(r.heartbeat_interval_ms());
  o.replication.replica_expiry = absl::Seconds(r.replica_expiry_seconds());
  o.replication.poll_interval = absl::Milliseconds(r.poll_interval_ms());
  const v1::Batching& b = c.batching();
  o.batching.enabled = !b.disabled();
  auto batcher = [](const v1::Batcher& from, batching::BatcherOptions& to) {
    to.max_batch_size = from.max_batch_size();
    to.max_queue_delay = absl::Microseconds(from.max_queue_delay_us());
    to.max_queue_size = from.max_queue_size();
    to.threads = from.threads();
    to.adaptive_wait_fraction = from.adaptive_wait_fraction();
    to.adaptive_wait_max = absl::Microseconds(from.adaptive_wait_max_us());
  };
  batcher(b.clip_image(), o.batching.clip_image);
  batcher(b.clip_text(), o.batching.clip_text);
  batcher(b.image_encoder(), o.batching.image_encoder);
  batcher(b.captioner(), o.batching.captioner);
  batcher(b.search(), o.batching.search);
  return o;
}

}  // namespace retrace::server
