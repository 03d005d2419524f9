#include "mailstore/server/truncation.h"

#include "gtest/gtest.h"

namespace dagvault::mailstore {
namespace {

// Every rule holds through generation 100, except the one a test lowers.
TruncationInputs AllHold() {
  TruncationInputs in;
  in.backup_high = 100;
  in.checkpoint = 102;  // minus 1 and a depth of 1: 100
  in.checkpoint_depth = 1;
  in.copies = {{"node2", false, true, 100, 100}, {"node3", true, true, 100, 5}};
  return in;
}

TEST(Truncation, AllFourRulesHoldThroughTheSameGeneration) {
  EXPECT_EQ(DecideTruncation(AllHold()).through, 100u);
}

TEST(Truncation, Rule1NoBackupTruncatesNothing) {
  auto in = AllHold();
  in.backup_high = 0;
  auto d = DecideTruncation(in);
  EXPECT_EQ(d.through, 0u);
  EXPECT_NE(d.held_by.find("rule 1"), std::string::npos) << d.held_by;
  in.backup_high = 60;
  d = DecideTruncation(in);
  EXPECT_EQ(d.through, 60u);
  EXPECT_NE(d.held_by.find("rule 1"), std::string::npos) << d.held_by;
}

TEST(Truncation, Rule2BelowTheCheckpointMinusTheDepth) {
  auto in = AllHold();
  in.checkpoint = 50;
  auto d = DecideTruncation(in);
  EXPECT_EQ(d.through, 48u);
  EXPECT_NE(d.held_by.find("rule 2"), std::string::npos) << d.held_by;
  in.checkpoint_depth = 10;
  EXPECT_EQ(DecideTruncation(in).through, 39u);
  in.checkpoint = 3;  // everything is within the depth
  EXPECT_EQ(DecideTruncation(in).through, 0u);
}

TEST(Truncation, Rule3ANonLaggedCopyMustHaveReplayed) {
  auto in = AllHold();
  in.copies[0].replayed = 70;  // inspected 100, replayed 70
  auto d = DecideTruncation(in);
  EXPECT_EQ(d.through, 70u);
  EXPECT_NE(d.held_by.find("rule 3: the copy on node2"), std::string::npos) << d.held_by;
}

TEST(Truncation, Rule4ALaggedCopyMustHaveInspectedButNotReplayed) {
  auto in = AllHold();
  // node3 has replayed only 5 (it is lagged): that does not hold anything.
  EXPECT_EQ(DecideTruncation(in).through, 100u);
  in.copies[1].inspected = 80;
  auto d = DecideTruncation(in);
  EXPECT_EQ(d.through, 80u);
  EXPECT_NE(d.held_by.find("rule 4: the lagged copy on node3"), std::string::npos) << d.held_by;
}

TEST(Truncation, ACopyNotHeardFromHoldsEverything) {
  auto in = AllHold();
  in.copies[1].heard = false;
  auto d = DecideTruncation(in);
  EXPECT_EQ(d.through, 0u);
  EXPECT_NE(d.held_by.find("node3 has not reported"), std::string::npos) << d.held_by;
}

TEST(Truncation, TheLowestLimitWins) {
  auto in = AllHold();
  in.backup_high = 90;
  in.checkpoint = 80;  // 78
  in.copies[0].replayed = 85;
  in.copies[1].inspected = 77;
  auto d = DecideTruncation(in);
  EXPECT_EQ(d.through, 77u);
  EXPECT_NE(d.held_by.find("rule 4"), std::string::npos) << d.held_by;
}

}  // namespace
}  // namespace dagvault::mailstore
