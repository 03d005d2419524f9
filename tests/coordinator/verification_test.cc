// Restore verification with real processes (issue 20 §2): a coordinator,
// three agents and three mailstored nodes. A good chain verifies on a node
// without production, a backup of the unit runs beside the verification,
// and the result shows per restore point; a damaged pack in the repository
// fails the verification, naming the chunk and the backup, and raises
// DV1010.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

std::pair<int, v1::JobInfo> Verify(Deployment& d, std::vector<std::string> args) {
  args.insert(args.begin(), {"restore", "verify", "--unit", "DB02"});
  return JobCommand(d, args);
}

TEST(DeploymentVerification, AGoodChainVerifiesOffProductionWhileABackupOfTheUnitRunsBesideIt) {
  // Each piece's restore is slowed, so that the verification is surely
  // still running when the backup starts and ends.
  Deployment d(Options({{"DAGVAULT_DELAY_AT", "agent.restore.step:8000"}}), "verify");
  ASSERT_OK(d.Start());
  const v1::JobInfo full = LoadAndBackUp(d, 1, 0, 60, "full");
  const v1::JobInfo incremental = LoadAndBackUp(d, 2, 0, 30, "incremental");
  ASSERT_EQ(incremental.state(), v1::JOB_SUCCEEDED);

  const absl::Time started = absl::Now();
  auto [exit_code, verification] = Verify(d, {});
  ASSERT_EQ(exit_code, 0) << verification.DebugString() << d.CoordinatorLog();
  // The verification holds no lease: a backup of the unit starts now, and
  // ends, while it runs.
  Load(d, kNode1, 3, 0, 10);
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  const v1::JobInfo backup = Start(d, {"--unit", "DB02", "--type", "incremental"});
  auto running = d.Job(verification.id());
  ASSERT_OK(running);
  EXPECT_FALSE(running->state() == v1::JOB_SUCCEEDED || running->state() == v1::JOB_FAILED)
      << running->DebugString();
  auto backed_up = d.WaitJob(backup.id());
  ASSERT_OK(backed_up);
  EXPECT_EQ(backed_up->state(), v1::JOB_SUCCEEDED) << backed_up->reason();

  auto ended = d.WaitJob(verification.id(), absl::Minutes(3));
  ASSERT_OK(ended);
  const absl::Duration took = absl::Now() - started;
  ASSERT_EQ(ended->state(), v1::JOB_SUCCEEDED) << ended->DebugString() << d.CoordinatorLog();
  const v1::RestoreVerification& v = ended->plan().verification();
  EXPECT_TRUE(v.passed()) << v.DebugString();
  // The newest restore point when it started: the Incremental's end.
  ASSERT_EQ(v.manifests_size(), 2);
  EXPECT_EQ(v.manifests(0), full.manifest());
  EXPECT_EQ(v.manifests(1), incremental.manifest());
  EXPECT_GT(v.files(), 2u);
  ASSERT_EQ(v.databases_size(), 1);
  EXPECT_EQ(v.databases(0).database(), "DB02");
  EXPECT_EQ(v.databases(0).items(), 90u);
  EXPECT_EQ(v.databases(0).sampled_items(), 32u);
  EXPECT_EQ(v.databases(0).sha256().size(), 64u);
  EXPECT_GT(v.databases(0).pages(), 2u);
  EXPECT_TRUE(v.recovery_database_removed());
  for (const auto& step : ended->plan().steps()) {
    EXPECT_EQ(step.state(), v1::STEP_DONE) << step.DebugString();
  }
  // node1 carries the mounted active copies: a node without one ran it.
  EXPECT_NE(v.node(), "node1");
  ExpectNoRecoveryDatabase(d, NodeIndexOf(v.node()));
  std::cerr << "restore verification of DB02: " << v.files() << " files, " << v.bytes()
            << " bytes, " << v.databases(0).items() << " items, restore " << v.restore_us() / 1e6
            << " s (with 2 x 8 s of injected delay), checks " << v.check_us() / 1e6 << " s, job "
            << absl::FormatDuration(took) << "\n";

  // chain show marks the restore point and lists the verification.
  ProcessResult chains = d.Cli({"chain", "show", "--unit", "DB02"});
  ASSERT_EQ(chains.exit_code, 0) << chains.err;
  std::cerr << chains.out << d.Cli({"job", "show", verification.id()}).out;
  EXPECT_THAT(chains.out, HasSubstr("(verified)"));
  EXPECT_THAT(chains.out, HasSubstr(absl::StrCat("verified ", incremental.manifest())));

  // The same restore point again: the same content, compared with the
  // first verification's digests.
  auto [again_exit, again] = Verify(d, {"--to-generation", absl::StrCat(v.generation()), "--wait"});
  ASSERT_EQ(again_exit, 0) << again.DebugString();
  EXPECT_TRUE(again.plan().verification().passed()) << again.plan().verification().DebugString();
  ASSERT_EQ(again.plan().verification().databases_size(), 1);
  EXPECT_EQ(again.plan().verification().databases(0).sha256(), v.databases(0).sha256());

  // A verification cancelled part-way proves nothing either way: recorded
  // as inconclusive, no DV1010, and the restore point keeps its mark.
  auto [cancel_exit, cancelled] = Verify(d, {});
  ASSERT_EQ(cancel_exit, 0) << cancelled.DebugString();
  ProcessResult cancel = d.Cli({"job", "cancel", cancelled.id()});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  auto cancel_ended = d.WaitJob(cancelled.id(), absl::Minutes(2));
  ASSERT_OK(cancel_ended);
  EXPECT_EQ(cancel_ended->state(), v1::JOB_CANCELLED) << cancel_ended->DebugString();
  EXPECT_TRUE(cancel_ended->plan().verification().inconclusive())
      << cancel_ended->plan().verification().DebugString();
  EXPECT_FALSE(cancel_ended->plan().verification().passed());
  EXPECT_THAT(d.CoordinatorLog(), ::testing::Not(HasSubstr("DV1010")));

  // Never on production when asked.
  ProcessResult refused =
      d.Cli({"restore", "verify", "--unit", "DB02", "--node", "node1", "--off-production"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("carries the mounted active copy of"));
}

TEST(DeploymentVerification, ADamagedPackFailsItNamingTheChunkAndTheBackupAndRaisesAnEvent) {
  Deployment d(Options(), "verify-damage");
  ASSERT_OK(d.Start());
  const v1::JobInfo full = LoadAndBackUp(d, 1, 0, 60, "full");
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED);
  // Every pack the Full wrote gets one flipped byte, in its middle.
  int damaged = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(d.repo() + "/packs")) {
    if (!e.is_regular_file()) continue;
    auto bytes = ReadFileToString(e.path().string());
    ASSERT_OK(bytes);
    (*bytes)[bytes->size() / 2] ^= 0x40;
    ASSERT_OK(WriteFileAtomically(e.path().string(), *bytes, 0600));
    ++damaged;
  }
  ASSERT_GT(damaged, 0);

  auto [exit_code, job] = Verify(d, {"--wait"});
  EXPECT_NE(exit_code, 0);
  EXPECT_EQ(job.state(), v1::JOB_FAILED) << job.DebugString();
  const v1::RestoreVerification& v = job.plan().verification();
  EXPECT_FALSE(v.passed());
  ASSERT_FALSE(v.problems().empty()) << job.DebugString();
  EXPECT_THAT(v.problems(0), HasSubstr("chunk "));
  EXPECT_THAT(v.problems(0), HasSubstr("authentication failed"));
  EXPECT_THAT(v.problems(0), HasSubstr(absl::StrCat("backup ", full.manifest())));
  EXPECT_THAT(job.reason(), HasSubstr("restore verification of unit DB02 failed"));
  EXPECT_EQ(job.plan().steps(0).state(), v1::STEP_FAILED);
  EXPECT_EQ(job.plan().steps(2).state(), v1::STEP_DONE);
  EXPECT_TRUE(v.recovery_database_removed());
  ExpectNoRecoveryDatabase(d, NodeIndexOf(v.node()));
  EXPECT_THAT(d.CoordinatorLog(), HasSubstr("DV1010"));
  ProcessResult chains = d.Cli({"chain", "show", "--unit", "DB02"});
  std::cerr << "chain show after the failed verification:\n" << chains.out;
  EXPECT_THAT(chains.out, HasSubstr("(VERIFICATION FAILED)"));
  EXPECT_THAT(chains.out, HasSubstr("authentication failed"));
}

}  // namespace
}  // namespace dagvault::testing
