// Item-level restore with real processes (issue 20 §1): a coordinator,
// three agents and three mailstored nodes. A mailbox's deleted items come
// back from a backup into production, only they, and replicate to the
// passive copies; an export writes each item's bytes to a file; a mailbox
// or item not in the restore point is named, with what is there.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "dagvault/v1/agent.pb.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

// The items of `mailbox` in DB02's active copy on node i, number → bytes.
std::map<uint64_t, std::string> MailboxItems(Deployment& d, int i, uint64_t mailbox) {
  std::map<uint64_t, std::string> out;
  uint64_t next = 0;
  while (true) {
    v1::ListRequest list;
    list.set_unit("DB02");
    list.set_database("DB02");
    list.set_mailbox(mailbox);
    list.set_start_item(next);
    v1::ListResponse listed;
    grpc::ClientContext context;
    EXPECT_TRUE(d.cluster().store(i).List(&context, list, &listed).ok());
    for (const auto& e : listed.items()) {
      auto got = d.cluster().Get(i, "DB02", "DB02", mailbox, e.item());
      EXPECT_TRUE(got.ok() && got->has_value());
      if (got.ok() && got->has_value()) out[e.item()] = **got;
    }
    if (listed.items_size() < 1000) return out;
    next = listed.items(listed.items_size() - 1).item() + 1;
  }
}

void DeleteItems(Deployment& d, uint64_t mailbox, uint64_t first, uint64_t count) {
  for (uint64_t item = first; item < first + count; ++item) {
    v1::DeleteRequest del;
    del.mutable_address()->set_unit("DB02");
    del.mutable_address()->set_database("DB02");
    del.mutable_address()->set_mailbox(mailbox);
    del.mutable_address()->set_item(item);
    v1::DeleteResponse deleted;
    grpc::ClientContext context;
    ASSERT_TRUE(d.cluster().store(kNode1).Delete(&context, del, &deleted).ok());
    ASSERT_TRUE(deleted.existed()) << item;
  }
}

std::pair<int, v1::JobInfo> RestoreItems(Deployment& d, std::vector<std::string> args) {
  args.insert(args.begin(), {"restore", "items", "--unit", "DB02"});
  args.push_back("--wait");
  return JobCommand(d, args);
}

TEST(DeploymentItemRestore, DeletedItemsComeBackIntoProductionAndReplicateOtherMailUntouched) {
  Deployment d(Options(), "items");
  ASSERT_OK(d.Start());
  // Mailboxes 1 and 2 in the backup.
  Load(d, kNode1, 1, 0, 60);
  ASSERT_EQ(LoadAndBackUp(d, 2, 0, 30, "full").state(), v1::JOB_SUCCEEDED);
  const std::map<uint64_t, std::string> mailbox1 = MailboxItems(d, kNode1, 1);
  ASSERT_EQ(mailbox1.size(), 60u);
  // After the backup: mailbox 1 loses 40 items and gets one changed; mail
  // keeps arriving in mailbox 3.
  ASSERT_NO_FATAL_FAILURE(DeleteItems(d, 1, 0, 40));
  ASSERT_OK(d.cluster().Put(kNode1, "DB02", "DB02", 1, 50, "changed after the backup"));
  Load(d, kNode1, 3, 0, 25);
  const std::map<uint64_t, std::string> mailbox2 = MailboxItems(d, kNode1, 2);
  const std::map<uint64_t, std::string> mailbox3 = MailboxItems(d, kNode1, 3);

  const absl::Time started = absl::Now();
  auto [exit_code, job] = RestoreItems(d, {"--mailbox", "1", "--into-production"});
  const absl::Duration took = absl::Now() - started;
  ASSERT_EQ(exit_code, 0) << job.DebugString() << d.CoordinatorLog();
  ASSERT_TRUE(job.plan().has_item_result()) << job.DebugString();
  const v1::ItemCounts& counts = job.plan().item_result().counts();
  EXPECT_EQ(counts.found(), 60u);
  EXPECT_EQ(counts.copied(), 40u);
  EXPECT_EQ(counts.skipped_existing(), 1u);  // item 50: production's newer bytes kept
  EXPECT_EQ(counts.skipped_identical(), 19u);
  EXPECT_EQ(counts.bytes(), 40u * ItemValue(1, 0).size());
  std::cerr << "item restore into production: " << counts.copied() << " of " << counts.found()
            << " items, " << counts.bytes() << " bytes, in " << absl::FormatDuration(took)
            << " (job: " << job.id() << ")\n";
  ASSERT_EQ(job.plan().steps_size(), 3);
  for (const auto& step : job.plan().steps()) {
    EXPECT_EQ(step.state(), v1::STEP_DONE) << step.DebugString();
    EXPECT_FALSE(step.detail().empty());
  }
  EXPECT_TRUE(job.plan().item_result().recovery_database_removed());
  // A healthy passive copy's node restored it.
  const std::string node = job.plan().active_node();
  EXPECT_TRUE(node == "node2" || node == "node3") << node;

  // Mailbox 1 is as backed up, except item 50, which production changed.
  std::map<uint64_t, std::string> expected = mailbox1;
  expected[50] = "changed after the backup";
  EXPECT_EQ(MailboxItems(d, kNode1, 1), expected);
  EXPECT_EQ(MailboxItems(d, kNode1, 2), mailbox2);
  EXPECT_EQ(MailboxItems(d, kNode1, 3), mailbox3);
  // The restored items replicate like any write.
  ASSERT_OK(d.cluster().RollLog(kNode1, "DB02"));
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  ExpectEveryCopyHolds(d, UnitDigest(d.cluster(), kNode1, "DB02"));
  // The Recovery Database is gone, files and all.
  ExpectNoRecoveryDatabase(d, node == "node2" ? kNode2 : kNode3);

  // A re-run copies nothing again.
  auto [again_exit, again] = RestoreItems(d, {"--mailbox", "1", "--into-production"});
  ASSERT_EQ(again_exit, 0) << again.DebugString();
  EXPECT_EQ(again.plan().item_result().counts().copied(), 0u);
  EXPECT_EQ(again.plan().item_result().counts().skipped_identical(), 59u);

  // Keep both: item 50's backed-up bytes under a new number of mailbox 1.
  auto [both_exit, both] = RestoreItems(
      d, {"--mailbox", "1", "--item", "50", "--into-production", "--conflict", "keep-both"});
  ASSERT_EQ(both_exit, 0) << both.DebugString();
  EXPECT_EQ(both.plan().item_result().counts().kept_both(), 1u);
  const auto after = MailboxItems(d, kNode1, 1);
  EXPECT_EQ(after.at(50), "changed after the backup");
  EXPECT_EQ(after.rbegin()->second, mailbox1.at(50));
  EXPECT_GT(after.rbegin()->first, 59u);
  // Run again, it keeps no second copy.
  auto [both_again_exit, both_again] = RestoreItems(
      d, {"--mailbox", "1", "--item", "50", "--into-production", "--conflict", "keep-both"});
  ASSERT_EQ(both_again_exit, 0) << both_again.DebugString();
  EXPECT_EQ(both_again.plan().item_result().counts().kept_both(), 0u);
  EXPECT_EQ(MailboxItems(d, kNode1, 1).size(), after.size());
}

TEST(DeploymentItemRestore, AnExportWritesEachItemsBytesAndBadInputIsNamed) {
  Deployment d(Options(), "items-export");
  ASSERT_OK(d.Start());
  Load(d, kNode1, 4, 0, 10);
  ASSERT_EQ(LoadAndBackUp(d, 5, 0, 10, "full").state(), v1::JOB_SUCCEEDED);
  const std::string dir = d.cluster().root() + "/export";
  auto [exit_code, job] =
      RestoreItems(d, {"--mailbox", "4", "--item", "2,7", "--export", dir, "--node", "node2"});
  ASSERT_EQ(exit_code, 0) << job.DebugString();
  EXPECT_EQ(job.plan().item_result().counts().exported(), 2u);
  for (uint64_t item : {2, 7}) {
    auto bytes = ReadFileToString(absl::StrCat(dir, "/DB02/4/", item, ".item"));
    ASSERT_OK(bytes);
    EXPECT_EQ(*bytes, ItemValue(4, item));
  }
  auto json = ReadFileToString(dir + "/index.json");
  ASSERT_OK(json);
  v1::ItemExportIndex index;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &index).ok()) << *json;
  ASSERT_EQ(index.items_size(), 2);
  EXPECT_EQ(index.items(0).item(), 2u);
  EXPECT_EQ(index.items(0).sha256(), DigestToHex(Sha256::Of(ItemValue(4, 2))));
  EXPECT_EQ(index.items(1).file(), "DB02/4/7.item");
  EXPECT_EQ(index.unit(), "DB02");

  // Not in the restore point: the job fails naming what is missing and
  // what is there, and leaves no Recovery Database behind.
  auto [missing_exit, missing] = RestoreItems(d, {"--mailbox", "9", "--export", dir + "2"});
  EXPECT_NE(missing_exit, 0);
  EXPECT_THAT(missing.reason(), HasSubstr("mailbox 9 holds no item"));
  EXPECT_THAT(missing.reason(), HasSubstr("mailboxes holding items there: 4, 5"));
  EXPECT_THAT(missing.reason(), HasSubstr("removed"));
  auto [item_exit, item] =
      RestoreItems(d, {"--mailbox", "5", "--item", "3,77", "--into-production"});
  EXPECT_NE(item_exit, 0);
  EXPECT_THAT(item.reason(), HasSubstr("item 77 is not in mailbox 5"));
  EXPECT_THAT(item.reason(), HasSubstr("it holds 10 item(s) there, numbered 0 to 9"));
  EXPECT_EQ(item.plan().steps(0).state(), v1::STEP_DONE) << item.DebugString();
  EXPECT_EQ(item.plan().steps(1).state(), v1::STEP_FAILED) << item.DebugString();
  EXPECT_EQ(item.plan().steps(2).state(), v1::STEP_DONE) << item.DebugString();
  EXPECT_TRUE(item.plan().item_result().recovery_database_removed());
  EXPECT_THAT(item.plan().next_action(), HasSubstr("run the same `dagvault restore items` again"));
  // Refused before it starts: both or neither of --into-production and --export.
  ProcessResult neither = d.Cli({"restore", "items", "--unit", "DB02", "--mailbox", "4"});
  EXPECT_NE(neither.exit_code, 0);
  EXPECT_THAT(neither.err + neither.out, HasSubstr("either --into-production or --export DIR"));
  // The unit is free again: a backup runs.
  EXPECT_EQ(BackupWait(d, {"--unit", "DB02", "--type", "full"}).state(), v1::JOB_SUCCEEDED);

  // Mailbox 11 is in one Incremental and deleted before the next: asked
  // for at the newest restore point, the job names the nearest one that
  // holds it.
  const v1::JobInfo with11 = LoadAndBackUp(d, 11, 0, 4, "incremental");
  ASSERT_EQ(with11.state(), v1::JOB_SUCCEEDED);
  ASSERT_NO_FATAL_FAILURE(DeleteItems(d, 11, 0, 4));
  ASSERT_EQ(LoadAndBackUp(d, 12, 0, 2, "incremental").state(), v1::JOB_SUCCEEDED);
  auto [gone_exit, gone] = RestoreItems(d, {"--mailbox", "11", "--export", dir + "3"});
  EXPECT_NE(gone_exit, 0);
  std::cerr << "mailbox 11 asked for at the newest restore point: " << gone.reason() << "\n";
  EXPECT_THAT(gone.reason(), HasSubstr("mailbox 11 holds no item"))
      << d.AgentLog(NodeIndexOf(gone.plan().active_node()));
  EXPECT_THAT(gone.reason(),
              HasSubstr(absl::StrCat("the nearest restore point that holds the mailbox is "
                                     "generation ")));
  EXPECT_THAT(gone.reason(), HasSubstr(absl::StrCat("(backup ", with11.manifest(), ")")));
  EXPECT_THAT(gone.reason(), HasSubstr("restore with --to-generation"));
  // Its own Recovery Database went before the looks; step 2 says where.
  ASSERT_EQ(gone.plan().steps_size(), 3);
  EXPECT_EQ(gone.plan().steps(1).state(), v1::STEP_FAILED) << gone.DebugString();
  EXPECT_THAT(gone.plan().steps(1).detail(), HasSubstr("the nearest restore point that holds"));
  EXPECT_EQ(gone.plan().steps(2).state(), v1::STEP_DONE) << gone.DebugString();
  EXPECT_TRUE(gone.plan().item_result().recovery_database_removed());
  ExpectNoRecoveryDatabase(d, NodeIndexOf(gone.plan().active_node()));
  // And there it is.
  const size_t at = gone.reason().find("restore with --to-generation ");
  ASSERT_NE(at, std::string::npos);
  const std::string generation =
      gone.reason().substr(at + std::string("restore with --to-generation ").size(), 10);
  auto [found_exit, found] =
      RestoreItems(d, {"--mailbox", "11", "--export", dir + "4", "--to-generation", generation});
  ASSERT_EQ(found_exit, 0) << found.DebugString();
  EXPECT_EQ(found.plan().item_result().counts().exported(), 4u);
}

// The restoring agent dies after writing a page into production: the job
// fails once its lease runs out; run again, it copies the rest (the pages
// already written count as already there) and removes the Recovery
// Database the dead attempt left mounted. A mailstored restart removes an
// item restore's folder left on disk.
TEST(DeploymentItemRestore, AnItemRestoreCutShortLeavesNothingBehindOnceRunAgain) {
  Deployment d(Options(), "items-crash");
  ASSERT_OK(d.Start());
  Load(d, kNode1, 6, 0, 30);
  ASSERT_EQ(LoadAndBackUp(d, 7, 0, 5, "full").state(), v1::JOB_SUCCEEDED);
  const std::map<uint64_t, std::string> mailbox6 = MailboxItems(d, kNode1, 6);
  ASSERT_NO_FATAL_FAILURE(DeleteItems(d, 6, 0, 30));
  for (int i : {kNode2, kNode3}) {
    d.KillAgent(i);
    ASSERT_OK(d.StartAgent(
        i, {{"DAGVAULT_CRASH_AT", "agent.items.copy"}, {"DAGVAULT_ITEM_PAGE_BYTES", "3000"}}));
  }
  ASSERT_OK(d.WaitReporting());
  // Pages of one item, so the agent dies with the rest still to copy.
  auto [cut_exit, cut] = RestoreItems(d, {"--mailbox", "6", "--into-production"});
  EXPECT_NE(cut_exit, 0) << cut.DebugString();
  const int died = absl::StrContains(d.AgentLog(kNode2), "crash point reached") ? kNode2 : kNode3;
  ASSERT_TRUE(absl::StrContains(d.AgentLog(died), "crash point reached"));
  auto mounted = [&](int i) {
    int n = 0;
    auto st = d.cluster().Status(i);
    EXPECT_TRUE(st.ok());
    for (const auto& u : st->units()) n += u.recovery_database() ? 1 : 0;
    return n;
  };
  EXPECT_EQ(mounted(died), 1) << "the dead attempt's Recovery Database is still mounted";
  EXPECT_LT(MailboxItems(d, kNode1, 6).size(), mailbox6.size());

  for (int i : {kNode2, kNode3}) {
    d.KillAgent(i);
    ASSERT_OK(d.StartAgent(i));
  }
  ASSERT_OK(d.WaitReporting());
  auto [exit_code, job] = RestoreItems(d, {"--mailbox", "6", "--into-production"});
  ASSERT_EQ(exit_code, 0) << job.DebugString();
  EXPECT_EQ(job.plan().active_node(), absl::StrCat("node", died + 1));
  EXPECT_GT(job.plan().item_result().counts().skipped_identical(), 0u);
  EXPECT_EQ(job.plan().item_result().counts().copied() +
                job.plan().item_result().counts().skipped_identical(),
            30u);
  EXPECT_EQ(MailboxItems(d, kNode1, 6), mailbox6);
  EXPECT_EQ(mounted(died), 0);
  EXPECT_THAT(d.AgentLog(died), HasSubstr("left by an earlier item restore"));

  // A folder an item restore left on disk goes when mailstored starts.
  const std::string leftover =
      d.cluster().node(kNode3).config.data_root() + "/rdb/DB02-ITEMS-20260101T000000-abcdef";
  d.cluster().KillNode(kNode3);
  ASSERT_OK(CreateDirectories(leftover));
  ASSERT_OK(d.cluster().StartNode(kNode3));
  EXPECT_FALSE(PathExists(leftover));
}

}  // namespace
}  // namespace dagvault::testing
