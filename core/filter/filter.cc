#include "core/filter/filter.h"

#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "core/common/utf8.h"

namespace retrace::filter {
namespace {

bool Within(double x, const Condition& c) {
  if (c.lower.has_value() && (c.lower->inclusive ? x < c.lower->value : x <= c.lower->value)) {
    return false;
  }
  if (c.upper.has_value() && (c.upper->inclusive ? x > c.upper->value : x >= c.upper->value)) {
    return false;
  }
  return true;
}

bool Holds(const Condition& c, const ItemView& item) {
  if (c.subject != Condition::Subject::kAttribute) {
    const int64_t ms = c.subject == Condition::Subject::kCreated ? item.created_ms
                                                                 : item.updated_ms;
    return c.op == Condition::Op::kRange && Within(static_cast<double>(ms), c);
  }
  const std::map<std::string, std::string>& attributes = item.attributes;
  auto it = attributes.find(c.attribute);
  if (c.op == Condition::Op::kExists) return (it != attributes.end()) == c.exists;
  if (it == attributes.end()) return false;
  const std::string& value = it->second;
  switch (c.op) {
    case Condition::Op::kEquals:
      return !c.values.empty() && value == c.values[0];
    case Condition::Op::kIn:
      for (const std::string& v : c.values) {
        if (value == v) return true;
      }
      return false;
    case Condition::Op::kPrefix:
      return !c.values.empty() && absl::StartsWith(value, c.values[0]);
    case Condition::Op::kRange: {
      double x;
      // Decimal only: strtod would also read hexadecimal ("0x10").
      if (value.find_first_of("xX") != std::string::npos) return false;
      return absl::SimpleAtod(value, &x) && std::isfinite(x) && Within(x, c);
    }
    case Condition::Op::kExists:
      break;
  }
  return false;
}

struct Checker {
  const FilterLimits& limits;
  int terms = 0;

  absl::Status Error(const std::string& path, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", why));
  }
  absl::Status String(const std::string& path, const std::string& s, size_t max,
                      bool may_be_empty) {
    if (!may_be_empty && s.empty()) return Error(path, "must not be empty");
    if (s.size() > max) {
      return Error(path, absl::StrCat(s.size(), " bytes; at most ", max, " allowed"));
    }
    if (!IsValidUtf8(s)) return Error(path, "must be valid UTF-8");
    return absl::OkStatus();
  }
  absl::Status Node(const Filter& f, const std::string& path, int depth) {
    if (depth > limits.max_depth) {
      return Error(path, absl::StrCat("nested deeper than ", limits.max_depth, " levels"));
    }
    if (++terms > limits.max_terms) {
      return Error(path, absl::StrCat("the filter has more than ", limits.max_terms,
                                      " terms (conditions, groups and set values)"));
    }
    switch (f.kind) {
      case Filter::Kind::kCondition:
        if (f.condition.subject != Condition::Subject::kAttribute) {
          return TimeOk(f.condition, absl::StrCat(path, ".time"));
        }
        return ConditionOk(f.condition, absl::StrCat(path, ".condition"));
      case Filter::Kind::kNot:
        if (f.children.size() != 1) return Error(path + ".negate", "needs exactly one filter");
        return Node(f.children[0], path + ".negate", depth + 1);
      case Filter::Kind::kAll:
      case Filter::Kind::kAny: {
        const std::string group =
            absl::StrCat(path, f.kind == Filter::Kind::kAll ? ".all" : ".any", ".filters");
        if (f.children.empty()) return Error(group, "must hold at least one filter");
        for (size_t i = 0; i < f.children.size(); ++i) {
          absl::Status s = Node(f.children[i], absl::StrCat(group, "[", i, "]"), depth + 1);
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      }
    }
    return Error(path, "unknown kind");
  }
  absl::Status TimeOk(const Condition& c, const std::string& path) {
    if (c.op != Condition::Op::kRange) return Error(path, "a time takes only a range");
    return RangeOk(c, path);
  }
  absl::Status RangeOk(const Condition& c, const std::string& path) {
    if (!c.lower.has_value() && !c.upper.has_value()) {
      return Error(path + ".range", "needs a lower or an upper bound");
    }
    if (c.lower.has_value() && !std::isfinite(c.lower->value)) {
      return Error(path + (c.lower->inclusive ? ".range.gte" : ".range.gt"),
                   "must be a finite number");
    }
    if (c.upper.has_value() && !std::isfinite(c.upper->value)) {
      return Error(path + (c.upper->inclusive ? ".range.lte" : ".range.lt"),
                   "must be a finite number");
    }
    return absl::OkStatus();
  }
  absl::Status ConditionOk(const Condition& c, const std::string& path) {
    absl::Status s = String(path + ".attribute", c.attribute, limits.max_key_bytes, false);
    if (!s.ok()) return s;
    switch (c.op) {
      case Condition::Op::kEquals:
      case Condition::Op::kPrefix: {
        const std::string field =
            path + (c.op == Condition::Op::kEquals ? ".equals" : ".prefix");
        if (c.values.size() != 1) return Error(field, "needs exactly one value");
        return String(field, c.values[0], limits.max_value_bytes, true);
      }
      case Condition::Op::kIn:
        if (c.values.empty()) return Error(path + ".in.values", "must hold at least one value");
        for (size_t i = 0; i < c.values.size(); ++i) {
          const std::string field = absl::StrCat(path, ".in.values[", i, "]");
          if (++terms > limits.max_terms) {
            return Error(field, absl::StrCat("the filter has more than ", limits.max_terms,
                                             " terms (conditions, groups and set values)"));
          }
          s = String(field, c.values[i], limits.max_value_bytes, true);
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      case Condition::Op::kExists:
        return absl::OkStatus();
      case Condition::Op::kRange:
        return RangeOk(c, path);
    }
    return Error(path, "unknown operator");
  }
};

}  // namespace

Filter Filter::Equals(std::string attribute, std::string value) {
  Filter f;
  f.condition.attribute = std::move(attribute);
  f.condition.op = Condition::Op::kEquals;
  f.condition.values = {std::move(value)};
  return f;
}
Filter Filter::In(std::string attribute, std::vector<std::string> values) {
  Filter f;
  f.condition.attribute = std::move(attribute);
  f.condition.op = Condition::Op::kIn;
  f.condition.values = std::move(values);
  return f;
}
Filter Filter::Exists(std::string attribute, bool exists) {
  Filter f;
  f.condition.attribute = std::move(attribute);
  f.condition.op = Condition::Op::kExists;
  f.condition.exists = exists;
  return f;
}
Filter Filter::Prefix(std::string attribute, std::string prefix) {
  Filter f;
  f.condition.attribute = std::move(attribute);
  f.condition.op = Condition::Op::kPrefix;
  f.condition.values = {std::move(prefix)};
  return f;
}
Filter Filter::Range(std::string attribute, std::optional<Bound> lower,
                     std::optional<Bound> upper) {
  Filter f;
  f.condition.attribute = std::move(attribute);
  f.condition.op = Condition::Op::kRange;
  f.condition.lower = lower;
  f.condition.upper = upper;
  return f;
}
Filter Filter::Time(Condition::Subject time, std::optional<Bound> lower,
                    std::optional<Bound> upper) {
  Filter f = Range("", lower, upper);
  f.condition.subject = time;
  return f;
}
Filter Filter::All(std::vector<Filter> children) {
  Filter f;
  f.kind = Kind::kAll;
  f.children = std::move(children);
  return f;
}
Filter Filter::Any(std::vector<Filter> children) {
  Filter f;
  f.kind = Kind::kAny;
  f.children = std::move(children);
  return f;
}
Filter Filter::Not(Filter child) {
  Filter f;
  f.kind = Kind::kNot;
  f.children.push_back(std::move(child));
  return f;
}

absl::Status Validate(const Filter& filter, const FilterLimits& limits, const std::string& path) {
  Checker checker{limits};
  return checker.Node(filter, path, 1);
}

bool Evaluate(const Filter& filter, const ItemView& item) {
  switch (filter.kind) {
    case Filter::Kind::kCondition:
      return Holds(filter.condition, item);
    case Filter::Kind::kNot:
      return filter.children.size() == 1 && !Evaluate(filter.children[0], item);
    case Filter::Kind::kAll:
      for (const Filter& child : filter.children) {
        if (!Evaluate(child, item)) return false;
      }
      return true;
    case Filter::Kind::kAny:
      for (const Filter& child : filter.children) {
        if (Evaluate(child, item)) return true;
      }
      return false;
  }
  return false;
}

bool operator==(const Bound& a, const Bound& b) {
  return a.value == b.value && a.inclusive == b.inclusive;
}
bool operator==(const Condition& a, const Condition& b) {
  return a.subject == b.subject && a.attribute == b.attribute && a.op == b.op &&
         a.values == b.values && a.exists == b.exists && a.lower == b.lower && a.upper == b.upper;
}
bool operator==(const Filter& a, const Filter& b) {
  return a.kind == b.kind && a.children == b.children &&
         (a.kind != Filter::Kind::kCondition || a.condition == b.condition);
}

}  // namespace retrace::filter
