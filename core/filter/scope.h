// scope.h — a mandatory filter: the part of a collection one caller may see and write (a
// tenant's token carries one, server/token_auth.h). Every read it makes is its own filter AND
// this scope, so a request can narrow it but never widen it; every item it writes must pass it.
//
// A scope that is one equality or an AND of equalities (`tenant = "acme" and region = "eu"`)
// names the values each item must hold: RequiredValues returns them, and a write sets them on
// items that lack them. Any other shape (`tenant in ("a", "b")`, a prefix) can only be checked.
//
// Thread-safety: pure functions on plain values.
//
//   std::optional<filter::Filter> effective = filter::Restrict(query.filter, call.scope.get());
//   if (auto values = filter::RequiredValues(*call.scope)) item.attributes.insert(...);
#ifndef RETRACE_CORE_FILTER_SCOPE_H_
#define RETRACE_CORE_FILTER_SCOPE_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "core/filter/filter.h"

namespace retrace::filter {

// Restrict returns `requested` AND `scope`: `requested` alone without a scope (null), the scope
// alone without a request filter, nullopt when there is neither. The scope is added as a
// sibling, so a request filter that passed Validate keeps its own paths in messages.
std::optional<Filter> Restrict(const std::optional<Filter>& requested, const Filter* scope);

// RequiredValues: for a filter that is an equality (`key = "value"`), or an AND (at any depth)
// of equalities only, the key → value map an item must hold to pass it; nullopt for any other
// shape, and for one that asks two values of the same key (no item passes it).
std::optional<std::map<std::string, std::string>> RequiredValues(const Filter& filter);

// ApplyScope makes an item to be written fit `scope`: for a scope of equalities
// (RequiredValues) it sets each required attribute the item lacks, and answers
// PERMISSION_DENIED naming "attributes.<key>" when the item sets one to another value; for any
// other shape it answers PERMISSION_DENIED when the attributes fail the scope. `attributes` is
// changed only on success.
absl::Status ApplyScope(const Filter& scope, std::map<std::string, std::string>& attributes);

}  // namespace retrace::filter

#endif  // RETRACE_CORE_FILTER_SCOPE_H_
