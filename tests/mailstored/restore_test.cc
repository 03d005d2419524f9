// Restores through the Store writer of real mailstored processes, and the
// bad inputs every node refuses without writing anything: a restore over a
// mounted database, a configuration with a missing or invalid field, and a
// log from another stream offered to a passive copy.
#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/str_format.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "mailstore/engine/double_write.h"
#include "mailstore/format/page.h"
#include "tests/mailstored/backup_set.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
namespace v1 = dagvault::v1;

constexpr char kUnit[] = "DB02";

v1::PrepareRestoreRequest ToOwnLocation(bool refuse_if_mounted) {
  v1::PrepareRestoreRequest r;
  r.set_unit(kUnit);
  r.set_refuse_if_mounted(refuse_if_mounted);
  return r;
}

v1::RestoreCompleteRequest Complete(const std::string& session, uint32_t to_generation = 0,
                                    bool roll_forward = false) {
  v1::RestoreCompleteRequest r;
  r.set_session(session);
  r.set_to_generation(to_generation);
  r.set_roll_forward(roll_forward);
  r.set_mount(true);
  return r;
}

// The chain both original-location tests restore: items of mailbox 1 in
// a Full, then of mailbox 2 in an Incremental, each after a rolled log;
// and the unit's digests at each.
struct FullAndIncremental {
  BackupSet full, inc;
  std::string at_full, at_incremental;
};

void BackUpFullThenIncremental(MailstoredCluster& cluster, FullAndIncremental* out) {
  const std::string backups = cluster.root() + "/backups";
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 1, 0, 40);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  out->at_full = UnitDigest(cluster, kNode1, kUnit);
  auto full = TakeBackup(cluster, kNode1, kUnit, v1::FULL, backups + "/full");
  ASSERT_OK(full);
  out->full = *full;
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 2, 0, 40);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  out->at_incremental = UnitDigest(cluster, kNode1, kUnit);
  auto inc = TakeBackup(cluster, kNode1, kUnit, v1::INCREMENTAL, backups + "/inc");
  ASSERT_OK(inc);
  out->inc = *inc;
}

// RestoreComplete into a passive copy: replayed, never mounted.
v1::RestoreCompleteRequest CompleteUnmounted(const std::string& session,
                                             uint32_t to_generation = 0) {
  v1::RestoreCompleteRequest r = Complete(session, to_generation);
  r.set_mount(false);
  return r;
}

const v1::UnitStatus* FindUnitStatus(const v1::StatusResponse& status, const std::string& unit) {
  for (const auto& u : status.units()) {
    if (u.unit() == unit) return &u;
  }
  return nullptr;
}

TEST(Restore, ARecoveryDatabaseOnAnotherNodeHoldsTheBackupAndIsNeverReplicated) {
  MailstoredCluster cluster(FastLab(), "rdb");
  ASSERT_OK(cluster.Start());
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 1, 0, 60);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  const std::string at_backup = UnitDigest(cluster, kNode1, kUnit);
  // A Full from the passive copy on node2; production goes on.
  auto full = TakeBackup(cluster, kNode2, kUnit, v1::FULL, cluster.root() + "/backups/full");
  ASSERT_OK(full);
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 2, 0, 30);

  // Restored beside production on node3, which holds only a lagged copy.
  v1::PrepareRestoreRequest request;
  request.set_unit(kUnit);
  request.set_recovery_database("DB02-RDB");
  request.set_path(cluster.root() + "/rdb-on-node3");
  auto prepared = PrepareRestore(cluster, kNode3, request);
  ASSERT_OK(prepared);
  EXPECT_EQ(prepared->recovery_database(), "DB02-RDB");
  EXPECT_FALSE(prepared->became_recovery_database());
  ASSERT_EQ(prepared->database_paths_size(), 1);
  EXPECT_THAT(prepared->database_paths(0), StartsWith(request.path()));
  ASSERT_OK(PlaceForRestore({&*full}, *prepared));
  auto restored = RestoreComplete(cluster, kNode3, Complete(prepared->session()));
  ASSERT_OK(restored);
  EXPECT_THAT(restored->message(), HasSubstr("recovered to"));

  // Mounted under its own name and readable through the store API.
  EXPECT_EQ(UnitDigest(cluster, kNode3, "DB02-RDB"), at_backup);
  auto item = cluster.Get(kNode3, "DB02-RDB", kUnit, 1, 7);
  ASSERT_OK(item);
  EXPECT_EQ(item->value_or(""), ItemValue(1, 7));
  auto later = cluster.Get(kNode3, "DB02-RDB", kUnit, 2, 0);
  ASSERT_OK(later);
  EXPECT_FALSE(later->has_value());
  auto status = cluster.Status(kNode3);
  ASSERT_OK(status);
  const v1::UnitStatus* rdb = FindUnitStatus(*status, "DB02-RDB");
  ASSERT_NE(rdb, nullptr);
  EXPECT_TRUE(rdb->recovery_database());
  // Never replicated: no other node knows it.
  for (int i : {kNode1, kNode2}) {
    auto other = cluster.Status(i);
    ASSERT_OK(other);
    EXPECT_EQ(FindUnitStatus(*other, "DB02-RDB"), nullptr);
    EXPECT_EQ(cluster.Copy(i, "DB02-RDB").status().code(), absl::StatusCode::kNotFound);
  }
  // Production went on untouched.
  EXPECT_NE(UnitDigest(cluster, kNode1, kUnit), at_backup);
  // The name is taken now.
  request.set_path(cluster.root() + "/another");
  auto again = PrepareRestore(cluster, kNode3, request);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("the name DB02-RDB is taken"));

  // Removed (issue 20): dismounted, but a folder an operator chose outside
  // data_root/rdb is left in place.
  EXPECT_EQ(RemoveRecoveryDatabase(cluster, kNode3, "../DB02").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto removed = RemoveRecoveryDatabase(cluster, kNode3, "DB02-RDB");
  ASSERT_OK(removed);
  EXPECT_THAT(removed->path(), HasSubstr("so it was left in place"));
  EXPECT_TRUE(PathExists(cluster.root() + "/rdb-on-node3/DB02.edb"));
  status = cluster.Status(kNode3);
  ASSERT_OK(status);
  EXPECT_EQ(FindUnitStatus(*status, "DB02-RDB"), nullptr);
  EXPECT_EQ(RemoveRecoveryDatabase(cluster, kNode3, "DB02-RDB").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(Restore, AVerificationsRecoveryDatabaseIsUnfencedConfinedToItsNameCheckedAndRemoved) {
  MailstoredCluster cluster(FastLab(), "verify-rdb");
  ASSERT_OK(cluster.Start());
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 1, 0, 60);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  // A Full from node2 under fencing token 5: node2 admits no lower token
  // for the unit from now on.
  auto full = TakeBackup(cluster, kNode2, kUnit, v1::FULL, cluster.root() + "/backups/full", 0,
                         /*fencing_token=*/5);
  ASSERT_OK(full);
  const std::string name = "DB02-VERIFY-20261205T090555-00ff12";
  v1::PrepareRestoreRequest request;
  request.set_unit(kUnit);
  request.set_recovery_database(name);
  // An ordinary Recovery Database restore under a superseded token is
  // fenced off...
  v1::PrepareRestoreRequest superseded = request;
  superseded.set_fencing_token(4);
  EXPECT_EQ(PrepareRestore(cluster, kNode2, superseded).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // ... a verification carries none, and is accepted only with its own
  // kind of name and no path.
  request.set_verification(true);
  for (const char* bad :
       {"../DB02-VERIFY-20261205T090555-00ff12", "SG01-VERIFY-20261205T090555-00ff12",
        "DB02-ITEMS-20261205T090555-00ff12", "DB02-RDB"}) {
    v1::PrepareRestoreRequest refused = request;
    refused.set_recovery_database(bad);
    auto r = PrepareRestore(cluster, kNode2, refused);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("-VERIFY-<time>-<id>")) << bad;
  }
  v1::PrepareRestoreRequest with_path = request;
  with_path.set_path(cluster.root() + "/elsewhere");
  EXPECT_EQ(PrepareRestore(cluster, kNode2, with_path).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto prepared = PrepareRestore(cluster, kNode2, request);
  ASSERT_OK(prepared);
  const std::string dir = cluster.node(kNode2).config.data_root() + "/rdb/" + name;
  EXPECT_EQ(prepared->system_dir(), dir);
  ASSERT_OK(PlaceForRestore({&*full}, *prepared));
  v1::RestoreCompleteRequest complete = Complete(prepared->session());
  complete.mutable_checks()->set_requested(true);
  complete.mutable_checks()->set_sample_items(5);
  complete.mutable_checks()->set_seed(7);
  auto checked = RestoreComplete(cluster, kNode2, complete);
  ASSERT_OK(checked);
  EXPECT_TRUE(checked->mounted());
  ASSERT_EQ(checked->checked_size(), 1);
  EXPECT_EQ(checked->checked(0).database(), kUnit);
  EXPECT_TRUE(checked->checked(0).problems().empty()) << checked->DebugString();
  EXPECT_EQ(checked->checked(0).items(), 60u);
  EXPECT_EQ(checked->checked(0).sampled_items(), 5u);
  EXPECT_GT(checked->checked(0).pages(), 2u);
  auto removed = RemoveRecoveryDatabase(cluster, kNode2, name);
  ASSERT_OK(removed);
  EXPECT_FALSE(PathExists(dir));

  // One given up part-way leaves nothing behind either.
  const std::string second = "DB02-VERIFY-20261205T090600-00ff13";
  request.set_recovery_database(second);
  auto given_up = PrepareRestore(cluster, kNode2, request);
  ASSERT_OK(given_up);
  ASSERT_OK(PlaceForRestore({&*full}, *given_up));
  v1::RestoreCompleteRequest abandon;
  abandon.set_session(given_up->session());
  abandon.set_abandon(true);
  ASSERT_OK(RestoreComplete(cluster, kNode2, abandon));
  EXPECT_FALSE(PathExists(cluster.node(kNode2).config.data_root() + "/rdb/" + second));

  // A removal asked for while the checks still run (the requestor gave up
  // waiting) takes effect when they end: nothing is left mounted.
  ASSERT_EQ(cluster.StopNode(kNode2).exit_code, 0);
  ASSERT_OK(
      cluster.StartNode(kNode2, {}, {{"DAGVAULT_DELAY_AT", "mailstored.restore.checks:3000"}}));
  const std::string third = "DB02-VERIFY-20261205T090700-00ff14";
  request.set_recovery_database(third);
  auto slow = PrepareRestore(cluster, kNode2, request);
  ASSERT_OK(slow);
  ASSERT_OK(PlaceForRestore({&*full}, *slow));
  v1::RestoreCompleteRequest slow_complete = complete;
  slow_complete.set_session(slow->session());
  absl::StatusOr<v1::RestoreCompleteResponse> slow_checked;
  std::thread checking([&] { slow_checked = RestoreComplete(cluster, kNode2, slow_complete); });
  absl::SleepFor(absl::Seconds(1));
  auto early = RemoveRecoveryDatabase(cluster, kNode2, third);
  checking.join();
  ASSERT_OK(early);
  EXPECT_THAT(early->path(), HasSubstr("removed as soon as its restore completes"));
  ASSERT_OK(slow_checked);
  EXPECT_TRUE(slow_checked->mounted());
  EXPECT_FALSE(PathExists(cluster.node(kNode2).config.data_root() + "/rdb/" + third));
  auto after = cluster.Status(kNode2);
  ASSERT_OK(after);
  EXPECT_EQ(FindUnitStatus(*after, third), nullptr);
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  // The passive copy it ran beside still holds what the active copy does.
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), UnitDigest(cluster, kNode1, kUnit));
}

TEST(Restore, ARestoreAimedAtAMountedDatabaseGoesBesideItOrIsRefused) {
  MailstoredCluster cluster(FastLab(), "mounted");
  ASSERT_OK(cluster.Start());
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 1, 0, 40);
  const std::string at_backup = UnitDigest(cluster, kNode1, kUnit);
  auto full = TakeBackup(cluster, kNode1, kUnit, v1::FULL, cluster.root() + "/backups/full");
  ASSERT_OK(full);
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 2, 0, 40);
  const std::string production = UnitDigest(cluster, kNode1, kUnit);

  // Refused when asked to be, naming the way out; nothing is created.
  auto refused = PrepareRestore(cluster, kNode1, ToOwnLocation(/*refuse_if_mounted=*/true));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("unit DB02 is mounted on node1"),
                    HasSubstr("a restore never overwrites a mounted database")));
  EXPECT_FALSE(PathExists(cluster.node(kNode1).config.data_root() + "/rdb"));
  // A passive copy is never a restore target.
  auto passive = PrepareRestore(cluster, kNode2, ToOwnLocation(false));
  EXPECT_EQ(passive.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(passive.status().message()),
              HasSubstr("the copy on node2 is passive and is never overwritten"));

  // Otherwise it becomes a recovery database beside production.
  auto prepared = PrepareRestore(cluster, kNode1, ToOwnLocation(false));
  ASSERT_OK(prepared);
  EXPECT_TRUE(prepared->became_recovery_database());
  EXPECT_THAT(prepared->recovery_database(), StartsWith("DB02-RDB-"));
  EXPECT_THAT(prepared->message(), HasSubstr("restoring beside it as recovery database"));
  ASSERT_OK(PlaceForRestore({&*full}, *prepared));
  ASSERT_OK(RestoreComplete(cluster, kNode1, Complete(prepared->session())));
  EXPECT_EQ(UnitDigest(cluster, kNode1, prepared->recovery_database()), at_backup);
  EXPECT_EQ(UnitDigest(cluster, kNode1, kUnit), production);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), production);
  // One under data_root/rdb is removed with its folder; production stays.
  const std::string folder =
      cluster.node(kNode1).config.data_root() + "/rdb/" + prepared->recovery_database();
  ASSERT_TRUE(PathExists(folder));
  auto removed = RemoveRecoveryDatabase(cluster, kNode1, prepared->recovery_database());
  ASSERT_OK(removed);
  EXPECT_EQ(removed->path(), folder);
  EXPECT_FALSE(PathExists(folder));
  EXPECT_EQ(UnitDigest(cluster, kNode1, kUnit), production);
}

TEST(Restore, ToTheOriginalLocationWithRollForwardOrToAPointInTimeThenReseed) {
  MailstoredCluster cluster(FastLab(/*lag_seconds=*/2), "original");
  ASSERT_OK(cluster.Start());
  FullAndIncremental chain;
  ASSERT_NO_FATAL_FAILURE(BackUpFullThenIncremental(cluster, &chain));
  const BackupSet* full = &chain.full;
  const BackupSet* inc = &chain.inc;
  const std::string& at_full = chain.at_full;
  const std::string& at_incremental = chain.at_incremental;
  ASSERT_EQ(inc->frozen.low_generation(), full->frozen.high_generation() + 1);
  // The newest items stay in logs on the server only (some in the open
  // generation).
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 3, 0, 40);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 3, 40, 5);
  const std::string latest = UnitDigest(cluster, kNode1, kUnit);
  ASSERT_NE(latest, at_incremental);
  ASSERT_NE(at_incremental, at_full);

  // Dismounted, but its passive copies still replicate: refused.
  ASSERT_OK(cluster.Admin(kNode1, "dismount", kUnit));
  auto refused = PrepareRestore(cluster, kNode1, ToOwnLocation(true));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("replication to the copy on node2 is not suspended"),
                    HasSubstr("replication to the copy on node3 is not suspended"),
                    HasSubstr("suspend every passive copy before restoring")));
  // One suspended copy is not enough: the refusal names the other.
  ASSERT_OK(cluster.Admin(kNode2, "suspend", kUnit));
  refused = PrepareRestore(cluster, kNode1, ToOwnLocation(true));
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(Not(HasSubstr("node2")),
                    HasSubstr("replication to the copy on node3 is not suspended")));
  // A copy that cannot answer is not taken to be suspended.
  cluster.KillNode(kNode3);
  refused = PrepareRestore(cluster, kNode1, ToOwnLocation(true));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("the copy on node3 did not confirm it is suspended"));
  ASSERT_OK(cluster.StartNode(kNode3));
  ASSERT_OK(cluster.Admin(kNode3, "suspend", kUnit));

  // Roll-forward: the chain, then the newer logs still on the server.
  auto prepared = PrepareRestore(cluster, kNode1, ToOwnLocation(true));
  ASSERT_OK(prepared);
  EXPECT_FALSE(prepared->became_recovery_database());
  // While the files are being replaced, nothing mounts them.
  EXPECT_FALSE(cluster.Admin(kNode1, "mount", kUnit).ok());
  ASSERT_OK(PlaceForRestore({full, inc}, *prepared));
  auto rolled = RestoreComplete(cluster, kNode1, Complete(prepared->session(), 0, true));
  ASSERT_OK(rolled);
  ASSERT_OK(cluster.WaitMounted(kNode1, kUnit));
  EXPECT_EQ(UnitDigest(cluster, kNode1, kUnit), latest);

  // Point in time: the chain replayed to the Incremental's last
  // generation, the later logs kept aside.
  ASSERT_OK(cluster.Admin(kNode1, "dismount", kUnit));
  prepared = PrepareRestore(cluster, kNode1, ToOwnLocation(true));
  ASSERT_OK(prepared);
  ASSERT_OK(PlaceForRestore({full, inc}, *prepared));
  // A double-write buffer an interrupted flush left behind holds pages of
  // the replaced files: it is kept aside, and none of its pages reaches
  // the restored database (this one lies far past its end).
  const std::string unit_dir = cluster.node(kNode1).config.data_root() + "/" + kUnit;
  constexpr mailstore::PageNo kStalePage = 100000;
  {
    std::string stale(8192, '\0');
    auto* bytes = reinterpret_cast<uint8_t*>(stale.data());
    mailstore::InitPage(bytes, 8192, kStalePage, mailstore::PageType::kBTreeLeaf);
    mailstore::SetPageDbTime(bytes, 1u << 30);
    mailstore::DoubleWriteBuffer dwb(unit_dir + "/E01.dwb");
    ASSERT_OK(dwb.Write({{0, kStalePage, bytes}}, 8192));
  }
  const uint32_t point = inc->frozen.high_generation();
  auto pit = RestoreComplete(cluster, kNode1, Complete(prepared->session(), point));
  ASSERT_OK(pit);
  EXPECT_EQ(pit->last_generation(), point);
  ASSERT_OK(cluster.WaitMounted(kNode1, kUnit));
  EXPECT_EQ(UnitDigest(cluster, kNode1, kUnit), at_incremental);
  auto gone = cluster.Get(kNode1, kUnit, kUnit, 3, 0);
  ASSERT_OK(gone);
  EXPECT_FALSE(gone->has_value());
  // The server's own logs, the later generations among them, were kept
  // aside, not deleted.
  bool kept_aside = false, dwb_aside = false;
  for (const auto& e : std::filesystem::directory_iterator(unit_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("logs.before-restore-", 0) == 0) {
      kept_aside |= PathExists(absl::StrFormat("%s/%s/E01%08X.log", unit_dir, name, point + 1));
    }
    dwb_aside |= name.rfind("E01.dwb.before-restore-", 0) == 0;
  }
  EXPECT_TRUE(kept_aside) << "the logs after the point in time were not kept";
  EXPECT_TRUE(dwb_aside) << "the old double-write buffer was not kept aside";
  EXPECT_LT(std::filesystem::file_size(unit_dir + "/" + kUnit + ".edb"),
            uint64_t{kStalePage} * 8192)
      << "a page of the old double-write buffer reached the restored database";

  // Every copy back onto the same data: the passives are reseeded.
  for (int i : {kNode2, kNode3}) {
    ASSERT_OK(cluster.Admin(i, "reseed", kUnit));
    ASSERT_OK(cluster.Admin(i, "resume", kUnit));
  }
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 4, 0, 10);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  const std::string now = UnitDigest(cluster, kNode1, kUnit);
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), now);
  std::string lagged;
  EXPECT_TRUE(WaitFor([&] { return (lagged = UnitDigest(cluster, kNode3, kUnit)) == now; },
                      absl::Seconds(30)))
      << lagged << " vs " << now;
}

v1::PrepareRestoreRequest ToPassiveCopy() {
  v1::PrepareRestoreRequest r;
  r.set_unit(kUnit);
  r.set_passive_copy(true);
  return r;
}

// An all-copies restore's parallel shape: the chain restored into the
// active copy (through the Store writer) and into each passive copy
// (through the Replication writer) at the same time; each passive copy
// replays it, stays suspended, and once resumed continues from the active
// copy's new log stream.
TEST(Restore, PassiveCopiesRestoredFromTheBackupBesideTheActiveConvergeWithIt) {
  MailstoredCluster cluster(FastLab(/*lag_seconds=*/2), "passive");
  ASSERT_OK(cluster.Start());
  FullAndIncremental chain;
  ASSERT_NO_FATAL_FAILURE(BackUpFullThenIncremental(cluster, &chain));
  const BackupSet* full = &chain.full;
  const BackupSet* inc = &chain.inc;
  const std::string& at_incremental = chain.at_incremental;
  // Items after the backups: not in the restore point.
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 3, 0, 40);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));

  // Refused into the active copy, and into a passive copy still replicating.
  auto refused = PrepareRestore(cluster, kNode1, ToPassiveCopy());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("is active"));
  refused = PrepareRestore(cluster, kNode2, ToPassiveCopy());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("replication to the copy on node2 is not suspended"));
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), UnitDigest(cluster, kNode1, kUnit));

  ASSERT_OK(cluster.Admin(kNode2, "suspend", kUnit));
  ASSERT_OK(cluster.Admin(kNode3, "suspend", kUnit));
  // Another database's backup does not replace a passive copy's files
  // either (the active copy's restore refuses it too, but they run at once).
  const std::string before = UnitDigest(cluster, kNode2, kUnit);
  v1::PrepareRestoreRequest other = ToPassiveCopy();
  other.add_database_signatures("00000000000000000000000000000000");
  refused = PrepareRestore(cluster, kNode2, other);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("belongs to another database"));
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), before) << "nothing was replaced";
  ASSERT_OK(cluster.Admin(kNode1, "dismount", kUnit));
  auto active = PrepareRestore(cluster, kNode1, ToOwnLocation(true));
  ASSERT_OK(active);
  std::map<int, v1::PrepareRestoreResponse> passives;
  for (int i : {kNode2, kNode3}) {
    auto prepared = PrepareRestore(cluster, i, ToPassiveCopy());
    ASSERT_OK(prepared);
    passives[i] = *prepared;
    // While its files are replaced, the copy is neither resumed, reseeded
    // nor restored twice.
    EXPECT_THAT(std::string(cluster.Admin(i, "resume", kUnit).message()),
                HasSubstr("being restored from the repository"));
    EXPECT_THAT(std::string(cluster.Admin(i, "reseed", kUnit).message()),
                HasSubstr("being restored from the repository"));
    EXPECT_THAT(std::string(PrepareRestore(cluster, i, ToPassiveCopy()).status().message()),
                HasSubstr("another restore is under way"));
    auto copy = cluster.Copy(i, kUnit);
    ASSERT_OK(copy);
    EXPECT_EQ(copy->state(), v1::SUSPENDED);
  }
  const uint32_t point = inc->frozen.high_generation();
  for (auto& [i, prepared] : passives) {
    ASSERT_OK(PlaceForRestore({full, inc}, prepared));
    auto completed = RestoreComplete(cluster, i, CompleteUnmounted(prepared.session(), point));
    ASSERT_OK(completed);
    EXPECT_EQ(completed->last_generation(), point);
    auto copy = cluster.Copy(i, kUnit);
    ASSERT_OK(copy);
    EXPECT_EQ(copy->state(), v1::SUSPENDED) << "it stays suspended until resumed";
    EXPECT_EQ(copy->last_replayed_generation(), point);
  }
  ASSERT_OK(PlaceForRestore({full, inc}, *active));
  auto restored = RestoreComplete(cluster, kNode1, Complete(active->session(), point));
  ASSERT_OK(restored);
  EXPECT_EQ(restored->last_generation(), point);
  ASSERT_OK(cluster.WaitMounted(kNode1, kUnit));
  EXPECT_EQ(UnitDigest(cluster, kNode1, kUnit), at_incremental);

  for (int i : {kNode2, kNode3}) ASSERT_OK(cluster.Admin(i, "resume", kUnit));
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 4, 0, 10);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  const std::string now = UnitDigest(cluster, kNode1, kUnit);
  EXPECT_NE(now, at_incremental);
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), now);
  std::string lagged;
  EXPECT_TRUE(WaitFor([&] { return (lagged = UnitDigest(cluster, kNode3, kUnit)) == now; },
                      absl::Seconds(30)))
      << lagged << " vs " << now;

  // A restore the requestor gives up (cancelled) ends at once: the copy is
  // failed and suspended, saying why, and the next restore may begin.
  ASSERT_OK(cluster.Admin(kNode3, "suspend", kUnit));
  auto given_up = PrepareRestore(cluster, kNode3, ToPassiveCopy());
  ASSERT_OK(given_up);
  v1::RestoreCompleteRequest abandon;
  abandon.set_session(given_up->session());
  abandon.set_abandon(true);
  ASSERT_OK(RestoreComplete(cluster, kNode3, abandon));
  auto failed = cluster.Copy(kNode3, kUnit);
  ASSERT_OK(failed);
  EXPECT_EQ(failed->state(), v1::FAILED_AND_SUSPENDED);
  EXPECT_THAT(failed->message(), HasSubstr("stopped part-way (the requestor gave the restore up)"));
  auto again = PrepareRestore(cluster, kNode3, ToPassiveCopy());
  ASSERT_OK(again);
  ASSERT_OK(PlaceForRestore({full, inc}, *again));
  ASSERT_OK(RestoreComplete(cluster, kNode3, CompleteUnmounted(again->session())));
  ASSERT_OK(cluster.Admin(kNode3, "resume", kUnit));
  EXPECT_TRUE(WaitFor([&] { return UnitDigest(cluster, kNode3, kUnit) == now; }, absl::Seconds(30)))
      << "a passive copy restored to the chain's end catches up with the active copy";

  // A passive restore cut short by a crash leaves the copy failed and
  // suspended, never replayed or activated; a reseed mends it.
  ASSERT_OK(cluster.Admin(kNode2, "suspend", kUnit));
  ASSERT_OK(PrepareRestore(cluster, kNode2, ToPassiveCopy()));
  cluster.KillNode(kNode2);
  ASSERT_OK(cluster.StartNode(kNode2));
  auto copy = cluster.Copy(kNode2, kUnit);
  ASSERT_OK(copy);
  EXPECT_EQ(copy->state(), v1::FAILED_AND_SUSPENDED);
  EXPECT_THAT(copy->message(), HasSubstr("was under way when mailstored stopped"));
  EXPECT_FALSE(cluster.Activate(kNode2, kUnit, "node2", /*lossy=*/true).ok());
  // A failed copy may be restored into; while it is, it counts as
  // suspended, so the active copy's restore (at the same time) goes ahead.
  ASSERT_OK(cluster.Admin(kNode3, "suspend", kUnit));
  ASSERT_OK(cluster.Admin(kNode1, "dismount", kUnit));
  auto into_failed = PrepareRestore(cluster, kNode2, ToPassiveCopy());
  ASSERT_OK(into_failed);
  copy = cluster.Copy(kNode2, kUnit);
  ASSERT_OK(copy);
  EXPECT_EQ(copy->state(), v1::SUSPENDED);
  auto beside = PrepareRestore(cluster, kNode1, ToOwnLocation(true));
  ASSERT_OK(beside);
  // Both given up: the active copy mounts its own files again.
  for (auto [node, session] :
       {std::pair{kNode1, beside->session()}, std::pair{kNode2, into_failed->session()}}) {
    v1::RestoreCompleteRequest give_up;
    give_up.set_session(session);
    give_up.set_abandon(true);
    ASSERT_OK(RestoreComplete(cluster, node, give_up));
  }
  ASSERT_OK(cluster.Admin(kNode1, "mount", kUnit));
  ASSERT_OK(cluster.WaitMounted(kNode1, kUnit));
  ASSERT_OK(cluster.Admin(kNode3, "resume", kUnit));
  ASSERT_OK(cluster.Admin(kNode2, "reseed", kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), UnitDigest(cluster, kNode1, kUnit));
}

// The SHA-256 (hex) of the backed-up log of generation `g` in `set`.
std::string BackedUpLogSha256(const BackupSet& set, uint32_t g) {
  const std::string suffix = absl::StrFormat("%08X.log", g);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(set.dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix) {
      auto data = ReadFileToString(entry.path().string());
      if (data.ok()) return DigestToHex(Sha256::Of(*data));
    }
  }
  ADD_FAILURE() << "no log of generation " << g << " in " << set.dir;
  return "";
}

// Reseed from the repository (issue 19 §2): a failed passive copy is
// rebuilt from the backup while the active copy runs on. Its writer first
// checks that the backup's last generation is in the active copy's stream;
// once resumed, only the generations after it come from the active copy.
TEST(Restore, APassiveCopyReseededFromTheBackupGetsOnlyTheNewerLogsFromTheActiveCopy) {
  MailstoredCluster cluster(FastLab(), "reseed");
  ASSERT_OK(cluster.Start());
  FullAndIncremental chain;
  ASSERT_NO_FATAL_FAILURE(BackUpFullThenIncremental(cluster, &chain));
  const uint32_t point = chain.inc.frozen.high_generation();
  const std::string point_sha = BackedUpLogSha256(chain.inc, point);
  // The active copy runs on past the backups.
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 3, 0, 40);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  auto sent_to_node2 = [&](std::string kind) -> uint64_t {
    auto copy = cluster.Copy(kNode1, kUnit);
    EXPECT_TRUE(copy.ok()) << copy.status();
    if (!copy.ok()) return 0;
    const auto& sent = kind == "log" ? copy->log_bytes_sent() : copy->seed_bytes_sent();
    auto it = sent.find("node2");
    return it == sent.end() ? 0 : it->second;
  };
  const uint64_t logs_before = sent_to_node2("log"), seeds_before = sent_to_node2("seed");
  EXPECT_GT(logs_before, 0u);

  ASSERT_OK(cluster.Admin(kNode2, "suspend", kUnit));
  const std::string before = UnitDigest(cluster, kNode2, kUnit);
  // Refused, before anything is replaced, where the backup's last
  // generation is not the active copy's.
  v1::PrepareRestoreRequest diverged = ToPassiveCopy();
  diverged.set_join_generation(point);
  diverged.set_join_sha256(std::string(64, '0'));
  auto refused = PrepareRestore(cluster, kNode2, diverged);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(refused.status().message()),
      AllOf(HasSubstr("no chain joins the active copy's current log stream"),
            HasSubstr(absl::StrFormat("the streams diverged at generation 0x%08X", point + 1))));
  v1::PrepareRestoreRequest ahead = ToPassiveCopy();
  ahead.set_join_generation(point + 1000);
  ahead.set_join_sha256(point_sha);
  refused = PrepareRestore(cluster, kNode2, ahead);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("has closed generations only"));
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), before) << "nothing was replaced";

  v1::PrepareRestoreRequest join = ToPassiveCopy();
  join.set_join_generation(point);
  join.set_join_sha256(point_sha);
  auto prepared = PrepareRestore(cluster, kNode2, join);
  ASSERT_OK(prepared);
  ASSERT_OK(PlaceForRestore({&chain.full, &chain.inc}, *prepared));
  auto completed = RestoreComplete(cluster, kNode2, CompleteUnmounted(prepared->session()));
  ASSERT_OK(completed);
  EXPECT_EQ(completed->last_generation(), point);
  ASSERT_OK(cluster.Admin(kNode2, "resume", kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), UnitDigest(cluster, kNode1, kUnit));

  // What the active copy sent node2: no seed, and exactly the generations
  // after the restore point, once each.
  auto active = cluster.Copy(kNode1, kUnit);
  ASSERT_OK(active);
  uint64_t newer_logs = 0;
  for (uint32_t g = point + 1; g <= active->last_log_generation(); ++g) {
    newer_logs += std::filesystem::file_size(absl::StrFormat(
        "%s/%s/logs/E01%08X.log", cluster.node(kNode1).config.data_root(), kUnit, g));
  }
  EXPECT_GT(newer_logs, 0u);
  EXPECT_EQ(sent_to_node2("seed"), seeds_before);
  EXPECT_EQ(sent_to_node2("log") - logs_before, newer_logs);

  // Quiet after a roll, the active copy's digest is exactly at the end of
  // the closed generation, as the copy's is once it has replayed it.
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  active = cluster.Copy(kNode1, kUnit);
  ASSERT_OK(active);
  for (int i : {kNode1, kNode2}) {
    auto d = cluster.Digest(i, kUnit, Databases(kUnit).front());
    ASSERT_OK(d);
    EXPECT_EQ(d->through_generation(), active->last_log_generation()) << i;
  }
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 4, 0, 1);
  auto busy = cluster.Digest(kNode1, kUnit, Databases(kUnit).front());
  ASSERT_OK(busy);
  EXPECT_EQ(busy->through_generation(), 0u) << "it holds records of the open generation";
}

TEST(BadInput, AConfigurationWithAMissingOrInvalidFieldStopsStartUpAndWritesNothing) {
  TempDir dir("badconfig");
  const std::string data = dir.path() + "/data";
  const std::string good =
      absl::StrCat("node: \"node1\"\n", "writer_socket: \"", dir.path(), "/writer.sock\"\n",
                   "replication_listen: \"127.0.0.1:1\"\n");
  struct Case {
    std::string text;
    std::string field;
  } cases[] = {
      {absl::StrCat(good, "data_root: \"", data, "\"\n"), "'store_listen' is required"},
      {absl::StrCat(good, "data_root: \"relative/data\"\nstore_listen: \"127.0.0.1:2\"\n"),
       "'data_root': \"relative/data\" must be an absolute path"},
      {absl::StrCat(good, "data_root: \"", data, "\"\nstore_listen: \"7101\"\n"),
       "'store_listen': \"7101\" must be HOST:PORT"},
      {absl::StrCat(good, "data_root: \"", data, "\"\nstore_listen: \"127.0.0.1:2\"\n",
                    "units { name: \"DB02\" mode: DATABASE log_prefix: \"E01\" databases: "
                    "\"DB02\" copies { node: \"node9\" } }\n"),
       "'units[0].copies[0].node': node \"node9\" is neither this node"},
      {absl::StrCat(good, "data_root: \"", data, "\"\nfreeze_timeout_ms: \"soon\"\n"),
       "Expected integer, got: \"soon\"\n    freeze_timeout_ms: \"soon\""},
      // Once taken as "off": the daemon ran and logged nothing.
      {absl::StrCat(good, "data_root: \"", data, "\"\nstore_listen: \"127.0.0.1:2\"\n",
                    "insecure_dev: true\nlog_level: \"loud\"\n"),
       "field 'log_level': \"loud\" is not a log level; valid levels: trace, debug, info, warn, "
       "error, critical, off"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.field);
    const std::string path = dir.path() + "/mailstored.conf";
    ASSERT_OK(WriteFileAtomically(path, c.text));
    ProcessResult r = RunProcess({BinaryPath("mailstored"), "--config", path});
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr(path));
    EXPECT_THAT(r.err, HasSubstr(c.field));
    EXPECT_FALSE(PathExists(data)) << "the data root was created";
    EXPECT_FALSE(PathExists(dir.path() + "/writer.sock"));
  }
}

TEST(BadInput, ALogFileThatCannotBeOpenedStopsStartUpNamingIt) {
  TempDir dir("badlogfile");
  const std::string data = dir.path() + "/data";
  const std::string config = dir.path() + "/mailstored.conf";
  ASSERT_OK(WriteFileAtomically(
      config, absl::StrCat("node: \"node1\"\nwriter_socket: \"", dir.path(),
                           "/writer.sock\"\nreplication_listen: \"127.0.0.1:1\"\n",
                           "store_listen: \"127.0.0.1:2\"\ninsecure_dev: true\ndata_root: \"", data,
                           "\"\n")));
  const std::string log = dir.path() + "/no/such/folder/mailstored.log";
  // Before issue 15 spdlog made the folders and the daemon ran: don't wait 5 minutes for it.
  ProcessResult r = RunProcess({BinaryPath("mailstored"), "--config", config, "--log-file", log},
                               {}, absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("mailstored: log file: open " + log));
  EXPECT_FALSE(PathExists(data)) << "the data root was created";
}

TEST(BadInput, ALogFromAnotherStreamIsRefusedByThePassiveCopy) {
  MailstoredCluster cluster(FastLab(), "streama");
  ASSERT_OK(cluster.Start());
  PutItems(cluster, kNode1, kUnit, Databases(kUnit), 1, 0, 20);
  ASSERT_OK(cluster.RollLog(kNode1, kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  // Another deployment with a unit of the same name, further along.
  mailstore::LabSpec one = FastLab();
  one.nodes = 1;
  MailstoredCluster other(one, "streamb");
  ASSERT_OK(other.Start());
  for (int g = 0; g < 6; ++g) {
    PutItems(other, kNode1, kUnit, Databases(kUnit), 7, g * 5, 5);
    ASSERT_OK(other.RollLog(kNode1, kUnit));
  }

  auto before = cluster.Copy(kNode2, kUnit);
  ASSERT_OK(before);
  const std::string digest = UnitDigest(cluster, kNode2, kUnit);
  cluster.StopNode(kNode2);
  // node2 now takes the other deployment's node1 for its active.
  v1::MailstoredConfig config = cluster.node(kNode2).config;
  for (auto& peer : *config.mutable_peers()) {
    if (peer.node() == "node1") {
      peer.set_replication_address(other.node(kNode1).config.replication_listen());
      peer.set_store_address(other.node(kNode1).config.store_listen());
    }
  }
  ASSERT_OK(cluster.SetConfig(kNode2, config));
  ASSERT_OK(cluster.StartNode(kNode2));
  v1::CopyStatus refused;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto c = cluster.Copy(kNode2, kUnit);
        if (c.ok()) refused = *c;
        return c.ok() && (c->state() == v1::FAILED || c->state() == v1::FAILED_AND_SUSPENDED);
      },
      absl::Seconds(30)))
      << v1::CopyState_Name(refused.state()) << ": " << refused.message();
  const uint32_t next = before->last_inspected_generation() + 1;
  EXPECT_THAT(refused.message(), AllOf(HasSubstr(absl::StrFormat("E01%08X.log", next)),
                                       HasSubstr("the log signatures differ")));
  // Nothing was accepted or replayed.
  EXPECT_EQ(refused.last_inspected_generation(), before->last_inspected_generation());
  EXPECT_EQ(refused.last_replayed_generation(), before->last_replayed_generation());
  EXPECT_EQ(UnitDigest(cluster, kNode2, kUnit), digest);
  EXPECT_FALSE(PathExists(absl::StrFormat("%s/%s/logs/E01%08X.log",
                                          cluster.node(kNode2).config.data_root(), kUnit, next)));
}

}  // namespace
}  // namespace dagvault::testing
