#include "server/filter_convert.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace retrace::server {
namespace {

// RangeFromProto sets `out` to a range condition with `r`'s bounds.
absl::Status RangeFromProto(const v1::FilterRange& r, const std::string& path,
                            filter::Condition& out) {
  out.op = filter::Condition::Op::kRange;
  if (r.has_gt() && r.has_gte()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": set at most one of gt and gte"));
  }
  if (r.has_lt() && r.has_lte()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": set at most one of lt and lte"));
  }
  if (r.has_gt()) out.lower = filter::Bound{r.gt(), false};
  if (r.has_gte()) out.lower = filter::Bound{r.gte(), true};
  if (r.has_lt()) out.upper = filter::Bound{r.lt(), false};
  if (r.has_lte()) out.upper = filter::Bound{r.lte(), true};
  return absl::OkStatus();
}

void RangeToProto(const filter::Condition& c, v1::FilterRange* r) {
  if (c.lower.has_value()) {
    c.lower->inclusive ? r->set_gte(c.lower->value) : r->set_gt(c.lower->value);
  }
  if (c.upper.has_value()) {
    c.upper->inclusive ? r->set_lte(c.upper->value) : r->set_lt(c.upper->value);
  }
}

absl::StatusOr<filter::Condition> TimeFromProto(const v1::FilterTime& t, const std::string& path) {
  filter::Condition out;
  switch (t.field()) {
    case v1::FilterTime::CREATED: out.subject = filter::Condition::Subject::kCreated; break;
    case v1::FilterTime::UPDATED: out.subject = filter::Condition::Subject::kUpdated; break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(path, ".field: set CREATED or UPDATED"));
  }
  absl::Status s = RangeFromProto(t.range(), path + ".range", out);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<filter::Condition> ConditionFromProto(const v1::FilterCondition& c,
                                                     const std::string& path) {
  filter::Condition out;
  out.attribute = c.attribute();
  switch (c.test_case()) {
    case v1::FilterCondition::kEquals:
      out.op = filter::Condition::Op::kEquals;
      out.values = {c.equals()};
      break;
    case v1::FilterCondition::kIn:
      out.op = filter::Condition::Op::kIn;
      out.values.assign(c.in().values().begin(), c.in().values().end());
      break;
    case v1::FilterCondition::kExists:
      out.op = filter::Condition::Op::kExists;
      out.exists = c.exists();
      break;
    case v1::FilterCondition::kPrefix:
      out.op = filter::Condition::Op::kPrefix;
      out.values = {c.prefix()};
      break;
    case v1::FilterCondition::kRange: {
      absl::Status s = RangeFromProto(c.range(), path + ".range", out);
      if (!s.ok()) return s;
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": set one of equals, in, exists, prefix or range"));
  }
  return out;
}

}  // namespace

absl::StatusOr<filter::Filter> FilterFromProto(const v1::Filter& proto, const std::string& path) {
  filter::Filter out;
  switch (proto.kind_case()) {
    case v1::Filter::kCondition: {
      absl::StatusOr<filter::Condition> c =
          ConditionFromProto(proto.condition(), path + ".condition");
      if (!c.ok()) return c.status();
      out.condition = *std::move(c);
      return out;
    }
    case v1::Filter::kTime: {
      absl::StatusOr<filter::Condition> c = TimeFromProto(proto.time(), path + ".time");
      if (!c.ok()) return c.status();
      out.condition = *std::move(c);
      return out;
    }
    case v1::Filter::kNegate: {
      out.kind = filter::Filter::Kind::kNot;
      absl::StatusOr<filter::Filter> child = FilterFromProto(proto.negate(), path + ".negate");
      if (!child.ok()) return child;
      out.children.push_back(*std::move(child));
      return out;
    }
    case v1::Filter::kAll:
    case v1::Filter::kAny: {
      const bool all = proto.kind_case() == v1::Filter::kAll;
      out.kind = all ? filter::Filter::Kind::kAll : filter::Filter::Kind::kAny;
      const v1::FilterList& list = all ? proto.all() : proto.any();
      const std::string group = absl::StrCat(path, all ? ".all" : ".any", ".filters");
      out.children.reserve(list.filters_size());
      for (int i = 0; i < list.filters_size(); ++i) {
        absl::StatusOr<filter::Filter> child =
            FilterFromProto(list.filters(i), absl::StrCat(group, "[", i, "]"));
        if (!child.ok()) return child;
        out.children.push_back(*std::move(child));
      }
      return out;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": set one of condition, time, all, any or negate"));
  }
}

void FilterToProto(const filter::Filter& f, v1::Filter* out) {
  out->Clear();
  switch (f.kind) {
    case filter::Filter::Kind::kCondition: {
      const filter::Condition& c = f.condition;
      if (c.subject != filter::Condition::Subject::kAttribute) {
        v1::FilterTime* t = out->mutable_time();
        t->set_field(c.subject == filter::Condition::Subject::kCreated ? v1::FilterTime::CREATED
                                                                       : v1::FilterTime::UPDATED);
        RangeToProto(c, t->mutable_range());
        return;
      }
      v1::FilterCondition* pc = out->mutable_condition();
      pc->set_attribute(c.attribute);
      const std::string first = c.values.empty() ? "" : c.values[0];
      switch (c.op) {
        case filter::Condition::Op::kEquals: pc->set_equals(first); break;
        case filter::Condition::Op::kPrefix: pc->set_prefix(first); break;
        case filter::Condition::Op::kExists: pc->set_exists(c.exists); break;
        case filter::Condition::Op::kIn:
          for (const std::string& v : c.values) pc->mutable_in()->add_values(v);
          break;
        case filter::Condition::Op::kRange:
          RangeToProto(c, pc->mutable_range());
          break;
      }
      return;
    }
    case filter::Filter::Kind::kNot:
      if (!f.children.empty()) FilterToProto(f.children[0], out->mutable_negate());
      return;
    case filter::Filter::Kind::kAll:
    case filter::Filter::Kind::kAny: {
      v1::FilterList* list =
          f.kind == filter::Filter::Kind::kAll ? out->mutable_all() : out->mutable_any();
      for (const filter::Filter& child : f.children) FilterToProto(child, list->add_filters());
      return;
    }
  }
}

}  // namespace retrace::server
