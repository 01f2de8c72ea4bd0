// scope_test.cc — a mandatory filter (scope.h): how it narrows a request's filter, which shapes
// name the values a written item must hold, and how a written item is made to fit.
#include "core/filter/scope.h"

#include <map>
#include <string>

#include "core/filter/parse.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::filter {
namespace {

using ::testing::HasSubstr;
using Attributes = std::map<std::string, std::string>;

constexpr FilterLimits kLimits{/*max_terms=*/64, /*max_depth=*/8, /*max_key_bytes=*/128,
                               /*max_value_bytes=*/1024};

Filter Parsed(const std::string& text) {
  absl::StatusOr<Filter> f = ParseFilter(text, kLimits);
  EXPECT_TRUE(f.ok()) << text << ": " << f.status();
  return f.ok() ? *f : Filter::Exists("__parse_failed__");
}

TEST(RestrictTest, ANDsTheScopeIntoTheRequestsFilterAndNeverWidensIt) {
  const Filter scope = Parsed("tenant = \"acme\"");
  EXPECT_EQ(Restrict(std::nullopt, nullptr), std::nullopt);
  EXPECT_EQ(Restrict(std::nullopt, &scope), scope);
  const Filter wide = Parsed("tenant exists or year >= 2000");
  EXPECT_EQ(Restrict(wide, nullptr), wide);
  const std::optional<Filter> both = Restrict(wide, &scope);
  ASSERT_TRUE(both.has_value());
  EXPECT_EQ(*both, Filter::All({wide, scope}));
  // The request's OR cannot reach another tenant's items.
  EXPECT_FALSE(Evaluate(*both, ItemView{Attributes{{"tenant", "globex"}, {"year", "2020"}}}));
  EXPECT_TRUE(Evaluate(*both, ItemView{Attributes{{"tenant", "acme"}, {"year", "2020"}}}));
  // A request that contradicts the scope matches nothing (an empty answer, not an error).
  const std::optional<Filter> contradiction = Restrict(Parsed("tenant = \"globex\""), &scope);
  EXPECT_FALSE(Evaluate(*contradiction, ItemView{Attributes{{"tenant", "globex"}}}));
  EXPECT_FALSE(Evaluate(*contradiction, ItemView{Attributes{{"tenant", "acme"}}}));
}

TEST(RequiredValuesTest, OnlyConjunctionsOfEqualitiesNameTheirValues) {
  EXPECT_EQ(RequiredValues(Parsed("tenant = \"acme\"")), (Attributes{{"tenant", "acme"}}));
  EXPECT_EQ(RequiredValues(Parsed("tenant = \"acme\" and region = \"eu\"")),
            (Attributes{{"region", "eu"}, {"tenant", "acme"}}));
  EXPECT_EQ(RequiredValues(Parsed("tenant = \"acme\" and (region = \"eu\" and tier = \"1\")")),
            (Attributes{{"region", "eu"}, {"tenant", "acme"}, {"tier", "1"}}));
  // The same value twice is still one requirement; two values of one key can never hold.
  EXPECT_EQ(RequiredValues(Parsed("tenant = \"acme\" and tenant = \"acme\"")),
            (Attributes{{"tenant", "acme"}}));
  EXPECT_EQ(RequiredValues(Parsed("tenant = \"acme\" and tenant = \"globex\"")), std::nullopt);
  for (const char* other :
       {"tenant in (\"acme\", \"globex\")", "tenant != \"acme\"", "tenant prefix \"ac\"",
        "tenant = \"acme\" or region = \"eu\"", "tenant exists", "year >= 2020",
        "tenant = \"acme\" and year >= 2020", "tenant in (\"acme\")"}) {
    EXPECT_EQ(RequiredValues(Parsed(other)), std::nullopt) << other;
  }
}

TEST(ApplyScopeTest, SetsMissingValuesAndRefusesOthers) {
  const Filter scope = Parsed("tenant = \"acme\" and region = \"eu\"");
  Attributes none;
  ASSERT_TRUE(ApplyScope(scope, none).ok());
  EXPECT_EQ(none, (Attributes{{"region", "eu"}, {"tenant", "acme"}}));

  Attributes own = {{"tenant", "acme"}, {"license", "cc-by"}};
  ASSERT_TRUE(ApplyScope(scope, own).ok());
  EXPECT_EQ(own, (Attributes{{"license", "cc-by"}, {"region", "eu"}, {"tenant", "acme"}}));

  Attributes foreign = {{"tenant", "globex"}};
  absl::Status s = ApplyScope(scope, foreign);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("attributes.tenant: \"globex\""));
  EXPECT_EQ(foreign, (Attributes{{"tenant", "globex"}})) << "changed on failure";
  Attributes other_region = {{"region", "us"}};
  s = ApplyScope(scope, other_region);
  EXPECT_THAT(std::string(s.message()), HasSubstr("attributes.region"));
  EXPECT_EQ(other_region, (Attributes{{"region", "us"}}));
}

TEST(ApplyScopeTest, AnyOtherShapeIsCheckedNotSet) {
  const Filter scope = Parsed("tenant in (\"acme\", \"acme-labs\")");
  Attributes own = {{"tenant", "acme-labs"}};
  EXPECT_TRUE(ApplyScope(scope, own).ok());
  EXPECT_EQ(own, (Attributes{{"tenant", "acme-labs"}}));
  Attributes none;
  absl::Status s = ApplyScope(scope, none);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("does not pass this token's filter"));
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace retrace::filter
