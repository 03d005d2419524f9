#include "coordinator/console/console_tokens.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dagvault::coordinator {
namespace {

using ::testing::HasSubstr;

const PeerIdentity kOtto{.authenticated = true, .common_name = "otto", .role = "operator"};

TEST(ConsoleTokens, ATokenNamesItsPersonUntilItExpiresOnTheMonotonicClock) {
  FakeClock clock;
  ConsoleTokens tokens(&clock);
  auto issued = tokens.Issue(kOtto, absl::Hours(1));
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->token.size(), 43u);
  EXPECT_EQ(issued->expires, clock.Now() + absl::Hours(1));
  auto who = tokens.Lookup(issued->token);
  ASSERT_TRUE(who.has_value());
  EXPECT_EQ(who->common_name, "otto");
  EXPECT_EQ(who->role, "operator");
  // A wall-clock step neither ends nor extends it.
  clock.StepWallClock(absl::Hours(5));
  EXPECT_TRUE(tokens.Lookup(issued->token).has_value());
  clock.Advance(absl::Minutes(61));
  EXPECT_FALSE(tokens.Lookup(issued->token).has_value());
}

TEST(ConsoleTokens, UnknownTokensNothingAndLifetimesAreBounded) {
  FakeClock clock;
  ConsoleTokens tokens(&clock);
  EXPECT_FALSE(tokens.Lookup("").has_value());
  EXPECT_FALSE(tokens.Lookup("not-a-token").has_value());
  auto a = tokens.Issue(kOtto, absl::ZeroDuration());
  auto b = tokens.Issue(kOtto, absl::ZeroDuration());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->token, b->token);
  EXPECT_EQ(a->expires, clock.Now() + ConsoleTokens::kDefaultTtl);
  auto long_lived = tokens.Issue(kOtto, absl::Hours(25));
  EXPECT_EQ(long_lived.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(long_lived.status().message(), HasSubstr("at most 24h"));
  EXPECT_EQ(tokens.Issue(PeerIdentity{}, absl::Hours(1)).status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace dagvault::coordinator
