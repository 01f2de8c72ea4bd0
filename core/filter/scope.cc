#include "core/filter/scope.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace retrace::filter {
namespace {

// CollectEquals adds `filter`'s equalities to `values`; false when it holds anything else or
// asks two values of one key.
bool CollectEquals(const Filter& filter, std::map<std::string, std::string>& values) {
  if (filter.kind == Filter::Kind::kAll) {
    for (const Filter& child : filter.children) {
      if (!CollectEquals(child, values)) return false;
    }
    return !filter.children.empty();
  }
  if (filter.kind != Filter::Kind::kCondition) return false;
  const Condition& c = filter.condition;
  if (c.op != Condition::Op::kEquals || c.values.size() != 1) return false;
  auto [it, inserted] = values.emplace(c.attribute, c.values[0]);
  return inserted || it->second == c.values[0];
}

}  // namespace

std::optional<Filter> Restrict(const std::optional<Filter>& requested, const Filter* scope) {
  if (scope == nullptr) return requested;
  if (!requested.has_value()) return *scope;
  return Filter::All({*requested, *scope});
}

std::optional<std::map<std::string, std::string>> RequiredValues(const Filter& filter) {
  std::map<std::string, std::string> values;
  if (!CollectEquals(filter, values)) return std::nullopt;
  return values;
}

absl::Status ApplyScope(const Filter& scope, std::map<std::string, std::string>& attributes) {
  const std::optional<std::map<std::string, std::string>> required = RequiredValues(scope);
  if (!required.has_value()) {
    // A new version: its times are not known yet (a scope on times cannot admit it).
    if (Evaluate(scope, ItemView{attributes})) return absl::OkStatus();
    return absl::PermissionDeniedError(
        "attributes: the item does not pass this token's filter (every item it writes must)");
  }
  for (const auto& [key, value] : *required) {
    auto it = attributes.find(key);
    if (it != attributes.end() && it->second != value) {
      return absl::PermissionDeniedError(absl::StrCat(
          "attributes.", key, ": \"", it->second, "\" is not this token's value \"", value,
          "\" (leave it out and the server sets it)"));
    }
  }
  for (const auto& [key, value] : *required) attributes.emplace(key, value);
  return absl::OkStatus();
}

}  // namespace retrace::filter
