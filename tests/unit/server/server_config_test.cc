#include "server/server_config.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <thread>

#include "absl/strings/match.h"
#include "google/protobuf/text_format.h"

namespace retrace::server {
namespace {

v1::ServerConfig Parse(const std::string& text) {
  v1::ServerConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  ApplyDefaults(config);
  return config;
}

const int kCores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

TEST(ServerConfigTest, BatchingIsOnByDefaultWithItsThreadModel) {
  unsetenv("OMP_NUM_THREADS");
  const v1::ServerConfig c = Parse("");
  ASSERT_TRUE(ValidateServerConfig(c).ok());
  EXPECT_FALSE(c.batching().disabled());
  EXPECT_EQ(c.threads().workers(), std::max(32, 4 * kCores));
  EXPECT_EQ(c.threads().torch_intra_op(), std::max(1, kCores / 2));
  EXPECT_EQ(c.threads().faiss_omp(), 1);
  EXPECT_EQ(c.threads().bulk_nice(), 10);  // BENCHMARKS.md "Lanes"
  EXPECT_EQ(Parse("threads { bulk_nice: 0 }").threads().bulk_nice(), 0);  // 0 is off, not unset
  EXPECT_EQ(c.batching().search().threads(), kCores);
  // Model batches at once x intra-op threads each = the cores (two batches of half).
  EXPECT_EQ(c.batching().clip_image().threads(),
            std::max(1, kCores / c.threads().torch_intra_op()));
  EXPECT_EQ(c.batching().captioner().threads(), c.batching().clip_image().threads());
  EXPECT_EQ(c.batching().clip_image().adaptive_wait_fraction(), 0);  // off: BENCHMARKS.md (c)
  EXPECT_EQ(c.batching().clip_image().adaptive_wait_max_us(), 50000);
  EXPECT_EQ(c.batching().search().adaptive_wait_fraction(), 0);
  EXPECT_EQ(c.batching().clip_image().max_batch_size(), 32);
  EXPECT_EQ(c.batching().clip_image().max_queue_delay_us(), 2000);
  EXPECT_EQ(c.batching().captioner().max_batch_size(), 16);
  EXPECT_EQ(c.batching().search().max_batch_size(), 64);
  EXPECT_EQ(c.batching().search().max_queue_delay_us(), 0);
  EXPECT_EQ(c.batching().search().max_queue_size(), 4096);

  const engine::EngineOptions o = ToEngineOptions(c);
  EXPECT_TRUE(o.batching.enabled);
  EXPECT_EQ(o.batching.clip_text.max_batch_size, 64);
  EXPECT_EQ(o.batching.clip_text.max_queue_delay, absl::Milliseconds(1));
  EXPECT_EQ(o.batching.captioner.max_queue_size, 4096);
  EXPECT_EQ(o.batching.search.threads, kCores);
  EXPECT_EQ(o.batching.clip_text.adaptive_wait_fraction, 0);
  EXPECT_EQ(o.batching.clip_text.adaptive_wait_max, absl::Milliseconds(50));
}

TEST(ServerConfigTest, AGivenAdaptiveWaitIsKeptAndOneIntraOpThreadPerCoreGivesABatchEach) {
  unsetenv("OMP_NUM_THREADS");
  const v1::ServerConfig c = Parse(
      "threads { torch_intra_op: 1 }\n"
      "batching { clip_image { adaptive_wait_fraction: 0.05 }"
      " captioner { adaptive_wait_max_us: 0 } }");
  ASSERT_TRUE(ValidateServerConfig(c).ok());
  const engine::EngineOptions o = ToEngineOptions(c);
  EXPECT_DOUBLE_EQ(o.batching.clip_image.adaptive_wait_fraction, 0.05);
  EXPECT_EQ(o.batching.clip_image.adaptive_wait_max, absl::Milliseconds(50));
  EXPECT_EQ(o.batching.captioner.adaptive_wait_max, absl::ZeroDuration());
  EXPECT_EQ(o.batching.clip_text.adaptive_wait_fraction, 0);
  EXPECT_EQ(o.batching.clip_image.threads, kCores);
}

TEST(ServerConfigTest, OmpNumThreadsIsTheDefaultOfTheIntraOpThreads) {
  setenv("OMP_NUM_THREADS", "3", 1);
  const v1::ServerConfig c = Parse("");
  unsetenv("OMP_NUM_THREADS");
  EXPECT_EQ(c.threads().torch_intra_op(), 3);
  EXPECT_EQ(c.threads().faiss_omp(), 3);
}

TEST(ServerConfigTest, WithoutBatchingTheWorkersRunTheModelsOneThreadEach) {
  unsetenv("OMP_NUM_THREADS");
  const v1::ServerConfig c = Parse("batching { disabled: true }");
  EXPECT_EQ(c.threads().workers(), kCores);
  EXPECT_EQ(c.threads().torch_intra_op(), 1);
  EXPECT_EQ(c.threads().faiss_omp(), 1);
  EXPECT_FALSE(ToEngineOptions(c).batching.enabled);
}

TEST(ServerConfigTest, GivenValuesWinAndAnExplicitZeroDelayIsKept) {
  const v1::ServerConfig c = Parse(
      "threads { workers: 5 }\n"
      "batching { clip_image { max_batch_size: 8 max_queue_delay_us: 0 max_queue_size: 100 } }");
  EXPECT_EQ(c.threads().workers(), 5);
  const engine::EngineOptions o = ToEngineOptions(c);
  EXPECT_EQ(o.batching.clip_image.max_batch_size, 8);
  EXPECT_EQ(o.batching.clip_image.max_queue_delay, absl::ZeroDuration());
  EXPECT_EQ(o.batching.clip_image.max_queue_size, 100);
}

TEST(ServerConfigTest, BadBatcherSettingsAreRefusedNamingTheField) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : {
           Case{"batching { captioner { max_batch_size: 2000 } }",
                "batching.captioner.max_batch_size = 2000 is not in 1..1024"},
           Case{"batching { clip_text { max_queue_delay_us: -1 } }",
                "batching.clip_text.max_queue_delay_us = -1 is not in 0..1000000"},
           Case{"batching { search { max_queue_delay_us: 2000000 } }",
                "batching.search.max_queue_delay_us = 2000000"},
           Case{"batching { image_encoder { max_queue_size: 10 } }",
                "batching.image_encoder.max_queue_size = 10 is not in 64"},
           Case{"batching { clip_image { max_batch_size: 128 max_queue_size: 100 } }",
                "batching.clip_image.max_queue_size = 100 is not in 128"},
           Case{"batching { search { threads: 1000 } }",
                "batching.search.threads = 1000 is not in 1..256"},
           Case{"batching { clip_image { adaptive_wait_fraction: 1.5 } }",
                "batching.clip_image.adaptive_wait_fraction = 1.5 is not in 0..1"},
           Case{"batching { clip_text { adaptive_wait_fraction: nan } }",
                "batching.clip_text.adaptive_wait_fraction = nan is not in 0..1"},
           Case{"batching { captioner { adaptive_wait_max_us: -5 } }",
                "batching.captioner.adaptive_wait_max_us = -5 is not in 0..1000000"},
       }) {
    const absl::Status s = ValidateServerConfig(Parse(c.text));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_TRUE(absl::StrContains(s.message(), c.message)) << s.message();
  }
}

TEST(ServerConfigTest, ABulkNiceOutsideWhatTheKernelTakesIsRefused) {
  for (const char* text : {"threads { bulk_nice: 20 }", "threads { bulk_nice: -1 }"}) {
    const absl::Status s = ValidateServerConfig(Parse(text));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_TRUE(absl::StrContains(s.message(), "threads.bulk_nice")) << s.message();
    EXPECT_TRUE(absl::StrContains(s.message(), "is not in 0..19")) << s.message();
  }
  EXPECT_TRUE(ValidateServerConfig(Parse("threads { bulk_nice: 19 }")).ok());
}

}  // namespace
}  // namespace retrace::server
