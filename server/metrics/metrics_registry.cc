#include "server/metrics/metrics_registry.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace retrace::metrics {
namespace {

// AtomicAdd adds `delta` to `target`; C++17 has no fetch_add for atomic<double>.
void AtomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

bool IsValidMetricName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || absl::StartsWith(name, "__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

absl::Status ValidateNames(absl::string_view name, const std::vector<std::string>& label_names,
                           bool histogram) {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metric name \"", name, "\" is not valid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& label = label_names[i];
    if (!IsValidLabelName(label)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", name, ": label name \"", label,
                       "\" is not valid: it must match [a-zA-Z_][a-zA-Z0-9_]* and not start "
                       "with \"__\""));
    }
    if (histogram && label == "le") {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", name, ": a histogram cannot have a label named \"le\""));
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == label) {
        return absl::InvalidArgumentError(
            absl::StrCat("metric ", name, ": label name \"", label, "\" appears twice"));
      }
    }
  }
  return absl::OkStatus();
}

// ValidateBounds drops a final +Inf (the +Inf bucket is implicit) and checks the rest.
absl::Status ValidateBounds(absl::string_view name, std::vector<double>& bounds) {
  if (!bounds.empty() && bounds.back() == HUGE_VAL) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat("histogram ", name, ": bucket bound ",
                                                     FormatValue(bounds[i]), " is not finite"));
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram ", name, ": bucket bounds must be strictly increasing, but ",
                       FormatValue(bounds[i]), " follows ", FormatValue(bounds[i - 1])));
    }
  }
  return absl::OkStatus();
}

std::string EscapeLabelValue(absl::string_view value) {
  return absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

// AppendSample appends `name{labels} value\n`; `labels` is the text inside the braces.
void AppendSample(absl::string_view name, absl::string_view labels, double value,
                  std::string* out) {
  if (labels.empty()) {
    absl::StrAppend(out, name, " ", FormatValue(value), "\n");
  } else {
    absl::StrAppend(out, name, "{", labels, "} ", FormatValue(value), "\n");
  }
}

// CallbackGaugeFamily is a gauge whose samples a callback supplies at each render.
class CallbackGaugeFamily final : public internal::FamilyBase {
 public:
  CallbackGaugeFamily(std::string name, std::string help, std::vector<std::string> label_names,
                      std::function<std::vector<GaugeSample>()> callback)
      : FamilyBase(std::move(name), std::move(help), std::move(label_names)),
        callback_(std::move(callback)) {}

  void Render(std::string* out) const override {
    RenderHeader("gauge", out);
    std::vector<GaugeSample> samples = callback_();
    std::stable_sort(samples.begin(), samples.end(),
                     [](const GaugeSample& a, const GaugeSample& b) {
                       return internal::LabelsLess()(a.label_values, b.label_values);
                     });
    for (const GaugeSample& sample : samples) {
      if (sample.label_values.size() != label_names().size()) continue;  // documented
      AppendSample(name(), LabelText(sample.label_values), sample.value, out);
    }
  }

 private:
  const std::function<std::vector<GaugeSample>()> callback_;
};

}  // namespace

// --- Metric kinds ---------------------------------------------------------------------------

void Counter::Increment(double amount) {
  if (!(amount >= 0)) return;  // negative or NaN
  AtomicAdd(value_, amount);
}

void Gauge::Add(double delta) { AtomicAdd(value_, delta); }

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(*bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // The first bound >= value: bounds are inclusive upper limits ("le").
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    counts[i] = total;
  }
  return counts;
}

// --- Families -------------------------------------------------------------------------------

namespace internal {

void FamilyBase::RenderHeader(absl::string_view type, std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ",
                  absl::StrReplaceAll(help_, {{"\\", "\\\\"}, {"\n", "\\n"}}), "\n");
  absl::StrAppend(out, "# TYPE ", name_, " ", type, "\n");
}

std::string FamilyBase::LabelText(absl::Span<const std::string> values) const {
  std::string text;
  for (size_t i = 0; i < values.size(); ++i) {
    absl::StrAppend(&text, i == 0 ? "" : ",", label_names_[i], "=\"", EscapeLabelValue(values[i]),
                    "\"");
  }
  return text;
}

}  // namespace internal

template <typename T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds)
    : FamilyBase(std::move(name), std::move(help), std::move(label_names)),
      bounds_(std::move(bounds)) {}

template <typename T>
T& Family<T>::WithLabels(absl::Span<const std::string> values) {
  absl::InlinedVector<absl::string_view, 4> views(values.begin(), values.end());
  return Child(views);
}

template <typename T>
T& Family<T>::Child(absl::Span<const absl::string_view> values) {
  if (values.size() != label_names().size()) {
    // A programming error in the calling code, like a failed CHECK.
    std::fprintf(stderr,
                 "retrace::metrics: metric %s has %zu label names (%s) but was given %zu label "
                 "values\n",
                 name().c_str(), label_names().size(), absl::StrJoin(label_names(), ", ").c_str(),
                 values.size());
    std::abort();
  }
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = children_.find(values);
    if (it != children_.end()) return it->second.metric;
  }
  absl::MutexLock lock(&mu_);
  auto it = children_.find(values);  // another thread may have created it meanwhile
  if (it == children_.end()) {
    std::vector<std::string> key(values.begin(), values.end());
    std::string label_text = LabelText(key);
    if constexpr (std::is_same_v<T, Histogram>) {
      it = children_.try_emplace(std::move(key), std::move(label_text), &bounds_).first;
    } else {
      it = children_.try_emplace(std::move(key), std::move(label_text)).first;
    }
  }
  return it->second.metric;
}

template <typename T>
void Family<T>::Render(std::string* out) const {
  absl::ReaderMutexLock lock(&mu_);
  if constexpr (std::is_same_v<T, Histogram>) {
    RenderHeader("histogram", out);
    const std::string bucket_name = absl::StrCat(name(), "_bucket");
    const std::string sum_name = absl::StrCat(name(), "_sum");
    const std::string count_name = absl::StrCat(name(), "_count");
    for (const auto& [values, entry] : children_) {
      const std::vector<uint64_t> counts = entry.metric.CumulativeCounts();
      const std::string prefix = entry.label_text.empty() ? "" : entry.label_text + ",";
      for (size_t i = 0; i < counts.size(); ++i) {
        const std::string le = i < bounds_.size() ? FormatValue(bounds_[i]) : "+Inf";
        AppendSample(bucket_name, absl::StrCat(prefix, "le=\"", le, "\""),
                     static_cast<double>(counts[i]), out);
      }
      AppendSample(sum_name, entry.label_text, entry.metric.Sum(), out);
      AppendSample(count_name, entry.label_text, static_cast<double>(counts.back()), out);
    }
  } else {
    RenderHeader(std::is_same_v<T, Counter> ? "counter" : "gauge", out);
    for (const auto& [values, entry] : children_) {
      AppendSample(name(), entry.label_text, entry.metric.Value(), out);
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// --- Registry -------------------------------------------------------------------------------

template <typename F>
absl::StatusOr<F*> Registry::Register(std::unique_ptr<F> family, std::vector<std::string> series) {
  absl::MutexLock lock(&mu_);
  for (const std::string& s : series) {
    if (series_names_.contains(s)) {
      return absl::AlreadyExistsError(
          absl::StrCat("metric ", family->name(), ": the name ", s, " is already registered"));
    }
  }
  series_names_.insert(series.begin(), series.end());
  F* raw = family.get();
  families_.push_back(std::move(family));
  return raw;
}

absl::StatusOr<CounterFamily*> Registry::AddCounter(std::string name, std::string help,
                                                    std::vector<std::string> label_names) {
  if (absl::Status s = ValidateNames(name, label_names, false); !s.ok()) return s;
  std::vector<std::string> series = {name};
  std::unique_ptr<CounterFamily> family(
      new CounterFamily(std::move(name), std::move(help), std::move(label_names), {}));
  if (family->label_names().empty()) family->WithLabels({});
  return Register(std::move(family), std::move(series));
}

absl::StatusOr<GaugeFamily*> Registry::AddGauge(std::string name, std::string help,
                                                std::vector<std::string> label_names) {
  if (absl::Status s = ValidateNames(name, label_names, false); !s.ok()) return s;
  std::vector<std::string> series = {name};
  std::unique_ptr<GaugeFamily> family(
      new GaugeFamily(std::move(name), std::move(help), std::move(label_names), {}));
  if (family->label_names().empty()) family->WithLabels({});
  return Register(std::move(family), std::move(series));
}

absl::StatusOr<HistogramFamily*> Registry::AddHistogram(std::string name, std::string help,
                                                        std::vector<std::string> label_names,
                                                        std::vector<double> bounds) {
  if (absl::Status s = ValidateNames(name, label_names, true); !s.ok()) return s;
  if (absl::Status s = ValidateBounds(name, bounds); !s.ok()) return s;
  std::vector<std::string> series = {name, name + "_bucket", name + "_sum", name + "_count"};
  std::unique_ptr<HistogramFamily> family(new HistogramFamily(
      std::move(name), std::move(help), std::move(label_names), std::move(bounds)));
  if (family->label_names().empty()) family->WithLabels({});
  return Register(std::move(family), std::move(series));
}

absl::Status Registry::AddCallbackGauge(std::string name, std::string help,
                                        std::vector<std::string> label_names,
                                        std::function<std::vector<GaugeSample>()> callback) {
  if (absl::Status s = ValidateNames(name, label_names, false); !s.ok()) return s;
  std::vector<std::string> series = {name};
  auto family = std::make_unique<CallbackGaugeFamily>(std::move(name), std::move(help),
                                                      std::move(label_names), std::move(callback));
  return Register(std::move(family), std::move(series)).status();
}

absl::Status Registry::AddCallbackGauge(std::string name, std::string help,
                                        std::function<double()> callback) {
  return AddCallbackGauge(std::move(name), std::move(help), {}, [callback = std::move(callback)] {
    return std::vector<GaugeSample>{{{}, callback()}};
  });
}

std::string Registry::Render() const {
  // Families are never removed, so the pointers stay valid after the lock is released; rendering
  // without it lets a callback take its own locks in any order.
  std::vector<const internal::FamilyBase*> families;
  {
    absl::ReaderMutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& family : families_) families.push_back(family.get());
  }
  std::string out;
  for (const internal::FamilyBase* family : families) family->Render(&out);
  return out;
}

// --- Helpers --------------------------------------------------------------------------------

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

std::vector<double> LatencyBucketsSeconds() { return ExponentialBuckets(0.0005, 2, 17); }

std::vector<double> BatchSizeBuckets() { return ExponentialBuckets(1, 2, 9); }

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Integral values print as integers ("1000000", not "1e+06"); from 1e15 on, the shortest exact
  // form ("1e+15") reads better than sixteen digits.
  if (std::fabs(value) < 1e15 && value == std::trunc(value)) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buffer[64];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::general);
  return std::string(buffer, result.ptr);
}

}  // namespace retrace::metrics
