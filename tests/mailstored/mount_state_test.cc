// What an active copy does at a restart of its mailstored, when an operator
// or a restore had stopped it, or its files were lost: it does not mount on
// its own what it should not (a dismount stands, half-restored files are
// never mounted, lost files are not replaced by new empty ones), and says
// why in its status. The fault matrix's restore cells found each of these.
#include <filesystem>

#include "gmock/gmock.h"
#include "tests/mailstored/backup_set.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Db02Dir(MailstoredCluster& cluster) {
  return cluster.node(kNode1).config.data_root() + "/DB02";
}

TEST(MountState, ADismountOutlivesARestartAndAMountEndsIt) {
  MailstoredCluster cluster(FastLab(), "dismount-restart");
  ASSERT_OK(cluster.Start());
  PutItems(cluster, kNode1, "DB02", Databases("DB02"), 1, 0, 10);
  ASSERT_OK(cluster.Admin(kNode1, "dismount", "DB02"));
  EXPECT_EQ(cluster.StopNode(kNode1).exit_code, 0);
  ASSERT_OK(cluster.StartNode(kNode1));
  absl::SleepFor(absl::Seconds(1));  // the worker's passes would have mounted it
  auto copy = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(copy.status());
  EXPECT_EQ(copy->state(), v1::DISMOUNTED);
  EXPECT_THAT(copy->message(), HasSubstr("dismounted by an operator"));
  // The other unit was not dismounted: it mounted as usual.
  ASSERT_OK(cluster.WaitMounted(kNode1, "SG01"));
  ASSERT_OK(cluster.Admin(kNode1, "mount", "DB02"));
  ASSERT_OK(cluster.WaitMounted(kNode1, "DB02"));
  auto got = cluster.Get(kNode1, "DB02", Databases("DB02")[0], 1, 0);
  ASSERT_OK(got.status());
  EXPECT_TRUE(got->has_value());
  // Mounted again, it mounts at the next start too.
  EXPECT_EQ(cluster.StopNode(kNode1).exit_code, 0);
  ASSERT_OK(cluster.StartNode(kNode1));
  ASSERT_OK(cluster.WaitMounted(kNode1, "DB02"));
}

TEST(MountState, LostDatabaseFilesAreNotReplacedByEmptyOnesAtStart) {
  MailstoredCluster cluster(FastLab(), "files-lost");
  ASSERT_OK(cluster.Start());
  PutItems(cluster, kNode1, "DB02", Databases("DB02"), 1, 0, 10);
  cluster.KillNode(kNode1);
  const std::string edb = Db02Dir(cluster) + "/DB02.edb";
  ASSERT_TRUE(fs::remove(edb));
  ASSERT_OK(cluster.StartNode(kNode1));
  absl::SleepFor(absl::Seconds(1));
  auto copy = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(copy.status());
  EXPECT_EQ(copy->state(), v1::DISMOUNTED);
  EXPECT_THAT(copy->message(), HasSubstr("its database files are missing"));
  EXPECT_THAT(copy->message(), HasSubstr("dagvault restore start --unit DB02"));
  EXPECT_FALSE(fs::exists(edb)) << "a new, empty database was created in its place";
  // The operator may choose a new, empty database: an explicit mount, once
  // the old unit's logs are gone too (they belong to the lost database).
  for (const auto& entry : fs::directory_iterator(Db02Dir(cluster))) {
    if (entry.path().filename() != "copy.state") fs::remove_all(entry.path());
  }
  ASSERT_OK(cluster.Admin(kNode1, "mount", "DB02"));
  ASSERT_OK(cluster.WaitMounted(kNode1, "DB02"));
  EXPECT_TRUE(fs::exists(edb));
}

TEST(MountState, AnInterruptedRestoreIsNeitherMountedAtStartNorByHandAndRunsAgain) {
  MailstoredCluster cluster(FastLab(), "restore-restart");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  ASSERT_OK(cluster.Admin(kNode1, "dismount", "DB02"));
  ASSERT_OK(cluster.Admin(kNode2, "suspend", "DB02"));
  ASSERT_OK(cluster.Admin(kNode3, "suspend", "DB02"));
  v1::PrepareRestoreRequest own;
  own.set_unit("DB02");
  own.set_refuse_if_mounted(true);
  ASSERT_OK(PrepareRestore(cluster, kNode1, own).status());
  // Killed while the files are being replaced.
  cluster.KillNode(kNode1);
  ASSERT_OK(cluster.StartNode(kNode1));
  absl::SleepFor(absl::Seconds(1));
  auto copy = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(copy.status());
  EXPECT_EQ(copy->state(), v1::DISMOUNTED);
  EXPECT_THAT(copy->message(), HasSubstr("a restore was replacing its files"));
  absl::Status mount = cluster.Admin(kNode1, "mount", "DB02");
  EXPECT_THAT(std::string(mount.message()), HasSubstr("run the restore again"));
  // The restore runs again.
  auto again = PrepareRestore(cluster, kNode1, own);
  ASSERT_OK(again.status());
}

}  // namespace
}  // namespace dagvault::testing
