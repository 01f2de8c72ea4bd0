#include "server/token_auth.h"

#include <google/protobuf/text_format.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/filter/parse.h"
#include "retrace/v1/config.pb.h"

namespace retrace::server {
namespace {

constexpr std::string_view kBearer = "Bearer ";
// A bound on what is hashed: tokens are short secrets, and the metadata size is already bounded
// by gRPC (8 KiB by default), but hashing needs no more than this.
constexpr size_t kMaxTokenBytes = 4096;

std::optional<Scope> ParseScope(std::string_view name) {
  if (name == "search") return Scope::kSearch;
  if (name == "index") return Scope::kIndex;
  if (name == "admin") return Scope::kAdmin;
  return std::nullopt;
}

bool IsLowerHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

const char* ScopeName(Scope scope) {
  switch (scope) {
    case Scope::kSearch:
      return "search";
    case Scope::kIndex:
      return "index";
    case Scope::kAdmin:
      return "admin";
  }
  return "?";
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::unique_ptr<TokenAuthorizer> TokenAuthorizer::Disabled() {
  return std::unique_ptr<TokenAuthorizer>(new TokenAuthorizer(false));
}

absl::StatusOr<std::unique_ptr<TokenAuthorizer>> TokenAuthorizer::Load(
    const std::string& path, const filter::FilterLimits& limits) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("auth tokens file not found: ", path));
  std::ostringstream text;
  text << in.rdbuf();
  v1::AuthTokens file;
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &file)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a retrace.v1.AuthTokens text file (see config.proto)"));
  }
  if (file.tokens().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": lists no tokens"));
  }
  std::unique_ptr<TokenAuthorizer> auth(new TokenAuthorizer(true));
  std::set<std::string> names;
  for (int i = 0; i < file.tokens_size(); ++i) {
    const v1::AuthToken& entry = file.tokens(i);
    const std::string where = absl::StrCat(path, ": tokens[", i, "]");
    if (entry.name().empty())
      return absl::InvalidArgumentError(absl::StrCat(where, ".name: empty"));
    if (!names.insert(entry.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".name: '", entry.name(), "' is listed twice"));
    }
    const std::string hash = absl::AsciiStrToLower(entry.sha256());
    if (!IsLowerHex64(hash)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".sha256: expected 64 hex digits (printf %s \"$TOKEN\" | sha256sum)"));
    }
    Principal principal{entry.name(), {}, {}, nullptr};
    for (const std::string& name : entry.scopes()) {
      std::optional<Scope> scope = ParseScope(name);
      if (!scope) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".scopes: '", name, "' is not one of search, index, admin"));
      }
      principal.scopes.insert(*scope);
    }
    if (principal.scopes.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".scopes: none given"));
    }
    principal.collections.insert(entry.collections().begin(), entry.collections().end());
    if (!entry.filter().empty()) {
      absl::StatusOr<filter::Filter> parsed = filter::ParseFilter(entry.filter(), limits);
      if (!parsed.ok()) {
        // The parser's message begins "filter: ...", naming the token and column.
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".", parsed.status().message()));
      }
      principal.filter = std::make_shared<const filter::Filter>(*std::move(parsed));
    }
    if (!auth->by_hash_.emplace(hash, std::move(principal)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".sha256: the same token is listed twice"));
    }
  }
  return auth;
}

absl::StatusOr<Principal> TokenAuthorizer::Authenticate(std::string_view authorization) const {
  if (!enabled_) return Principal{"anonymous", {Scope::kAdmin}, {}, nullptr};
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "this server needs a bearer token: metadata 'authorization: Bearer <token>' "
        "(retrace --token, or RETRACE_TOKEN)");
  }
  if (authorization.substr(0, kBearer.size()) != kBearer) {
    return absl::UnauthenticatedError("metadata 'authorization' is not 'Bearer <token>'");
  }
  const std::string_view token = authorization.substr(kBearer.size());
  if (token.empty() || token.size() > kMaxTokenBytes) {
    return absl::UnauthenticatedError("unknown bearer token");
  }
  // The lookup compares hashes, not the secret, so its timing tells a caller nothing useful.
  auto it = by_hash_.find(Sha256Hex(token));
  if (it == by_hash_.end()) return absl::UnauthenticatedError("unknown bearer token");
  return it->second;
}

absl::Status TokenAuthorizer::Authorize(const Principal& who, Scope scope,
                                        std::string_view collection) const {
  if (!enabled_) return absl::OkStatus();
  if (!who.scopes.count(scope) && !who.scopes.count(Scope::kAdmin)) {
    return absl::PermissionDeniedError(
        absl::StrCat("token '", who.name, "' lacks the scope '", ScopeName(scope), "'"));
  }
  if (!collection.empty() && !MayUse(who, collection)) {
    return absl::PermissionDeniedError(
        absl::StrCat("token '", who.name, "' may not use collection '",
                     absl::string_view(collection.data(), collection.size()), "'"));
  }
  return absl::OkStatus();
}

bool TokenAuthorizer::MayUse(const Principal& who, std::string_view collection) {
  return who.collections.empty() || who.collections.count(std::string(collection)) > 0;
}

}  // namespace retrace::server
