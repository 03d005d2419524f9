#include "coordinator/selection/source_selection.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

CopyView Copy(const std::string& node, v1::Role role, v1::CopyState state, uint32_t copy_queue = 0,
              uint32_t replay_queue = 0) {
  CopyView c;
  c.status.set_unit("DB02");
  c.status.set_node(node);
  c.status.set_role(role);
  c.status.set_state(state);
  c.status.set_copy_queue(copy_queue);
  c.status.set_replay_queue(replay_queue);
  return c;
}

// node1 active, node2 and node3 Healthy passives.
std::vector<CopyView> ThreeCopies() {
  return {Copy("node1", v1::ACTIVE, v1::MOUNTED), Copy("node2", v1::PASSIVE, v1::HEALTHY),
          Copy("node3", v1::PASSIVE, v1::HEALTHY)};
}

std::vector<std::string> Nodes(const Selection& s) {
  std::vector<std::string> nodes;
  for (const auto& r : s.ranked) nodes.push_back(r.node);
  return nodes;
}

TEST(SourceSelection, PassiveThenActivePutsHealthyPassivesFirst) {
  const Selection s = SelectSource(ThreeCopies(), {}, {});
  EXPECT_THAT(Nodes(s), ElementsAre("node2", "node3", "node1"));
  EXPECT_FALSE(s.ranked[0].active);
  EXPECT_THAT(s.ranked[0].why, HasSubstr("a Healthy passive copy"));
}

TEST(SourceSelection, ActiveOnlyTakesTheActiveCopyAndSaysWhyNotTheOthers) {
  SelectionPolicy policy;
  policy.mode = SourceMode::kActiveOnly;
  const Selection s = SelectSource(ThreeCopies(), policy, {});
  EXPECT_THAT(Nodes(s), ElementsAre("node1"));
  ASSERT_EQ(s.rejected.size(), 2u);
  EXPECT_THAT(s.rejected[0].reasons,
              ElementsAre("a passive copy, and the source mode is active-only"));
}

TEST(SourceSelection, PassiveOnlyWithNoHealthyPassiveRefusesNamingEachCopy) {
  std::vector<CopyView> copies = {
      Copy("node1", v1::ACTIVE, v1::MOUNTED), Copy("node2", v1::PASSIVE, v1::SUSPENDED),
      Copy("node3", v1::PASSIVE, v1::HEALTHY, /*copy_queue=*/40, /*replay_queue=*/12)};
  copies[1].status.set_message("suspended by an operator");
  SelectionPolicy policy;
  policy.mode = SourceMode::kPassiveOnly;
  const Selection s = SelectSource(copies, policy, {});
  EXPECT_FALSE(s.ok());
  const std::string why = s.Explain("DB02", policy.mode);
  EXPECT_THAT(why, HasSubstr("no copy of DB02 qualifies as a backup source (mode passive-only)"));
  EXPECT_THAT(why, HasSubstr("node1: the active copy, and the source mode is passive-only"));
  EXPECT_THAT(why, HasSubstr("node2: Suspended (suspended by an operator), not Healthy"));
  EXPECT_THAT(why, HasSubstr("node3: copy queue 40 generations, over 10; replay queue 12 "
                             "generations, over 10"));
}

TEST(SourceSelection, LaggedCopiesAndSilentNodesNeverQualify) {
  std::vector<CopyView> copies = ThreeCopies();
  copies[1].status.set_replay_lag_seconds(3600);
  copies[2].node_reporting = false;
  copies[2].node_down_reason = "no report for 45 s";
  const Selection s = SelectSource(copies, {}, {});
  EXPECT_THAT(Nodes(s), ElementsAre("node1"));
  const std::string why = s.Explain("DB02", SourceMode::kPassiveThenActive);
  EXPECT_THAT(why, HasSubstr("node2: a lagged copy (replay lag 3600 s)"));
  EXPECT_THAT(why, HasSubstr("node3: ServiceDown: no report for 45 s"));
}

TEST(SourceSelection, APassiveThatIsNotHealthyFallsBackToTheActive) {
  std::vector<CopyView> copies = {Copy("node1", v1::ACTIVE, v1::MOUNTED),
                                  Copy("node2", v1::PASSIVE, v1::RESYNCHRONIZING)};
  const Selection s = SelectSource(copies, {}, {});
  EXPECT_THAT(Nodes(s), ElementsAre("node1"));
  // A dismounted active copy is no source either.
  copies[0].status.set_state(v1::DISMOUNTED);
  EXPECT_FALSE(SelectSource(copies, {}, {}).ok());
}

TEST(SourceSelection, ThePreferredListIsHonouredInItsOrder) {
  SelectionPolicy policy;
  policy.preferred = {"node3", "node1"};
  EXPECT_THAT(Nodes(SelectSource(ThreeCopies(), policy, {})),
              ElementsAre("node3", "node2", "node1"));
  // Preference does not lift the active copy above Healthy passives.
  policy.preferred = {"node1"};
  EXPECT_THAT(Nodes(SelectSource(ThreeCopies(), policy, {})),
              ElementsAre("node2", "node3", "node1"));
}

TEST(SourceSelection, LastSuccessIsPreferredAndALastFailureDemotes) {
  SourceHistory history;
  history.last_success_node = "node3";
  EXPECT_THAT(Nodes(SelectSource(ThreeCopies(), {}, history)),
              ElementsAre("node3", "node2", "node1"));
  // node3 then failed: it goes after node2, even when preferred.
  history.failed_last = {"node3"};
  SelectionPolicy policy;
  policy.preferred = {"node3"};
  const Selection s = SelectSource(ThreeCopies(), policy, history);
  EXPECT_THAT(Nodes(s), ElementsAre("node2", "node3", "node1"));
  EXPECT_THAT(s.ranked[1].why, HasSubstr("demoted: its last attempt failed"));
}

TEST(SourceSelection, ShorterQueuesWinAmongEquals) {
  std::vector<CopyView> copies = {Copy("node2", v1::PASSIVE, v1::HEALTHY, 3, 4),
                                  Copy("node3", v1::PASSIVE, v1::HEALTHY, 0, 1)};
  EXPECT_THAT(Nodes(SelectSource(copies, {}, {})), ElementsAre("node3", "node2"));
}

// After a lossy failover, the old active's last report can still stand
// (its server died a moment ago): two copies say they are active. The one
// of the older activation epoch is never the source.
TEST(SourceSelection, AnActiveCopyOfAnOlderActivationEpochNeverQualifies) {
  std::vector<CopyView> copies = {Copy("node1", v1::ACTIVE, v1::MOUNTED),
                                  Copy("node2", v1::ACTIVE, v1::MOUNTED),
                                  Copy("node3", v1::PASSIVE, v1::HEALTHY)};
  copies[0].status.set_epoch(3);
  copies[1].status.set_epoch(4);
  copies[2].status.set_epoch(3);
  SelectionPolicy policy;
  policy.mode = SourceMode::kActiveOnly;
  SourceHistory history;
  history.last_success_node = "node1";  // would rank it first
  const Selection s = SelectSource(copies, policy, history);
  EXPECT_THAT(Nodes(s), ElementsAre("node2"));
  ASSERT_EQ(s.rejected.size(), 2u);
  EXPECT_EQ(s.rejected[0].node, "node1");
  EXPECT_THAT(s.rejected[0].reasons,
              ElementsAre("an active copy superseded by a later activation (epoch 3; node2 "
                          "reports epoch 4)"));
  // With the same epoch (no activation between them) nothing changes.
  copies[1].status.set_epoch(3);
  EXPECT_THAT(Nodes(SelectSource(copies, policy, history)), ElementsAre("node1", "node2"));
}

TEST(SourceSelection, ModesParseAndPrint) {
  for (const char* name : {"passive-then-active", "passive-only", "active-only"}) {
    auto mode = ParseSourceMode(name);
    ASSERT_TRUE(mode.ok());
    EXPECT_EQ(SourceModeName(*mode), name);
  }
  auto bad = ParseSourceMode("passive-first");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("\"passive-first\" is not one of passive-then-active"));
}

}  // namespace
}  // namespace dagvault::coordinator
