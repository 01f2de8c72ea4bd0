// filter.h — a condition on an item's attributes that a search (or a read) must satisfy: the
// Filter tree, its bounds, and its evaluation.
//
// A Filter is a condition on one attribute (equals, in a set, exists, prefix, or a numeric
// range) or on one of the item's store times (a range of milliseconds since the Unix epoch:
// when it was first stored, or when its current version was), or a group: all of its children
// (AND), any of them (OR), or the negation of one (NOT).
// It mirrors retrace.proto's Filter message field for field, so that a bound error can name the
// field as the API spells it ("filter.all.filters[2].condition.prefix: ..."). parse.h reads the
// CLI's text syntax into one.
//
// Semantics: string comparisons are byte-wise on UTF-8 (a valid UTF-8 prefix ends on a character
// boundary). A range holds for a value that parses as a finite decimal number (absl::SimpleAtod:
// "2020", "-1.5", "1e3") within its bounds; it is false, not an error, for a value that does not
// parse ("n/a") and for an absent attribute. Equals, in and prefix are false for an absent
// attribute; `exists: false` holds exactly when it is absent.
//
// Cost: Evaluate visits each node once; a Filter that passed Validate has at most
// FilterLimits::max_terms nodes plus set values, so one evaluation is bounded by that many
// attribute look-ups and string comparisons.
//
// Thread-safety: plain values; Evaluate and Validate are pure.
//
//   filter::Filter f = filter::Filter::All({filter::Filter::Equals("license", "cc-by"),
//                                           filter::Filter::Range("year", {2020, true}, {})});
//   if (filter::Evaluate(f, {item.attributes, item.created_ms, item.updated_ms})) ...
#ifndef RETRACE_CORE_FILTER_FILTER_H_
#define RETRACE_CORE_FILTER_FILTER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace retrace::filter {

// Bound is one end of a numeric range: value, and whether the value itself is inside.
struct Bound {
  double value = 0;
  bool inclusive = true;
};

// Condition tests one attribute, or one of the item's times.
struct Condition {
  enum class Op { kEquals, kIn, kExists, kPrefix, kRange };
  // Subject: what is tested. A time takes only kRange, in milliseconds since the Unix epoch
  // (retrace.proto's FilterTime), and has no attribute.
  enum class Subject { kAttribute, kCreated, kUpdated };
  Subject subject = Subject::kAttribute;
  std::string attribute;             // kAttribute: the attribute's key
  Op op = Op::kEquals;
  // kEquals, kPrefix: one value; kIn: the set (at least one).
  std::vector<std::string> values;
  bool exists = true;                // kExists: true, present; false, absent
  std::optional<Bound> lower, upper; // kRange: at least one is set
};

// Filter is a node of the tree; see the banner.
struct Filter {
  enum class Kind { kCondition, kAll, kAny, kNot };
  Kind kind = Kind::kCondition;
  Condition condition;            // kCondition
  std::vector<Filter> children;   // kAll, kAny: at least one; kNot: exactly one

  // Builders, for code and tests.
  static Filter Equals(std::string attribute, std::string value);
  static Filter In(std::string attribute, std::vector<std::string> values);
  static Filter Exists(std::string attribute, bool exists = true);
  static Filter Prefix(std::string attribute, std::string prefix);
  static Filter Range(std::string attribute, std::optional<Bound> lower,
                      std::optional<Bound> upper);
  // Time: a range on the item's created (or updated) time, milliseconds since the Unix epoch.
  static Filter Time(Condition::Subject time, std::optional<Bound> lower,
                     std::optional<Bound> upper);
  static Filter All(std::vector<Filter> children);
  static Filter Any(std::vector<Filter> children);
  static Filter Not(Filter child);
};

// FilterLimits bounds a Filter (ServerConfig.limits; defaults from core/engine/defaults.h).
struct FilterLimits {
  int max_terms = 0;           // nodes (conditions and groups) plus values of `in` sets
  int max_depth = 0;           // a condition alone is depth 1; each group adds one
  size_t max_key_bytes = 0;    // an attribute key
  size_t max_value_bytes = 0;  // a value, a prefix
};

// Validate checks `filter` against `limits` and its own shape. INVALID_ARGUMENT naming the field
// under `path` (the caller's name for the filter, e.g. "filter") as retrace.proto spells it:
// more than max_terms terms or max_depth levels, an empty group, a NOT without exactly one child,
// an empty or over-long key, an over-long or non-UTF-8 key or value, an `in` with no values, a
// range with no bound or a non-finite bound, a time condition that is not a range.
absl::Status Validate(const Filter& filter, const FilterLimits& limits,
                      const std::string& path = "filter");

// ItemView is what a filter is evaluated on: an item's attributes and its store times.
struct ItemView {
  const std::map<std::string, std::string>& attributes;
  int64_t created_ms = 0;  // when the item was first stored (ms since the Unix epoch)
  int64_t updated_ms = 0;  // when its current version was stored
};

// Evaluate reports whether `item` satisfies `filter`. REQUIRES: Validate passed (a malformed
// tree evaluates without crashing, but its meaning is unspecified).
bool Evaluate(const Filter& filter, const ItemView& item);

bool operator==(const Bound& a, const Bound& b);
bool operator==(const Condition& a, const Condition& b);
bool operator==(const Filter& a, const Filter& b);

}  // namespace retrace::filter

#endif  // RETRACE_CORE_FILTER_FILTER_H_
