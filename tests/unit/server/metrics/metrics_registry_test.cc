// The registry's exposition text, byte for byte, its name rules, and exact totals under threads.
#include "server/metrics/metrics_registry.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace retrace::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(MetricsRegistryTest, RendersOneOfEachKindExactly) {
  Registry registry;
  CounterFamily* rpcs =
      *registry.AddCounter("retrace_rpcs_total", "RPCs handled.", {"method", "code"});
  GaugeFamily* loaded = *registry.AddGauge("retrace_models_loaded", "Models loaded.");
  HistogramFamily* latency = *registry.AddHistogram("retrace_rpc_latency_seconds", "RPC latency.",
                                                    {"method"}, {0.125, 0.5, 2});
  ASSERT_TRUE(
      registry.AddCallbackGauge("retrace_queue_depth", "Queued tasks.", [] { return 3.0; }).ok());

  rpcs->WithLabels({"Search", "OK"}).Increment();
  rpcs->WithLabels({"Search", "OK"}).Increment(2);
  rpcs->WithLabels({"Index", "INVALID_ARGUMENT"}).Increment();
  loaded->WithLabels({}).Set(2);
  Histogram& search = latency->WithLabels({"Search"});
  for (double seconds : {0.0625, 0.5, 0.75, 3.0}) search.Observe(seconds);

  EXPECT_EQ(registry.Render(),
            "# HELP retrace_rpcs_total RPCs handled.\n"
            "# TYPE retrace_rpcs_total counter\n"
            "retrace_rpcs_total{method=\"Index\",code=\"INVALID_ARGUMENT\"} 1\n"
            "retrace_rpcs_total{method=\"Search\",code=\"OK\"} 3\n"
            "# HELP retrace_models_loaded Models loaded.\n"
            "# TYPE retrace_models_loaded gauge\n"
            "retrace_models_loaded 2\n"
            "# HELP retrace_rpc_latency_seconds RPC latency.\n"
            "# TYPE retrace_rpc_latency_seconds histogram\n"
            "retrace_rpc_latency_seconds_bucket{method=\"Search\",le=\"0.125\"} 1\n"
            "retrace_rpc_latency_seconds_bucket{method=\"Search\",le=\"0.5\"} 2\n"
            "retrace_rpc_latency_seconds_bucket{method=\"Search\",le=\"2\"} 3\n"
            "retrace_rpc_latency_seconds_bucket{method=\"Search\",le=\"+Inf\"} 4\n"
            "retrace_rpc_latency_seconds_sum{method=\"Search\"} 4.3125\n"
            "retrace_rpc_latency_seconds_count{method=\"Search\"} 4\n"
            "# HELP retrace_queue_depth Queued tasks.\n"
            "# TYPE retrace_queue_depth gauge\n"
            "retrace_queue_depth 3\n");
}

TEST(MetricsRegistryTest, UnlabeledFamiliesRenderZeroBeforeTheFirstUpdate) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("c_total", "C.").ok());
  ASSERT_TRUE(registry.AddHistogram("h_seconds", "H.", {}, {1}).ok());
  ASSERT_TRUE(registry.AddGauge("labeled", "Has labels, no children yet.", {"x"}).ok());
  EXPECT_EQ(registry.Render(),
            "# HELP c_total C.\n"
            "# TYPE c_total counter\n"
            "c_total 0\n"
            "# HELP h_seconds H.\n"
            "# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"1\"} 0\n"
            "h_seconds_bucket{le=\"+Inf\"} 0\n"
            "h_seconds_sum 0\n"
            "h_seconds_count 0\n"
            "# HELP labeled Has labels, no children yet.\n"
            "# TYPE labeled gauge\n");
}

TEST(MetricsRegistryTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  GaugeFamily* gauge = *registry.AddGauge("g", "Line one\nback\\slash \"quotes\" stay", {"path"});
  gauge->WithLabels({"C:\\dir\n\"x\""}).Set(1);
  EXPECT_EQ(registry.Render(),
            "# HELP g Line one\\nback\\\\slash \"quotes\" stay\n"
            "# TYPE g gauge\n"
            "g{path=\"C:\\\\dir\\n\\\"x\\\"\"} 1\n");
}

TEST(MetricsRegistryTest, FormatsValuesSoTheyReadBack) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(1e6), "1000000");
  EXPECT_EQ(FormatValue(123456789012345), "123456789012345");
  EXPECT_EQ(FormatValue(1e15), "1e+15");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.0005), "0.0005");
  EXPECT_EQ(FormatValue(1e-7), "1e-07");
  EXPECT_EQ(FormatValue(1234.5), "1234.5");
  EXPECT_EQ(FormatValue(kInf), "+Inf");
  EXPECT_EQ(FormatValue(-kInf), "-Inf");
  EXPECT_EQ(FormatValue(kNaN), "NaN");
  for (double value : {0.1 + 0.2, 1.0 / 3, 2.5e-300, 1.7976931348623157e308, -6.02214076e23,
                       9007199254740993.0, 0.30000000000000004}) {
    EXPECT_EQ(std::strtod(FormatValue(value).c_str(), nullptr), value) << FormatValue(value);
  }

  Registry registry;
  GaugeFamily* gauge = *registry.AddGauge("g", "G.", {"v"});
  gauge->WithLabels({"inf"}).Set(kInf);
  gauge->WithLabels({"minus_inf"}).Set(-kInf);
  gauge->WithLabels({"nan"}).Set(kNaN);
  EXPECT_EQ(registry.Render(),
            "# HELP g G.\n"
            "# TYPE g gauge\n"
            "g{v=\"inf\"} +Inf\n"
            "g{v=\"minus_inf\"} -Inf\n"
            "g{v=\"nan\"} NaN\n");
}

TEST(MetricsRegistryTest, HistogramBoundsAreInclusiveAndCountsCumulative) {
  Registry registry;
  HistogramFamily* family = *registry.AddHistogram("h", "H.", {}, {1, 2, 4});
  Histogram& histogram = family->WithLabels({});
  for (double value : {0.0, 1.0, 2.0, 4.0, 4.5, kNaN}) histogram.Observe(value);
  EXPECT_EQ(histogram.CumulativeCounts(), (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(histogram.Count(), 5u);  // NaN is left out
  EXPECT_EQ(histogram.Sum(), 11.5);
  EXPECT_EQ(registry.Render(),
            "# HELP h H.\n"
            "# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 2\n"
            "h_bucket{le=\"2\"} 3\n"
            "h_bucket{le=\"4\"} 4\n"
            "h_bucket{le=\"+Inf\"} 5\n"
            "h_sum 11.5\n"
            "h_count 5\n");
}

TEST(MetricsRegistryTest, HistogramBoundsMustIncrease) {
  Registry registry;
  for (const std::vector<double>& bad :
       {std::vector<double>{1, 1}, {2, 1}, {1, kNaN}, {-kInf, 1}, {kInf, 1}}) {
    absl::StatusOr<HistogramFamily*> family = registry.AddHistogram("h", "H.", {}, bad);
    EXPECT_EQ(family.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(family.status().message(), "histogram h"));
  }
  // A final +Inf is the implicit bucket; an empty list leaves only that one.
  ASSERT_TRUE(registry.AddHistogram("with_inf", "H.", {}, {1, kInf}).ok());
  ASSERT_TRUE(registry.AddHistogram("only_inf", "H.", {}, {}).ok());
  const std::string text = registry.Render();
  EXPECT_TRUE(absl::StrContains(text,
                                "with_inf_bucket{le=\"1\"} 0\nwith_inf_bucket{le=\"+Inf\"} 0\n"
                                "with_inf_sum"));
  EXPECT_TRUE(absl::StrContains(text, "only_inf_bucket{le=\"+Inf\"} 0\nonly_inf_sum"));
}

TEST(MetricsRegistryTest, ValidatesMetricAndLabelNames) {
  Registry registry;
  for (const char* bad : {"", "1abc", "a-b", "a b", "é"}) {
    absl::StatusOr<CounterFamily*> family = registry.AddCounter(bad, "Bad.");
    EXPECT_EQ(family.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StrContains(family.status().message(), "is not valid")) << bad;
  }
  for (const char* good : {"a:b_c1", ":x", "_x", "Abc"}) {
    EXPECT_TRUE(registry.AddCounter(good, "Good.").ok()) << good;
  }
  for (const char* bad : {"", "__reserved", "a:b", "1a", "a-b"}) {
    absl::StatusOr<GaugeFamily*> family = registry.AddGauge("g", "G.", {bad});
    EXPECT_EQ(family.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StrContains(family.status().message(), "label name")) << bad;
  }
  EXPECT_EQ(registry.AddGauge("g", "G.", {"x", "x"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h", "H.", {"le"}, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddCallbackGauge("bad-name", "B.", [] { return 0.0; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(registry.AddGauge("g", "G.", {"le", "_x"}).ok());  // le is reserved in histograms
}

TEST(MetricsRegistryTest, RejectsDuplicateNamesIncludingHistogramSeries) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("requests_total", "R.").ok());
  EXPECT_EQ(registry.AddGauge("requests_total", "R.").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddCallbackGauge("requests_total", "R.", [] { return 0.0; }).code(),
            absl::StatusCode::kAlreadyExists);

  ASSERT_TRUE(registry.AddHistogram("latency_seconds", "L.", {}, {1}).ok());
  absl::Status clash = registry.AddCounter("latency_seconds_count", "C.").status();
  EXPECT_EQ(clash.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(clash.message(), "latency_seconds_count")) << clash;
  ASSERT_TRUE(registry.AddGauge("size_sum", "S.").ok());
  EXPECT_EQ(registry.AddHistogram("size", "S.", {}, {1}).status().code(),
            absl::StatusCode::kAlreadyExists);
  // A rejected registration leaves nothing behind.
  EXPECT_FALSE(absl::StrContains(registry.Render(), "# HELP size "));
}

TEST(MetricsRegistryTest, WithLabelsReturnsTheSameChildEveryTime) {
  Registry registry;
  CounterFamily* family = *registry.AddCounter("c_total", "C.", {"method", "code"});
  Counter* first = &family->WithLabels({"Search", "OK"});
  for (int i = 0; i < 100; ++i) family->WithLabels({"Other", absl::StrCat(i)});
  const std::vector<std::string> values = {"Search", "OK"};
  EXPECT_EQ(&family->WithLabels(values), first);
  EXPECT_EQ(&family->WithLabels({"Search", "OK"}), first);
  EXPECT_NE(&family->WithLabels({"OK", "Search"}), first);
}

TEST(MetricsRegistryDeathTest, LabelCountMismatchAbortsNamingTheMetric) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry registry;
  CounterFamily* family = *registry.AddCounter("rpcs_total", "R.", {"method", "code"});
  EXPECT_DEATH(family->WithLabels({"Search"}),
               "rpcs_total has 2 label names \\(method, code\\) but was given 1 label values");
  const std::vector<std::string> three = {"a", "b", "c"};
  EXPECT_DEATH(family->WithLabels(three), "rpcs_total has 2 label names");
}

TEST(MetricsRegistryTest, CounterIgnoresNegativeAndNaNIncrements) {
  Registry registry;
  Counter& counter = (*registry.AddCounter("c_total", "C."))->WithLabels({});
  counter.Increment(uint64_t{5});
  counter.Increment(0.5);
  counter.Increment(-2);
  counter.Increment(kNaN);
  EXPECT_EQ(counter.Value(), 5.5);
  Gauge& gauge = (*registry.AddGauge("g", "G."))->WithLabels({});
  gauge.Add(3);
  gauge.Add(-5);
  EXPECT_EQ(gauge.Value(), -2);
}

TEST(MetricsRegistryTest, CallbackGaugeSamplesAreSortedAndMismatchesLeftOut) {
  Registry registry;
  int calls = 0;
  ASSERT_TRUE(
      registry
          .AddCallbackGauge(
              "retrace_items", "Items per collection.", {"collection"},
              [&calls] {
                ++calls;
                return std::vector<GaugeSample>{{{"photos"}, 10}, {{"art"}, 2.5}, {{"a", "b"}, 1}};
              })
          .ok());
  const std::string expected =
      "# HELP retrace_items Items per collection.\n"
      "# TYPE retrace_items gauge\n"
      "retrace_items{collection=\"art\"} 2.5\n"
      "retrace_items{collection=\"photos\"} 10\n";
  EXPECT_EQ(registry.Render(), expected);
  EXPECT_EQ(registry.Render(), expected);
  EXPECT_EQ(calls, 2);  // computed at each render
}

TEST(MetricsRegistryTest, BucketHelpers) {
  const std::vector<double> latency = LatencyBucketsSeconds();
  ASSERT_EQ(latency.size(), 17u);
  EXPECT_EQ(latency.front(), 0.0005);
  EXPECT_EQ(latency.back(), 32.768);
  std::vector<std::string> rendered;
  for (double bound : latency) rendered.push_back(FormatValue(bound));
  EXPECT_EQ(rendered,
            (std::vector<std::string>{"0.0005", "0.001", "0.002", "0.004", "0.008", "0.016",
                                      "0.032", "0.064", "0.128", "0.256", "0.512", "1.024", "2.048",
                                      "4.096", "8.192", "16.384", "32.768"}));
  EXPECT_EQ(BatchSizeBuckets(), (std::vector<double>{1, 2, 4, 8, 16, 32, 64, 128, 256}));
  Registry registry;
  EXPECT_TRUE(registry.AddHistogram("l", "L.", {}, latency).ok());
  EXPECT_TRUE(registry.AddHistogram("b", "B.", {}, BatchSizeBuckets()).ok());
}

TEST(MetricsRegistryTest, ConcurrentUpdatesOfOneChildGiveExactTotals) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  Registry registry;
  Counter& counter = (*registry.AddCounter("c_total", "C."))->WithLabels({});
  Gauge& gauge = (*registry.AddGauge("g", "G."))->WithLabels({});
  Histogram& histogram = (*registry.AddHistogram("h", "H.", {}, {1}))->WithLabels({});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        counter.Increment();
        gauge.Add(i % 2 == 0 ? 1 : -1);
        histogram.Observe(i % 2 == 0 ? 0.5 : 2);
      }
    });
  }
  // A scrape in the middle sees consistent histograms (count == +Inf bucket) and no crash.
  for (int i = 0; i < 20; ++i) {
    const std::string text = registry.Render();
    EXPECT_TRUE(absl::StrContains(text, "h_count "));
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter.Value(), kThreads * kPerThread);
  EXPECT_EQ(gauge.Value(), 0);
  EXPECT_EQ(histogram.CumulativeCounts(),
            (std::vector<uint64_t>{kThreads * kPerThread / 2, kThreads * kPerThread}));
  EXPECT_EQ(histogram.Sum(), kThreads * kPerThread / 2 * 2.5);
}

TEST(MetricsRegistryTest, ConcurrentLookupsCreateEachChildOnce) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  Registry registry;
  CounterFamily* family = *registry.AddCounter("c_total", "C.", {"shard"});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([family] {
      for (int i = 0; i < kPerThread; ++i) family->WithLabels({absl::StrCat(i % 8)}).Increment();
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::string expected = "# HELP c_total C.\n# TYPE c_total counter\n";
  for (int shard = 0; shard < 8; ++shard) {
    absl::StrAppend(&expected, "c_total{shard=\"", shard, "\"} ", kThreads * kPerThread / 8, "\n");
  }
  EXPECT_EQ(registry.Render(), expected);
}

}  // namespace
}  // namespace retrace::metrics
