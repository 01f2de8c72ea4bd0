// TokenAuthorizer: the tokens file's checks, authentication and scope/collection rules.
#include "server/token_auth.h"

#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "core/engine/validation.h"
#include "core/filter/filter.h"
#include "gtest/gtest.h"
#include "tests/support/shared_data.h"

namespace retrace::server {
namespace {

// The server's default filter bounds (ServerConfig.limits).
const filter::FilterLimits kLimits = engine::FilterLimitsFor(engine::EngineLimits{});

std::string WriteTokens(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Sha256HexTest, MatchesKnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(TokenAuthorizerTest, DisabledAllowsEverythingAsAnonymous) {
  auto auth = TokenAuthorizer::Disabled();
  EXPECT_FALSE(auth->enabled());
  auto who = auth->Authenticate("");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->name, "anonymous");
  EXPECT_TRUE(auth->Authorize(*who, Scope::kAdmin, "any").ok());
}

TEST(TokenAuthorizerTest, AuthenticatesByHashAndEnforcesScopesAndCollections) {
  const std::string path = WriteTokens(
      "tokens.txtpb", "tokens { name: 'reader' sha256: '" + Sha256Hex("r-secret") +
                          "' scopes: 'search' collections: 'art' collections: 'maps' }\n"
                          "tokens { name: 'writer' sha256: '" +
                          // Upper-case hex is accepted too.
                          absl::AsciiStrToUpper(Sha256Hex("w-secret")) +
                          "' scopes: 'index' }\n"
                          "tokens { name: 'root' sha256: '" +
                          Sha256Hex("a-secret") + "' scopes: 'admin' }\n");
  auto auth = TokenAuthorizer::Load(path, kLimits);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ((*auth)->size(), 3u);

  EXPECT_EQ((*auth)->Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("Bearer ").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("bearer r-secret").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("Bearer r-secreT").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("Bearer " + std::string(5000, 'x')).status().code(),
            absl::StatusCode::kUnauthenticated);

  auto reader = (*auth)->Authenticate("Bearer r-secret");
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(reader->name, "reader");
  EXPECT_TRUE((*auth)->Authorize(*reader, Scope::kSearch, "art").ok());
  EXPECT_TRUE((*auth)->Authorize(*reader, Scope::kSearch, "").ok());
  absl::Status denied = (*auth)->Authorize(*reader, Scope::kSearch, "secret");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(denied.message(), "'reader' may not use collection 'secret'"));
  denied = (*auth)->Authorize(*reader, Scope::kIndex, "art");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(denied.message(), "lacks the scope 'index'"));
  EXPECT_TRUE(TokenAuthorizer::MayUse(*reader, "maps"));
  EXPECT_FALSE(TokenAuthorizer::MayUse(*reader, "mapsx"));

  auto writer = (*auth)->Authenticate("Bearer w-secret");
  ASSERT_TRUE(writer.ok());
  EXPECT_TRUE((*auth)->Authorize(*writer, Scope::kIndex, "anything").ok());
  EXPECT_FALSE((*auth)->Authorize(*writer, Scope::kSearch, "anything").ok());
  EXPECT_FALSE((*auth)->Authorize(*writer, Scope::kAdmin, "").ok());

  auto root = (*auth)->Authenticate("Bearer a-secret");
  ASSERT_TRUE(root.ok());
  for (Scope scope : {Scope::kSearch, Scope::kIndex, Scope::kAdmin}) {
    EXPECT_TRUE((*auth)->Authorize(*root, scope, "anything").ok()) << ScopeName(scope);
  }
}

TEST(TokenAuthorizerTest, BadFilesNameTheEntryAndField) {
  const std::string ok_hash = Sha256Hex("x");
  struct Case {
    std::string text;
    std::string expect;
  } cases[] = {
      {"", "lists no tokens"},
      {"tokens { name: 'a' ", "not a retrace.v1.AuthTokens text file"},
      {"tokens { sha256: '" + ok_hash + "' scopes: 'search' }", "tokens[0].name: empty"},
      {"tokens { name: 'a' sha256: 'xyz' scopes: 'search' }", "tokens[0].sha256: expected 64 hex"},
      {"tokens { name: 'a' sha256: '" + ok_hash + "' }", "tokens[0].scopes: none given"},
      {"tokens { name: 'a' sha256: '" + ok_hash + "' scopes: 'read' }",
       "tokens[0].scopes: 'read' is not one of search, index, admin"},
      {"tokens { name: 'a' sha256: '" + ok_hash +
           "' scopes: 'search' }"
           "tokens { name: 'a' sha256: '" +
           Sha256Hex("y") + "' scopes: 'search' }",
       "tokens[1].name: 'a' is listed twice"},
      {"tokens { name: 'a' sha256: '" + ok_hash +
           "' scopes: 'search' }"
           "tokens { name: 'b' sha256: '" +
           ok_hash + "' scopes: 'search' }",
       "tokens[1].sha256: the same token is listed twice"},
  };
  for (const Case& c : cases) {
    auto auth = TokenAuthorizer::Load(WriteTokens("bad.txtpb", c.text), kLimits);
    ASSERT_FALSE(auth.ok()) << c.text;
    EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(auth.status().message(), c.expect)) << auth.status();
  }
  EXPECT_EQ(TokenAuthorizer::Load("/nonexistent/tokens", kLimits).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TokenAuthorizerTest, ATokensFilterIsParsedAtLoadAndCarriedByItsPrincipal) {
  const std::string path = WriteTokens(
      "tenants.txtpb",
      "tokens { name: 'acme' sha256: '" + Sha256Hex("a-secret") +
          "' scopes: 'search' scopes: 'index' filter: 'tenant = \"acme\" and region = \"eu\"' }\n"
          "tokens { name: 'ops' sha256: '" + Sha256Hex("o-secret") + "' scopes: 'admin' }\n");
  auto auth = TokenAuthorizer::Load(path, kLimits);
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto acme = (*auth)->Authenticate("Bearer a-secret");
  ASSERT_TRUE(acme.ok());
  ASSERT_NE(acme->filter, nullptr);
  EXPECT_EQ(*acme->filter, filter::Filter::All({filter::Filter::Equals("tenant", "acme"),
                                                filter::Filter::Equals("region", "eu")}));
  using Attributes = std::map<std::string, std::string>;
  EXPECT_TRUE(filter::Evaluate(*acme->filter,
                               filter::ItemView{Attributes{{"tenant", "acme"}, {"region", "eu"}}}));
  EXPECT_FALSE(filter::Evaluate(
      *acme->filter, filter::ItemView{Attributes{{"tenant", "globex"}, {"region", "eu"}}}));
  // A token without a filter (and the anonymous principal) is not scoped.
  auto ops = (*auth)->Authenticate("Bearer o-secret");
  ASSERT_TRUE(ops.ok());
  EXPECT_EQ(ops->filter, nullptr);
  EXPECT_EQ(TokenAuthorizer::Disabled()->Authenticate("")->filter, nullptr);
}

TEST(TokenAuthorizerTest, AMalformedFilterStopsTheLoadNamingTheEntryAndColumn) {
  const std::string ok_hash = Sha256Hex("x");
  struct Case {
    std::string filter;  // in the file, single-quoted
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"tenant = ", "tokens[1].filter: "},
      {"tenant = \"acme\" and", "at column"},
      {"tenant ~ \"acme\"", "tokens[1].filter: "},
      {"(tenant = \"acme\"", "tokens[1].filter: "},
      {"year >= \"soon\"", "tokens[1].filter"},
      {std::string(300, 'k') + " = \"x\"", "tokens[1].filter"},  // key over its bound
  };
  for (const Case& c : cases) {
    const std::string text =
        "tokens { name: 'fine' sha256: '" + Sha256Hex("f") + "' scopes: 'search' }\n" +
        "tokens { name: 'bad' sha256: '" + ok_hash + "' scopes: 'search' filter: '" + c.filter +
        "' }\n";
    auto auth = TokenAuthorizer::Load(WriteTokens("bad-filter.txtpb", text), kLimits);
    ASSERT_FALSE(auth.ok()) << c.filter;
    EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(auth.status().message(), c.expect)) << auth.status();
    EXPECT_TRUE(absl::StrContains(auth.status().message(), "bad-filter.txtpb: tokens[1]"))
        << auth.status();
  }
}

}  // namespace
}  // namespace retrace::server
