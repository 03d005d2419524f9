#include "node-agent/daemon/coordinator_addresses.h"

#include <gtest/gtest.h>

namespace dagvault::agent {
namespace {

dagvault::v1::AgentConfig Config(const std::string& first, std::vector<std::string> more) {
  dagvault::v1::AgentConfig c;
  c.set_coordinator(first);
  for (auto& m : more) c.add_more_coordinators(m);
  return c;
}

TEST(CoordinatorAddresses, AStandbysPointerIsFollowedAtOnce) {
  CoordinatorAddresses a(Config("c1:7000", {"c2:7000", "c3:7000"}));
  EXPECT_EQ(a.current(), "c1:7000");
  EXPECT_TRUE(a.Next("c3:7000"));
  EXPECT_EQ(a.current(), "c3:7000");
  // The leader it was pointed to is gone, with no pointer: the next one
  // after it, after the backoff.
  EXPECT_FALSE(a.Next(""));
  EXPECT_EQ(a.current(), "c1:7000");
  EXPECT_EQ(a.Describe(), "c1:7000, c2:7000, c3:7000");
}

TEST(CoordinatorAddresses, WithoutPointersTheConfiguredAddressesAreTriedInTurn) {
  CoordinatorAddresses a(Config("c1:7000", {"c2:7000", "c1:7000"}));
  EXPECT_FALSE(a.Next(""));
  EXPECT_EQ(a.current(), "c2:7000");
  EXPECT_FALSE(a.Next(""));
  EXPECT_EQ(a.current(), "c1:7000");
  // A pointer to itself is no pointer.
  EXPECT_FALSE(a.Next("c1:7000"));
  EXPECT_EQ(a.current(), "c2:7000");
  // A leader that is not configured is followed too.
  EXPECT_TRUE(a.Next("c9:7000"));
  EXPECT_EQ(a.current(), "c9:7000");
  EXPECT_FALSE(a.Next(""));
  EXPECT_EQ(a.current(), "c2:7000");
}

TEST(CoordinatorAddresses, OneCoordinatorStaysTheOne) {
  CoordinatorAddresses a(Config("c1:7000", {}));
  EXPECT_FALSE(a.Next(""));
  EXPECT_EQ(a.current(), "c1:7000");
}

}  // namespace
}  // namespace dagvault::agent
