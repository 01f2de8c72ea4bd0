// defaults.h — every default of the engine and the server, in one place. The engine's option
// structs (engine_types.h) start from these, the server's config (server/server_config.cc,
// ApplyDefaults) fills unset fields from these, and request conversion (server/proto_convert.cc)
// fills unset request fields from these; config.proto and retrace.proto document the same
// values for users.
//
// Thread-safety: constants.
//
//   spec.caption_index = request.empty() ? std::string(defaults::kIndexFactory) : request;
#ifndef RETRACE_CORE_ENGINE_DEFAULTS_H_
#define RETRACE_CORE_ENGINE_DEFAULTS_H_

#include <cstdint>

#include "absl/time/time.h"

namespace retrace::engine::defaults {

// Collections.
inline constexpr char kIndexFactory[] = "Flat";  // exact inner product, both spaces
inline constexpr int kShards = 1;
// Thumbnails (CollectionSpec.thumbnail_side): the longest side of the JPEG kept per item, the
// range a collection may choose, and the JPEG quality.
inline constexpr int kThumbnailSide = 256;
inline constexpr int kMinThumbnailSide = 16;
inline constexpr int kMaxThumbnailSide = 1024;
inline constexpr int kThumbnailJpegQuality = 85;

// List: items per page when the request gives none, and the most a page may hold.
inline constexpr int kListPageSize = 100;
inline constexpr int kMaxListPageSize = 1000;
// List with a filter reads at most max(kListFilterScanPages x page_size, kListFilterMinScan)
// stored items per call, so a selective filter answers in bounded time with a cursor to go on
// from; Delete by filter reads the store kListFilterMinScan items at a time.
inline constexpr int kListFilterScanPages = 10;
inline constexpr int kListFilterMinScan = 10000;

// Search.
inline constexpr int kTopK = 10;
inline constexpr int kCandidates = 100;  // provenance N
// Re-ranking: the paper gives no values; these keep each term at most 0.1 (README, "Search").
inline constexpr float kBeta = 1.0f;
inline constexpr float kW1 = 0.1f;
inline constexpr float kW2 = 0.1f;
inline constexpr int kRrfK = 60;  // Cormack et al. 2009
// Lexical search (CAPTION_TEXT, HYBRID's lexical ranking): the store ranks captions, then this
// replica keeps the items it holds that pass the filter. The first store read asks for
// kLexicalOverfetch times the ranking's depth; while the items kept fall short and the store
// had more, it asks again for twice as many, up to kMaxLexicalFetch rows. So a filter (or a
// replica behind the store) that keeps one matching item in 4 costs one read; past
// kMaxLexicalFetch rows the ranking may hold fewer items than pass (search.h).
inline constexpr int kLexicalOverfetch = 4;
inline constexpr int kMaxLexicalFetch = 10000;

// Filtered search (SearchRequest.filter; core/index/sharded_index.h's banner). A shard where at
// most kFilterExactMaxIds items pass, or less than kFilterExactFraction of its items, scores
// those items exactly instead of searching its index with a selector: graph search loses recall
// when few nodes pass (Lucene and others switch to an exact scan the same way), and scoring a
// couple of thousand vectors costs about what the graph search does. Otherwise HNSW's efSearch is
// max(efSearch, kFilterMinEfSearch, k) / fraction, up to kFilterMaxEfSearch (with the defaults
// the fraction is >= 2%, so at most 50x). The floor keeps recall@10 >= 0.95 when half the items
// pass (tests/unit/index/filtered_search_test.cc; efSearch 16 gave about 0.8 there).
inline constexpr int kFilterExactMaxIds = 2048;
inline constexpr double kFilterExactFraction = 0.02;
inline constexpr int kFilterMinEfSearch = 64;
inline constexpr int kFilterMaxEfSearch = 4096;

// Limits (ServerConfig.limits).
inline constexpr int64_t kMaxMessageBytes = 64 << 20;
inline constexpr int64_t kMaxImageBytes = 32 << 20;
inline constexpr int64_t kMaxImagePixels = 50'000'000;
inline constexpr int kMaxImageSide = 16384;
inline constexpr int kMaxItemsPerCall = 64;
inline constexpr int kMaxTopK = 1000;
inline constexpr int kMaxIdBytes = 512;
inline constexpr int kMaxCaptionBytes = 2048;
inline constexpr int kMaxTextBytes = 2048;
inline constexpr int kMaxAttributes = 32;
inline constexpr int kMaxAttributeKeyBytes = 128;
inline constexpr int kMaxAttributeValueBytes = 1024;
inline constexpr int kMaxCollections = 1000;
inline constexpr int kMaxShards = 256;
inline constexpr int kMaxCandidates = 1000;
inline constexpr int kMaxQueriesPerCall = 64;  // SearchBatch's queries
// IndexRequest.near_duplicate.threshold: the default (an exact copy scores 1, a JPEG re-encode
// about 0.99 in the image space) and the lowest accepted (below it "near" means little).
inline constexpr float kNearDuplicateThreshold = 0.95f;
inline constexpr float kMinNearDuplicateThreshold = 0.5f;
// A filter: conditions, groups and values of `in` sets together; nesting levels (a condition
// alone is one level). Keys and values are bounded as attributes are.
inline constexpr int kMaxFilterTerms = 256;
inline constexpr int kMaxFilterDepth = 8;
// The words of a lexical query (store::CaptionTerms): each is one more term for the store's
// full-text index to look up.
inline constexpr int kMaxQueryTerms = 32;
inline constexpr int64_t kMaxItemsPerStream = 10'000'000;
inline constexpr int kMaxIndexStreams = 64;
inline constexpr int kMaxPendingCalls = 1024;
inline constexpr int kDefaultDeadlineMs = 60'000;

// The server.
inline constexpr char kListen[] = "127.0.0.1:50051";
// The HTTP/JSON API and web page (server/http/http_api.h); "off" turns them off.
inline constexpr char kHttpListen[] = "127.0.0.1:8080";
inline constexpr char kHttpOff[] = "off";
inline constexpr char kModelsDir[] = "build/models";
// Sharded cluster (ServerConfig.cluster): the roles, the shard map's bounds, how often a frontend
// looks for a changed map, and the longest a frontend waits before reconnecting to a shard
// server that went away (gRPC's own default, 120 s, would keep a restarted replica idle).
inline constexpr char kRoleAll[] = "all";
inline constexpr char kRoleFrontend[] = "frontend";
inline constexpr char kRoleShard[] = "shard";
inline constexpr int kShardMapPollMs = 1000;
inline constexpr int kMaxShardGroups = 256;
inline constexpr int kMaxReplicasPerGroup = 64;
inline constexpr int kShardReconnectBackoffMaxMs = 1000;
// A frontend's SearchSpaces call carries at most a search's index searches (HYBRID's two).
inline constexpr size_t kMaxSpaceQueries = 4;
inline constexpr absl::Duration kShardHealthProbeTimeout = absl::Seconds(1);  // cluster status
inline constexpr char kDataDir[] = "retrace-data";
inline constexpr int kShutdownGraceSeconds = 30;
inline constexpr int kSnapshotIntervalSeconds = 300;
inline constexpr int kInferenceBatchSize = 16;  // images or texts per model call of one request

// Batching (ServerConfig.batching): per batcher, the largest batch, the longest wait, and the
// adaptive wait (a fraction of the thread's last batch's run time, at most a cap).
struct BatcherDefaults {
  int max_batch_size;
  int max_queue_delay_us;
  double adaptive_wait_fraction;
  int adaptive_wait_max_us;
};
// The model batchers' adaptive wait: off by default, by measurement (BENCHMARKS.md (c)). On the
// demo models, whose batch of n costs about n batches of one, 0.05 cost 2-20% of the QPS at
// concurrency 32 (median 15%, five rounds): each freed thread idled while it waited. It
// pays where a batch costs much less than its inputs one by one and runs long: a CPU ViT-B/32,
// whose closed loop of 32 callers split into two halves of 16 that took turns (BENCHMARKS.md
// (b)); a 50 ms wait, 2.5% of such a batch, merged them (0.65x -> 0.88x of eager PyTorch) —
// hence the cap, and 0.05 as the setting to try for such a model. With two batches per model
// (below, in server_config.cc) the halves no longer take turns on one thread, and 0.05 did not
// speed that ViT up either (20.15 against 20.40 images/s, p50 worse).
inline constexpr double kModelAdaptiveWaitFraction = 0;
inline constexpr int kModelAdaptiveWaitMaxUs = 50000;
inline constexpr BatcherDefaults kClipImageBatcher{32, 2000, kModelAdaptiveWaitFraction,
                                                   kModelAdaptiveWaitMaxUs};
inline constexpr BatcherDefaults kClipTextBatcher{64, 1000, kModelAdaptiveWaitFraction,
                                                  kModelAdaptiveWaitMaxUs};
inline constexpr BatcherDefaults kImageEncoderBatcher{32, 2000, kModelAdaptiveWaitFraction,
                                                      kModelAdaptiveWaitMaxUs};
// An Index call's chunk of kInferenceBatchSize items is one captioner batch.
inline constexpr BatcherDefaults kCaptionerBatcher{16, 2000, kModelAdaptiveWaitFraction,
                                                   kModelAdaptiveWaitMaxUs};
// Search batches run at once on a free thread (one per core), with no wait: a batch of HNSW
// queries costs about as much as the queries one by one.
inline constexpr BatcherDefaults kSearchBatcher{64, 0, 0, 0};
inline constexpr int kBatcherQueueSize = 4096;
// How much lower the bulk lane's threads run (ServerConfig.threads.bulk_nice): added to the
// server's nice value for the Index/Delete workers and the captioner's batcher threads, so that on
// a saturated machine the kernel runs a search's threads before ingest's.
inline constexpr int kBulkNice = 10;

// Replication (ServerConfig.replication): how indexes follow the store.
// How long an Index or Delete call waits for this replica's index to apply its write before it
// answers UNAVAILABLE (the write is stored and will be applied; a retry answers once it is).
inline constexpr absl::Duration kAckTimeout = absl::Seconds(10);
// The replica reports SERVING once every collection is within this many positions of the store.
inline constexpr int64_t kReadyMaxLag = 100;
// How often a replica reports its positions and heartbeat to the store.
inline constexpr absl::Duration kHeartbeatInterval = absl::Seconds(5);
// A replica whose heartbeat is older no longer holds back the compaction of deletions (if it
// comes back, it rebuilds what it cannot catch up).
inline constexpr absl::Duration kReplicaExpiry = absl::Hours(1);
// The longest a follower waits for a notification before it asks the store anyway.
inline constexpr absl::Duration kPollInterval = absl::Seconds(1);
// A follower whose apply failed retries after this, doubling up to kRetryMax.
inline constexpr absl::Duration kRetryMin = absl::Milliseconds(100);
inline constexpr absl::Duration kRetryMax = absl::Seconds(10);
// Changes read from the store per page.
inline constexpr int kChangePage = 512;
// PostgreSQL connections for calls, per server process.
inline constexpr int kPostgresPoolSize = 8;

}  // namespace retrace::engine::defaults

#endif  // RETRACE_CORE_ENGINE_DEFAULTS_H_
