// token_auth.h — bearer-token authentication and scope/collection authorization.
//
// Tokens come from an AuthTokens file (config.proto) that lists each token's SHA-256, never the
// token, with its holder's name, its scopes and optionally the collections it may use. A call
// presents `authorization: Bearer <token>`; Authenticate hashes the token and finds its entry,
// Authorize checks the scope an RPC needs and the collection it names. With no file every call is
// allowed as the anonymous principal. Messages name the holder, never the token.
//
// A token may carry a filter (a tenant's: `tenant = "acme"`), parsed at load; the gate hands it
// to the engine as each call's CallOptions.scope, which ANDs it into every read and checks every
// write (engine_types.h).
//
// Thread-safety: immutable after Load; safe for concurrent use.
//
//   RETRACE_ASSIGN_OR_RETURN(auto auth, TokenAuthorizer::Load(path, filter_limits));
//   RETRACE_ASSIGN_OR_RETURN(Principal who, auth->Authenticate(authorization_header));
//   RETRACE_RETURN_IF_ERROR(auth->Authorize(who, Scope::kSearch, "art"));
#ifndef RETRACE_SERVER_TOKEN_AUTH_H_
#define RETRACE_SERVER_TOKEN_AUTH_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/filter/filter.h"

namespace retrace::server {

// Scope: what an RPC needs. kAdmin implies the other two.
enum class Scope { kSearch, kIndex, kAdmin };

const char* ScopeName(Scope scope);

// Principal: who is calling. `name` is safe to log.
struct Principal {
  std::string name;  // "anonymous" when authentication is off
  std::set<Scope> scopes;
  std::set<std::string> collections;  // empty: all
  // The token's mandatory filter (AuthToken.filter), validated; null: none.
  std::shared_ptr<const filter::Filter> filter;
};

class TokenAuthorizer {
 public:
  // Disabled: every call is allowed as "anonymous".
  static std::unique_ptr<TokenAuthorizer> Disabled();
  // Load reads an AuthTokens text file; a token's filter is parsed (core/filter/parse.h) within
  // `limits`. NOT_FOUND if missing; INVALID_ARGUMENT naming the entry and field for a malformed,
  // duplicate or empty file, and for a filter that does not parse (with the parser's message,
  // which names the token and column) or is over a bound.
  static absl::StatusOr<std::unique_ptr<TokenAuthorizer>> Load(const std::string& path,
                                                               const filter::FilterLimits& limits);

  bool enabled() const { return enabled_; }
  size_t size() const { return by_hash_.size(); }

  // Authenticate: `authorization` is the metadata value (empty when absent). UNAUTHENTICATED
  // when it is missing, not a bearer token, or unknown.
  absl::StatusOr<Principal> Authenticate(std::string_view authorization) const;

  // Authorize: PERMISSION_DENIED when `who` lacks `scope` or may not use `collection` (empty:
  // the RPC names none).
  absl::Status Authorize(const Principal& who, Scope scope, std::string_view collection) const;

  // MayUse: whether `who` may see `collection` (ListCollections filters with it).
  static bool MayUse(const Principal& who, std::string_view collection);

 private:
  explicit TokenAuthorizer(bool enabled) : enabled_(enabled) {}

  bool enabled_;
  std::map<std::string, Principal> by_hash_;  // lower-case hex SHA-256 → holder
};

// Sha256Hex: the lower-case hex SHA-256 of `bytes`.
std::string Sha256Hex(std::string_view bytes);

}  // namespace retrace::server

#endif  // RETRACE_SERVER_TOKEN_AUTH_H_
