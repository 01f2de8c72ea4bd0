// metrics_registry.h — a small Prometheus client: counters, gauges and histograms with labels,
// rendered in the text exposition format 0.0.4.
//
// A Registry owns metric families. A family has a name, help text and label names; each set of
// label values is one child (a Counter, Gauge or Histogram) created on first use and kept for
// the registry's lifetime, so hot paths look a child up once and keep the reference. Updating a
// child is lock-free (atomics); only creating a child takes the family's mutex. Callback gauges
// are computed when the registry is rendered (queue depths, items per collection).
//
// Thread-safety: everything here is safe for concurrent use. Registration and Render may race
// with updates; a render sees each value at some moment during the render (a histogram's
// buckets and sum are not a single snapshot, but its _count always equals its +Inf bucket).
//
//   RETRACE_ASSIGN_OR_RETURN(CounterFamily* rpcs,
//       registry.AddCounter("retrace_rpcs_total", "RPCs handled.", {"method", "code"}));
//   rpcs->WithLabels({"Search", "OK"}).Increment();  // keep the Counter& on hot paths
#ifndef RETRACE_SERVER_METRICS_METRICS_REGISTRY_H_
#define RETRACE_SERVER_METRICS_METRICS_REGISTRY_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace retrace::metrics {

// Counter is a monotonic total (requests, errors, items indexed).
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Increment adds `amount` (integer or fractional). A negative or NaN amount is ignored: a
  // counter never goes down, and Prometheus would read a decrease as a restart.
  void Increment(double amount = 1.0);

  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Gauge is a value that goes up and down (in-flight requests, loaded models).
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  // Add adds `delta`, which may be negative.
  void Add(double delta);

  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Histogram counts observations into buckets with fixed upper bounds (inclusive: a value equal
// to a bound counts in that bound's bucket) plus +Inf, and keeps their sum.
class Histogram {
 public:
  // Histogram uses `bounds` (strictly increasing, no +Inf), which must outlive it; the family
  // owns them.
  explicit Histogram(const std::vector<double>* bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Observe records `value`. NaN is ignored: it would turn the sum into NaN for good.
  void Observe(double value);

  // CumulativeCounts returns, for each bound and then +Inf, how many observations were <= it.
  std::vector<uint64_t> CumulativeCounts() const;
  uint64_t Count() const { return CumulativeCounts().back(); }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double>& bounds_;
  // Per bucket (not cumulative), bounds_.size() + 1 of them; the last is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0.0};
};

namespace internal {

// FamilyBase is what the registry renders; the families below implement it.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Render appends the family's # HELP and # TYPE lines and its samples to `out`.
  virtual void Render(std::string* out) const = 0;

 protected:
  void RenderHeader(absl::string_view type, std::string* out) const;
  // LabelText renders `values` as `name="value",...` (escaped, no braces).
  std::string LabelText(absl::Span<const std::string> values) const;

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
};

// LabelsLess orders label-value lists lexicographically and lets a map be searched with views.
struct LabelsLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(),
        [](absl::string_view x, absl::string_view y) { return x < y; });
  }
};

}  // namespace internal

// Family is a named metric with label names; each set of label values is one child of type T
// (Counter, Gauge or Histogram). Created by Registry; lives as long as the registry.
template <typename T>
class Family final : public internal::FamilyBase {
 public:
  // WithLabels returns the child for `values` (one per label name, in order), creating it on
  // first use. The reference stays valid for the registry's lifetime: look it up once on hot
  // paths. A family without labels takes `WithLabels({})`.
  //
  // REQUIRES: values.size() == label_names().size(). A mismatch is a programming error (the
  // count is fixed in the calling code): the process prints the metric's name and aborts,
  // as CHECK would, rather than record the sample under the wrong labels.
  T& WithLabels(std::initializer_list<absl::string_view> values) {
    return Child(absl::MakeConstSpan(values.begin(), values.size()));
  }
  T& WithLabels(absl::Span<const std::string> values);

  void Render(std::string* out) const override;

 private:
  friend class Registry;
  struct Entry {
    template <typename... Args>
    Entry(std::string label_text, Args&&... args)
        : label_text(std::move(label_text)), metric(std::forward<Args>(args)...) {}
    const std::string label_text;  // rendered once, when the child is created
    T metric;
  };

  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds);
  T& Child(absl::Span<const absl::string_view> values);

  const std::vector<double> bounds_;  // histograms only
  mutable absl::Mutex mu_;
  // Sorted by label values, so renders are deterministic; map nodes never move.
  std::map<std::vector<std::string>, Entry, internal::LabelsLess> children_ ABSL_GUARDED_BY(mu_);
};

// Defined in metrics_registry.cc for these three kinds only.
extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// GaugeSample is one value of a callback gauge: its label values (one per label name) and value.
struct GaugeSample {
  std::vector<std::string> label_values;
  double value = 0.0;
};

// Registry holds metric families in registration order and renders them for a scrape.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // AddCounter, AddGauge and AddHistogram register a family and return it; the pointer stays
  // valid for the registry's lifetime. A family without labels starts with its one child, so
  // it is rendered (as 0) before its first update.
  //
  // Errors: InvalidArgument when the name does not match [a-zA-Z_:][a-zA-Z0-9_:]*, a label name
  // does not match [a-zA-Z_][a-zA-Z0-9_]*, starts with "__" or repeats, or (histograms) is "le",
  // or the bounds are not strictly increasing; AlreadyExists when a name is taken, including
  // the _bucket/_sum/_count series a histogram adds.
  absl::StatusOr<CounterFamily*> AddCounter(std::string name, std::string help,
                                            std::vector<std::string> label_names = {});
  absl::StatusOr<GaugeFamily*> AddGauge(std::string name, std::string help,
                                        std::vector<std::string> label_names = {});
  // AddHistogram takes the buckets' upper bounds (e.g. LatencyBucketsSeconds()); a final +Inf
  // may be given or left out, the +Inf bucket is always there.
  absl::StatusOr<HistogramFamily*> AddHistogram(std::string name, std::string help,
                                                std::vector<std::string> label_names,
                                                std::vector<double> bounds);

  // AddCallbackGauge registers a gauge whose samples `callback` returns at each Render, e.g.
  // one per collection. The callback runs on the rendering thread (the HTTP server's), with no
  // registry lock held; it must be thread-safe and everything it uses must outlive the last
  // Render. Samples come out sorted by label values; a sample whose label-value count does not
  // match the label names is left out. Errors as for AddGauge.
  absl::Status AddCallbackGauge(std::string name, std::string help,
                                std::vector<std::string> label_names,
                                std::function<std::vector<GaugeSample>()> callback);
  // AddCallbackGauge, unlabeled form: one value, e.g. a queue's depth.
  absl::Status AddCallbackGauge(std::string name, std::string help,
                                std::function<double()> callback);

  // Render returns every family in the Prometheus text format 0.0.4, in registration order.
  std::string Render() const;

 private:
  // Register validates `family` and takes ownership, returning it.
  template <typename F>
  absl::StatusOr<F*> Register(std::unique_ptr<F> family, std::vector<std::string> series);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<internal::FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
  // Every sample name in use (a histogram's _bucket, _sum and _count included).
  absl::flat_hash_set<std::string> series_names_ ABSL_GUARDED_BY(mu_);
};

// ExponentialBuckets returns `count` bounds: start, start*factor, start*factor^2, ...
// REQUIRES: start > 0, factor > 1 (else AddHistogram rejects the bounds).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// LatencyBucketsSeconds returns 0.5 ms to 32.768 s, doubling (17 bounds): latencies are in
// seconds, as Prometheus names them (`_seconds`).
std::vector<double> LatencyBucketsSeconds();

// BatchSizeBuckets returns 1, 2, 4, ..., 256.
std::vector<double> BatchSizeBuckets();

// FormatValue renders `value` as the exposition format writes numbers: integral values without
// exponent ("42"), others in the shortest form that reads back exactly ("0.25", "1e-07"),
// and "+Inf", "-Inf", "NaN".
std::string FormatValue(double value);

}  // namespace retrace::metrics

#endif  // RETRACE_SERVER_METRICS_METRICS_REGISTRY_H_
