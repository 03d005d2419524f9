#include "common/item_restore_name.h"

#include <gtest/gtest.h>

namespace dagvault {
namespace {

TEST(ItemRestoreName, OnlyTheNamesItemRestoresMakeAreRecognised) {
  const std::string name = ItemRestoreDatabaseName("DB02", "20261205T090555", "5fe85c");
  EXPECT_EQ(name, "DB02-ITEMS-20261205T090555-5fe85c");
  EXPECT_TRUE(IsItemRestoreDatabaseName(name));
  EXPECT_TRUE(IsItemRestoreDatabaseName(name, "DB02"));
  EXPECT_FALSE(IsItemRestoreDatabaseName(name, "DB0"));
  EXPECT_TRUE(IsItemRestoreDatabaseName("A-ITEMS-B-ITEMS-20261205T090555-5fe85c", "A-ITEMS-B"));
  // An operator's own names, and near misses.
  for (const char* other :
       {"DB01-ITEMS-audit", "DB01-RDB", "-ITEMS-20261205T090555-5fe85c",
        "DB02-ITEMS-20261205T090555-5fe85", "DB02-ITEMS-20261205X090555-5fe85c",
        "DB02-ITEMS-2026120aT090555-5fe85c", "DB02-ITEMS-20261205T090555-5fe85g",
        "DB02-ITEMS-20261205T090555_5fe85c"}) {
    EXPECT_FALSE(IsItemRestoreDatabaseName(other)) << other;
  }
}

TEST(ItemRestoreName, AVerificationsNameIsNotAnItemRestoresAndTheOtherWayRound) {
  const std::string name =
      JobDatabaseName(kVerificationMarker, "SG01", "20261205T090555", "00ff12");
  EXPECT_EQ(name, "SG01-VERIFY-20261205T090555-00ff12");
  EXPECT_TRUE(IsVerificationDatabaseName(name, "SG01"));
  EXPECT_FALSE(IsVerificationDatabaseName(name, "DB02"));
  EXPECT_FALSE(IsItemRestoreDatabaseName(name));
  EXPECT_FALSE(
      IsVerificationDatabaseName(ItemRestoreDatabaseName("SG01", "20261205T090555", "00ff12")));
  EXPECT_FALSE(IsVerificationDatabaseName("SG01-VERIFY-nightly"));
}

}  // namespace
}  // namespace dagvault
