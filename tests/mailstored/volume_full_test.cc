// A unit whose volume fills up on the active copy (tests/faults has the
// same fault inside a backup): the writes that fail are not acknowledged,
// the unit dismounts and says why, as Exchange dismounts a database whose
// log drive is full, and once there is room an operator's mount recovers it
// from its logs with every acknowledged item.
#include <vector>

#include "common/testing/small_tmpfs.h"
#include "gmock/gmock.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

TEST(VolumeFull, TheActiveCopyDismountsWithTheReasonAndAMountRecoversEveryAcknowledgedItem) {
  MailstoredCluster cluster(FastLab(), "volume-full");
  // Where the lab puts node1's DB02 (mailstore/server/lab_config.cc).
  SmallTmpfs volume(cluster.root() + "/node1/data/DB02", 48 << 20);
  ASSERT_TRUE(volume.ok()) << volume.error();
  ASSERT_OK(cluster.Start());
  const auto& dbs = Databases("DB02");
  std::vector<uint64_t> acknowledged;
  uint64_t item = 0;
  for (; item < 100; ++item) {
    ASSERT_OK(cluster.Put(kNode1, "DB02", dbs[item % dbs.size()], 1, item, ItemValue(1, item)));
    acknowledged.push_back(item);
  }

  ASSERT_TRUE(volume.Fill());
  absl::Status refused;
  for (; item < 2000 && refused.ok(); ++item) {
    refused = cluster.Put(kNode1, "DB02", dbs[item % dbs.size()], 1, item, ItemValue(1, item));
    if (refused.ok()) acknowledged.push_back(item);
    if (item % 20 == 0) (void)cluster.RollLog(kNode1, "DB02");
  }
  ASSERT_FALSE(refused.ok()) << "a full volume refused no write";
  EXPECT_THAT(std::string(refused.message()), HasSubstr("No space left on device"));
  // The copy says it is down and why; later writes fail with the reason.
  auto copy = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(copy.status());
  EXPECT_EQ(copy->state(), v1::DISMOUNTED);
  EXPECT_THAT(copy->message(), HasSubstr("dismounted by a failure"));
  EXPECT_THAT(copy->message(), HasSubstr("No space left on device"));
  absl::Status later = cluster.Put(kNode1, "DB02", dbs[0], 1, 99999, "x");
  EXPECT_THAT(std::string(later.message()), HasSubstr("is dismounted on node node1"));
  EXPECT_THAT(std::string(later.message()), HasSubstr("free space"));

  // Room again: the operator mounts it; it recovers from its logs.
  volume.Unfill();
  ASSERT_OK(cluster.Admin(kNode1, "mount", "DB02"));
  copy = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(copy.status());
  EXPECT_EQ(copy->state(), v1::MOUNTED);
  for (uint64_t i : acknowledged) {
    auto got = cluster.Get(kNode1, "DB02", dbs[i % dbs.size()], 1, i);
    ASSERT_OK(got.status());
    ASSERT_TRUE(got->has_value()) << "acknowledged item " << i << " is lost";
    EXPECT_EQ(**got, ItemValue(1, i));
  }
  // It takes writes again, and the passive copies replay all of it.
  ASSERT_OK(cluster.Put(kNode1, "DB02", dbs[0], 2, 0, ItemValue(2, 0)));
  ASSERT_OK(cluster.RollLog(kNode1, "DB02"));
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  EXPECT_EQ(UnitDigest(cluster, kNode2, "DB02"), UnitDigest(cluster, kNode1, "DB02"));
}

}  // namespace
}  // namespace dagvault::testing
