#include "common/rate_limited_warning.h"

#include <gtest/gtest.h>

#include <vector>

namespace dagvault {
namespace {

TEST(RateLimitedWarning, RepeatsAreHeldBackForAWindowAndThenCounted) {
  FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  std::vector<std::string> logged;
  RateLimitedWarning w("test", absl::Minutes(1), &clock,
                       [&](const std::string& m) { logged.push_back(m); });
  for (int i = 0; i < 5; ++i) {
    w.Warn("coordinator unreachable");
    clock.Advance(absl::Seconds(5));
  }
  ASSERT_EQ(logged.size(), 1u);
  clock.Advance(absl::Minutes(1));
  w.Warn("coordinator unreachable");
  ASSERT_EQ(logged.size(), 2u);
  EXPECT_EQ(logged[1].rfind("coordinator unreachable (repeated 4 times since ", 0), 0u)
      << logged[1];
  // Another message is logged at once; so is the first one after a Reset.
  w.Warn("mail server does not answer");
  EXPECT_EQ(logged.size(), 3u);
  w.Reset();
  w.Warn("mail server does not answer");
  EXPECT_EQ(logged.size(), 4u);
}

}  // namespace
}  // namespace dagvault
