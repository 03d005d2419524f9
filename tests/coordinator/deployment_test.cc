// The coordinator, agents, mailstored and the command line as real
// processes over mutual TLS (issue 6): source selection, leases, failover,
// restart reconciliation, cross-server chains and their breaks,
// certificate identity, and catalog rebuild.
#include "tests/coordinator/deployment.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/text_config.h"
#include "common/tls.h"
#include "coordinator/catalog/postgres_test_util.h"
#include "coordinator/etcd/etcd_client.h"
#include "coordinator/etcd/etcd_test_cluster.h"
#include "repository/repository.h"
#include "repository/repository_test_util.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

TEST(Deployment, SourceSelectionFollowsTheModeAndSaysWhyNothingQualifies) {
  Deployment d(Options(), "selection");
  ASSERT_OK(d.Start());
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));

  // passive-then-active (the default): a Healthy passive copy.
  v1::JobInfo full = BackupWait(d, {"--unit", "DB02", "--type", "full"});
  EXPECT_EQ(full.state(), v1::JOB_SUCCEEDED) << full.reason();
  EXPECT_THAT(LastNode(full), ::testing::AnyOf("node2", "node3"));
  EXPECT_EQ(full.attempts(0).writer_instance(), "Exchange Replication Service");

  // active-only: the active copy, through the Store writer.
  v1::JobInfo active =
      BackupWait(d, {"--unit", "DB02", "--type", "incremental", "--source-mode", "active-only"});
  EXPECT_EQ(active.state(), v1::JOB_SUCCEEDED) << active.reason();
  EXPECT_EQ(LastNode(active), "node1");
  EXPECT_EQ(active.attempts(0).writer_instance(), "Exchange Information Store");

  // passive-only with no healthy passive copy: refused, with each copy's reason.
  ASSERT_OK(d.cluster().Admin(kNode2, "suspend", "DB02"));
  ASSERT_OK(d.cluster().Admin(kNode3, "suspend", "DB02"));
  ASSERT_TRUE(WaitCopyState(d, "DB02", "node2", v1::SUSPENDED));
  ASSERT_TRUE(WaitCopyState(d, "DB02", "node3", v1::SUSPENDED));
  // The operator's table lists the copies that need attention.
  ProcessResult table = d.Cli({"status"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("Suspended"));
  EXPECT_THAT(table.out, HasSubstr("copies: 4 of 6 Healthy or Mounted; 4 of those not listed"));
  EXPECT_THAT(table.out, HasSubstr("leases: none"));
  ProcessResult refused = d.Cli({"backup", "start", "--unit", "DB02", "--type", "incremental",
                                 "--source-mode", "passive-only"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.out + refused.err,
              HasSubstr("no copy of DB02 qualifies as a backup source (mode passive-only)"));
  EXPECT_THAT(refused.out, HasSubstr("node1: "));
  EXPECT_THAT(refused.out, HasSubstr("node2: "));
  EXPECT_THAT(refused.out, HasSubstr("node3: "));
  EXPECT_THAT(refused.out, HasSubstr("Suspended"));
  // The refused job is on record, failed, with the reasons; no lease is held.
  v1::ListJobsResponse jobs;
  ASSERT_OK(d.CliJson({"job", "list", "--unit", "DB02"}, &jobs));
  ASSERT_GE(jobs.jobs_size(), 3);
  EXPECT_EQ(jobs.jobs(0).state(), v1::JOB_FAILED);
  EXPECT_THAT(jobs.jobs(0).reason(), HasSubstr("Suspended"));
  EXPECT_EQ(jobs.jobs(0).attempts_size(), 0);
  auto status = d.Status();
  ASSERT_OK(status.status());
  EXPECT_EQ(status->leases_size(), 0);

  // catalog rebuild from the repository reproduces the backup list.
  v1::ListBackupsResponse before, after;
  ASSERT_OK(d.CliJson({"backup", "list"}, &before));
  ASSERT_EQ(before.backups_size(), 2);
  ProcessResult rebuilt = d.Cli({"catalog", "rebuild", "--repo", d.repo()});
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.err;
  EXPECT_THAT(rebuilt.out, HasSubstr("2 backups"));
  ASSERT_OK(d.CliJson({"backup", "list"}, &after));
  ASSERT_EQ(after.backups_size(), before.backups_size());
  for (int i = 0; i < before.backups_size(); ++i) {
    EXPECT_EQ(after.backups(i).DebugString(), before.backups(i).DebugString());
  }
  // Policies: checked when set, stored, listed with their next runs.
  ProcessResult bad =
      d.Cli({"policy", "set", "--name", "nightly", "--unit", "DB02", "--full", "0 1 * * funday"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("--full: schedule \"0 1 * * funday\": field 5 (day of week)"));
  ProcessResult good =
      d.Cli({"policy", "set", "--name", "nightly", "--unit", "DB02", "--unit", "SG01", "--full",
             "0 1 * * sun", "--incremental", "0 1 * * mon-sat", "--keep-chains", "2"});
  ASSERT_EQ(good.exit_code, 0) << good.err;
  EXPECT_THAT(good.out, HasSubstr("retention: the newest 2 chains"));
  ProcessResult clash =
      d.Cli({"policy", "set", "--name", "hourly", "--unit", "SG01", "--incremental", "0 * * * *"});
  EXPECT_EQ(clash.exit_code, 1);
  EXPECT_THAT(clash.err, HasSubstr("unit SG01 is already in policy \"nightly\""));
  v1::ListPoliciesResponse policies;
  ASSERT_OK(d.CliJson({"policy", "list"}, &policies));
  ASSERT_EQ(policies.policies_size(), 1);
  EXPECT_GT(policies.policies(0).next_full_us(), absl::ToUnixMicros(absl::Now()));
  ASSERT_EQ(d.Cli({"policy", "remove", "nightly"}).exit_code, 0);
  ProcessResult gone = d.Cli({"policy", "show", "nightly"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("no policy named \"nightly\" (there are: none)"));
}

TEST(Deployment, ThePreferredListIsHonouredAndTwoStartsForOneUnitRunOneRefuseTheOther) {
  // Slow transfers, so that the first backup is still running.
  Deployment d(Options({{"DAGVAULT_DELAY_AT", "agent.backup.segment_read:300"}}), "prefer");
  ASSERT_OK(d.Start());
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  v1::JobInfo preferred = BackupWait(d, {"--unit", "DB02", "--type", "full", "--prefer", "node3"});
  EXPECT_EQ(preferred.state(), v1::JOB_SUCCEEDED) << preferred.reason();
  EXPECT_EQ(LastNode(preferred), "node3");

  ProcessResult a, b;
  std::thread ta([&] {
    a = d.Cli({"backup", "start", "--unit", "DB02", "--type", "incremental"});
  });
  std::thread tb([&] {
    b = d.Cli({"backup", "start", "--unit", "DB02", "--type", "incremental"});
  });
  ta.join();
  tb.join();
  EXPECT_EQ((a.exit_code == 0) + (b.exit_code == 0), 1) << a.out << a.err << b.out << b.err;
  const ProcessResult& loser = a.exit_code == 0 ? b : a;
  EXPECT_EQ(loser.exit_code, 1);
  EXPECT_THAT(loser.err, HasSubstr("unit DB02 is being backed up: job backup-"));
  EXPECT_THAT(loser.err, HasSubstr("holds its backup-in-progress lease"));
  v1::ListJobsResponse jobs;
  ASSERT_OK(d.CliJson({"job", "list", "--unit", "DB02"}, &jobs));
  ASSERT_EQ(jobs.jobs_size(), 2);  // the refused start left no job
  auto done = d.WaitJob(jobs.jobs(0).id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->reason();
  auto status = d.Status();
  ASSERT_OK(status.status());
  EXPECT_EQ(status->leases_size(), 0);
}

TEST(Deployment, ANodeActsOnlyUnderItsOwnCertificateAndTheAdminApiNeedsAPerson) {
  Deployment d(Options(), "certs");
  ASSERT_OK(d.Start());
  // node2's agent presenting node1's certificate.
  d.KillAgent(kNode2);
  v1::AgentConfig forged = d.AgentConfigOf(kNode2);
  forged.mutable_tls()->set_cert_file(d.certs() + "/node1.crt");
  forged.mutable_tls()->set_key_file(d.certs() + "/node1.key");
  const std::string config = d.WriteAgentConfig(kNode2, forged);
  Subprocess impostor({BinaryPath("dagvault-agent"), "--config", config}, {},
                      d.cluster().root() + "/impostor.log");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto log = ReadFileToString(d.cluster().root() + "/impostor.log.err");
        return log.ok() && log->find("refused") != std::string::npos;
      },
      absl::Seconds(20)));
  auto log = ReadFileToString(d.cluster().root() + "/impostor.log.err");
  EXPECT_THAT(
      *log, HasSubstr("the agent registers as node \"node2\" but its certificate is node1 (node)"));
  impostor.Kill(15);
  impostor.Wait();
  auto status = d.Status();
  ASSERT_OK(status.status());
  for (const auto& n : status->nodes()) {
    if (n.node() == "node2") {
      EXPECT_FALSE(n.reporting());
    }
  }

  // mailstored's replication port takes only its peer nodes' certificates.
  v1::TlsFiles admin_files;
  admin_files.set_ca_file(d.certs() + "/ca.crt");
  admin_files.set_cert_file(d.certs() + "/admin.crt");
  admin_files.set_key_file(d.certs() + "/admin.key");
  auto admin_credentials = MakeChannelCredentials(admin_files, false, "test",
                                                  {.role = kRoleNode, .common_name = "node1"});
  ASSERT_OK(admin_credentials.status());
  auto replication = v1::Replication::NewStub(grpc::CreateChannel(
      d.cluster().node(kNode1).config.replication_listen(), *admin_credentials));
  v1::CopyStatusRequest request;
  request.set_unit("DB02");
  v1::CopyStatus copy;
  grpc::Status as_admin = replication->GetCopyStatus(Deadline().get(), request, &copy);
  EXPECT_EQ(as_admin.error_code(), grpc::StatusCode::UNAUTHENTICATED) << as_admin.error_message();
  // ... and it does answer a peer (the lab replicates over mutual TLS).
  ASSERT_OK(d.cluster().Copy(kNode2, "DB02").status());

  // A node's certificate does not open the admin API.
  ProcessResult as_node = d.Cli({"status", "--cert-name", "node1"});
  EXPECT_EQ(as_node.exit_code, 1);
  EXPECT_THAT(as_node.err, HasSubstr("GetStatus needs a person's certificate"));
  EXPECT_THAT(as_node.err, HasSubstr("node1 (node)"));
  // A client without a certificate does not get through TLS at all.
  auto anonymous = RunProcess({BinaryPath("dagvault"), "status", "--coordinator",
                               d.coordinator_address(), "--insecure-dev"});
  EXPECT_EQ(anonymous.exit_code, 1) << anonymous.out;
  // An agent refuses a "coordinator" whose certificate is a node's.
  auto port = mailstore::PickFreePorts("127.0.0.1", 1);
  ASSERT_OK(port.status());
  v1::CoordinatorConfig fake;
  fake.set_listen(absl::StrCat("127.0.0.1:", (*port)[0]));
  fake.mutable_tls()->set_ca_file(d.certs() + "/ca.crt");
  fake.mutable_tls()->set_cert_file(d.certs() + "/node3.crt");
  fake.mutable_tls()->set_key_file(d.certs() + "/node3.key");
  fake.set_catalog(d.cluster().root() + "/fake-catalog.db");
  ASSERT_OK(WriteFileAtomically(d.cluster().root() + "/fake.conf", ToTextConfig(fake)));
  Subprocess fake_coordinator(
      {BinaryPath("dagvault-coordinator"), "--config", d.cluster().root() + "/fake.conf"}, {},
      d.cluster().root() + "/fake.log");
  v1::AgentConfig misled = d.AgentConfigOf(kNode2);
  misled.set_coordinator(fake.listen());
  Subprocess misled_agent(
      {BinaryPath("dagvault-agent"), "--config", d.WriteAgentConfig(kNode2, misled)}, {},
      d.cluster().root() + "/misled.log");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto text = ReadFileToString(d.cluster().root() + "/misled.log.err");
        return text.ok() && text->find("expected a coordinator") != std::string::npos;
      },
      absl::Seconds(20)));
  EXPECT_THAT(*ReadFileToString(d.cluster().root() + "/misled.log.err"),
              HasSubstr("presents the certificate of node3 (node), expected a coordinator"));
  // So does the command line, before it sends or shows anything.
  ProcessResult misled_cli = RunProcess(
      {BinaryPath("dagvault"), "status", "--coordinator", fake.listen(), "--certs", d.certs()});
  EXPECT_EQ(misled_cli.exit_code, 1) << misled_cli.out;
  EXPECT_EQ(misled_cli.out, "");
  EXPECT_THAT(misled_cli.err,
              HasSubstr("presents the certificate of node3 (node), expected a coordinator"));
  misled_agent.Kill(15);
  misled_agent.Wait();
  fake_coordinator.Kill(15);
  fake_coordinator.Wait();

  // And an agent without TLS files cannot start.
  v1::AgentConfig plain = d.AgentConfigOf(kNode2);
  plain.clear_tls();
  auto no_tls =
      RunProcess({BinaryPath("dagvault-agent"), "--config", d.WriteAgentConfig(kNode2, plain)});
  EXPECT_EQ(no_tls.exit_code, 2);
  EXPECT_THAT(no_tls.err, HasSubstr("plain text needs an explicit --insecure-dev"));
}

// The lowest log generation each copy of `unit` still has.
std::map<std::string, uint32_t> LowestLogs(Deployment& d, const std::string& unit) {
  std::map<std::string, uint32_t> out;
  for (int i = 0; i < d.cluster().size(); ++i) {
    auto c = d.cluster().Copy(i, unit);
    if (c.ok()) out[c->node()] = c->lowest_log_generation();
  }
  return out;
}

TEST(Deployment, AKilledSourceAgentsLeaseExpiresAndTheJobRetriesOnceElsewhere) {
  // Each segment read takes 1.5 s: the backup is mid-transfer for seconds,
  // even on a loaded machine where each poll of the job takes a while.
  Deployment d(Options({{"DAGVAULT_DELAY_AT", "agent.backup.segment_read:1500"}}), "failover");
  ASSERT_OK(d.Start());
  LoadDb02(d);
  const auto lowest_before = LowestLogs(d, "DB02");

  const v1::JobInfo job = Start(d, {"--unit", "DB02", "--type", "full", "--prefer", "node3"});
  ASSERT_FALSE(job.id().empty());
  ASSERT_EQ(LastNode(job), "node3");
  auto moving = WaitTransferring(d, job.id());
  ASSERT_OK(moving.status());
  ASSERT_EQ(moving->state(), v1::JOB_TRANSFERRING) << moving->DebugString();
  d.KillAgent(kNode3);
  // Nothing is truncated by the attempt that died.
  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString() << d.CoordinatorLog();
  ASSERT_EQ(done->attempts_size(), 2) << done->DebugString();
  EXPECT_EQ(done->attempts(0).node(), "node3");
  EXPECT_EQ(done->attempts(0).state(), v1::JOB_FAILED);
  EXPECT_THAT(done->attempts(0).reason(),
              HasSubstr("its lease expired: node3 has not reported the job"));
  EXPECT_THAT(
      d.CoordinatorLog(),
      HasSubstr(absl::StrCat("[DV1005 lease_expired unit=DB02 job=", job.id(), " node=node3]")));
  EXPECT_EQ(done->attempts(1).node(), "node2");
  EXPECT_EQ(done->attempts(1).state(), v1::JOB_SUCCEEDED);
  bool retry_event = false;
  for (const auto& e : done->events()) {
    retry_event |=
        e.message().find("retrying once on the next qualifying copy") != std::string::npos;
  }
  EXPECT_TRUE(retry_event);
  // One backup: the dead attempt wrote no manifest.
  v1::ListBackupsResponse backups;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &backups));
  ASSERT_EQ(backups.backups_size(), 1);
  EXPECT_EQ(backups.backups(0).manifest(), done->manifest());
  EXPECT_EQ(backups.backups(0).source_node(), "node2");
  auto repo = repository::Repository::Open(d.repo(), repository::testing::TestPassphrase());
  ASSERT_OK(repo.status());
  auto manifests = repo->ListManifests();
  ASSERT_OK(manifests.status());
  EXPECT_EQ(manifests->size(), 1u);
  // Whatever was truncated, it was after the verified backup, and only up
  // to its high generation.
  for (const auto& [node, lowest] : LowestLogs(d, "DB02")) {
    EXPECT_LE(lowest, backups.backups(0).high_generation() + 1) << node;
    EXPECT_GE(lowest, lowest_before.at(node)) << node;
  }
  auto status = d.Status();
  ASSERT_OK(status.status());
  EXPECT_EQ(status->leases_size(), 0);

  // node3 comes back; it failed last time, so with node3 preferred first it
  // is still picked after node2.
  ASSERT_OK(d.StartAgent(kNode3));
  ASSERT_OK(d.WaitReporting());
  v1::JobInfo next =
      BackupWait(d, {"--unit", "DB02", "--type", "incremental", "--prefer", "node3,node2"});
  EXPECT_EQ(next.state(), v1::JOB_SUCCEEDED) << next.reason();
  EXPECT_EQ(LastNode(next), "node2");
}

// A coordinator killed in the middle of a Full: after its restart it takes
// the job back from its catalog and the backup is catalogued once, the
// lease released. `catalog`: the coordinator's catalog setting.
void KillTheCoordinatorMidBackup(const std::string& catalog, const std::string& tag,
                                 const v1::EtcdConfig& etcd = v1::EtcdConfig()) {
  DeploymentOptions options = Options({{"DAGVAULT_DELAY_AT", "agent.backup.segment_read:1500"}});
  // The agent must not fence its job while the coordinator restarts,
  // however slowly a loaded machine restarts it.
  options.lease_ttl_ms = 10000;
  options.catalog = catalog;
  options.etcd = etcd;
  Deployment d(options, tag);
  ASSERT_OK(d.Start());
  v1::JobInfo job;
  ASSERT_NO_FATAL_FAILURE(StartTransferringFull(d, &job));
  if (etcd.endpoints_size() > 0) {
    // The unit's lease is a key in etcd, and the assignment's token is the
    // deployment's base plus the key's create_revision.
    auto client = coordinator::EtcdClient::Connect(etcd);
    ASSERT_OK(client.status());
    etcdserverpb::RangeRequest range;
    range.set_key(etcd.prefix() + "leases/DB02");
    auto lease = (*client)->Range(range);
    ASSERT_OK(lease.status());
    ASSERT_EQ(lease->kvs_size(), 1);
    range.set_key(etcd.prefix() + "token-base");
    auto base = (*client)->Range(range);
    ASSERT_OK(base.status());
    ASSERT_EQ(base->kvs_size(), 1);
    uint64_t token_base = 0;
    ASSERT_TRUE(absl::SimpleAtoi(base->kvs(0).value(), &token_base));
    EXPECT_EQ(FencingTokenOf(job), token_base + lease->kvs(0).create_revision())
        << job.DebugString();
  }
  d.KillCoordinator();
  absl::SleepFor(absl::Seconds(1));
  ASSERT_OK(d.StartCoordinator());
  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString() << d.CoordinatorLog();
  EXPECT_EQ(done->attempts_size(), 1);  // the same attempt, not a second one
  bool restarted = false;
  for (const auto& e : done->events()) {
    restarted |= e.message().find("coordinator restarted") != std::string::npos;
  }
  EXPECT_TRUE(restarted);
  ASSERT_NO_FATAL_FAILURE(ExpectOneBackupOfAndNoLease(d, job.id()));
  // The catalog rebuilt from the repository lists the same backup.
  ProcessResult rebuilt = d.Cli({"catalog", "rebuild"});
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.out << rebuilt.err;
  v1::ListBackupsResponse backups;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &backups));
  ASSERT_EQ(backups.backups_size(), 1);
  EXPECT_EQ(backups.backups(0).manifest(), RepositoryManifests(d).front());
}

TEST(Deployment, ACoordinatorKilledMidBackupReconcilesTheJobAfterItsRestart) {
  KillTheCoordinatorMidBackup("", "restart");
}

// The same with the catalog in PostgreSQL (the test run's server, a
// database of its own): the embedded SQLite file and PostgreSQL keep the
// same promises.
TEST(Deployment, ACoordinatorOnPostgresKilledMidBackupReconcilesTheJobAfterItsRestart) {
  coordinator::testing::PostgresTestDatabase db;
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  KillTheCoordinatorMidBackup(db.conninfo(), "restart-pg");
}

// The highly available shape's engines (issue 18): leases in etcd (a
// private one-member cluster), the catalog in PostgreSQL when the run has
// one. The restarted coordinator finds the unit's lease in etcd, still
// alive, and the job finishes under it, once.
TEST(Deployment, ACoordinatorWithLeasesInEtcdKilledMidBackupFinishesTheJobUnderTheSameLease) {
  auto etcd = coordinator::SharedEtcdTestCluster();
  ASSERT_OK(etcd.status());
  coordinator::testing::PostgresTestDatabase db;
  KillTheCoordinatorMidBackup(db.conninfo(), "restart-etcd", (*etcd)->Config("/restart-etcd/"));
}

// Items, then a closed generation that every healthy copy replays.

TEST(Deployment, OneChainAcrossThreeServersBreaksWhereALossyActivationDivergedIt) {
  Deployment d(Options(), "chain");
  ASSERT_OK(d.Start());
  Load(d, kNode1, 1, 0, 50);
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  v1::JobInfo full =
      BackupWait(d, {"--unit", "DB02", "--type", "full", "--source-mode", "active-only"});
  ASSERT_EQ(LastNode(full), "node1");
  Load(d, kNode1, 1, 50, 50);
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  v1::JobInfo inc2 =
      BackupWait(d, {"--unit", "DB02", "--type", "incremental", "--prefer", "node2"});
  ASSERT_EQ(LastNode(inc2), "node2");
  Load(d, kNode1, 1, 100, 50);
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  v1::JobInfo inc3 =
      BackupWait(d, {"--unit", "DB02", "--type", "incremental", "--prefer", "node3"});
  ASSERT_EQ(LastNode(inc3), "node3");

  v1::ShowChainsResponse chains;
  ASSERT_OK(d.CliJson({"chain", "show", "--unit", "DB02"}, &chains));
  ASSERT_EQ(chains.chains_size(), 1) << chains.DebugString();
  const v1::ChainInfo& chain = chains.chains(0);
  EXPECT_FALSE(chain.broken()) << chain.broken_reason();
  EXPECT_EQ(chain.full().source_node(), "node1");
  ASSERT_EQ(chain.incrementals_size(), 2);
  EXPECT_EQ(chain.incrementals(0).source_node(), "node2");
  EXPECT_EQ(chain.incrementals(1).source_node(), "node3");
  ASSERT_EQ(chain.restore_points_size(), 3);
  EXPECT_EQ(chain.restore_points(2).generation(), chain.incrementals(1).high_generation());
  EXPECT_THAT(chains.next_incremental(), HasSubstr("Incremental after generation"));
  ProcessResult table = d.Cli({"chain", "show", "--unit", "DB02"});
  EXPECT_THAT(table.out, HasSubstr("chain 1 of DB02: valid"));

  // node2 stops copying; node1 takes more mail, closes generations and
  // backs them up; then node1 dies and node2 is activated with --lossy.
  auto before = d.cluster().Copy(kNode2, "DB02");
  ASSERT_OK(before.status());
  ASSERT_OK(d.cluster().Admin(kNode2, "suspend", "DB02"));
  ASSERT_OK(d.cluster().Admin(kNode3, "suspend", "DB02"));
  Load(d, kNode1, 1, 150, 50);
  Load(d, kNode1, 1, 200, 50);
  v1::JobInfo last =
      BackupWait(d, {"--unit", "DB02", "--type", "incremental", "--source-mode", "active-only"});
  ASSERT_EQ(last.state(), v1::JOB_SUCCEEDED) << last.reason();
  ASSERT_NO_FATAL_FAILURE(FailOverLossilyToNode2(d));
  auto activated = d.cluster().Copy(kNode2, "DB02");
  ASSERT_OK(activated.status());
  const uint32_t node2_had = activated->last_log_generation();
  Load(d, kNode2, 2, 0, 50);
  Load(d, kNode2, 2, 50, 50);
  Load(d, kNode2, 2, 100, 50);

  // The next Incremental finds the divergence: it fails, truncating
  // nothing, and the chain shows the break at that generation.
  v1::JobInfo found =
      BackupWait(d, {"--unit", "DB02", "--type", "incremental", "--source-mode", "active-only"},
                 /*expect_exit=*/1);
  EXPECT_EQ(found.state(), v1::JOB_FAILED);
  EXPECT_EQ(LastNode(found), "node2");
  EXPECT_THAT(found.reason(), HasSubstr("the next Incremental of DB02 becomes a Full"));
  ASSERT_OK(d.CliJson({"chain", "show", "--unit", "DB02"}, &chains));
  ASSERT_EQ(chains.chains_size(), 1);
  EXPECT_TRUE(chains.chains(0).broken());
  // The chain reaches its last backup's high generation on the old stream;
  // the first generation of the new stream after it does not join.
  v1::ListBackupsResponse backups;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &backups));
  ASSERT_EQ(backups.backups_size(), 4);
  const uint32_t chain_end = backups.backups(3).high_generation();
  EXPECT_EQ(backups.backups(3).manifest(), last.manifest());
  // node2 went on from a generation older than the chain's newest.
  EXPECT_LT(node2_had, chain_end);
  EXPECT_EQ(chains.chains(0).broken_at_generation(), chain_end + 1) << chains.DebugString();
  EXPECT_THAT(chains.chains(0).broken_reason(), HasSubstr("diverged"));
  EXPECT_THAT(chains.next_incremental(), HasSubstr("Full: the newest chain"));
  EXPECT_THAT(d.CoordinatorLog(), HasSubstr("[DV1004 chain_broken unit=DB02 job="));
  EXPECT_THAT(d.CoordinatorLog(),
              HasSubstr(absl::StrFormat("generation=0x%08X after=", chain_end + 1)));
  // Its restore points are still the backups before the break.
  EXPECT_EQ(chains.chains(0).restore_points_size(), 4);

  // The next requested Incremental is promoted to a Full, and says why.
  v1::JobInfo promoted =
      BackupWait(d, {"--unit", "DB02", "--type", "incremental", "--source-mode", "active-only"});
  EXPECT_EQ(promoted.state(), v1::JOB_SUCCEEDED) << promoted.reason();
  EXPECT_EQ(promoted.type(), v1::FULL);
  EXPECT_THAT(promoted.reason(), HasSubstr("requested Incremental promoted to Full"));
  EXPECT_THAT(promoted.reason(), HasSubstr("is broken at generation"));
  ASSERT_OK(d.CliJson({"chain", "show", "--unit", "DB02"}, &chains));
  ASSERT_EQ(chains.chains_size(), 2);
  EXPECT_FALSE(chains.chains(1).broken());
  EXPECT_EQ(chains.chains(1).full().source_node(), "node2");
}

TEST(Deployment, AnAgentCutOffFromTheCoordinatorForALeasePeriodStopsItsJob) {
  // Each segment read takes 2.5 s: the transfer outlasts the lease.
  Deployment d(Options({{"DAGVAULT_DELAY_AT", "agent.backup.segment_read:2500"}}), "fence");
  ASSERT_OK(d.Start());
  LoadDb02(d);
  const auto lowest_before = LowestLogs(d, "DB02");
  const v1::JobInfo job = Start(d, {"--unit", "DB02", "--type", "full", "--prefer", "node2"});
  ASSERT_FALSE(job.id().empty());
  ASSERT_OK(WaitTransferring(d, job.id()).status());
  d.KillCoordinator();
  // Longer than the lease (4 s): the agent must stop the job on its own.
  ASSERT_TRUE(WaitFor(
      [&] {
        return d.AgentLog(kNode2).find("its lease is gone, so the job is cancelled") !=
               std::string::npos;
      },
      absl::Seconds(20)))
      << d.AgentLog(kNode2);
  absl::SleepFor(absl::Seconds(1));
  ASSERT_OK(d.StartCoordinator());
  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_FAILED) << done->DebugString();
  EXPECT_THAT(done->reason(), HasSubstr("the coordinator was unreachable for the lease period"));
  // The writer session ended with failure: nothing truncated, the unit free.
  EXPECT_EQ(LowestLogs(d, "DB02"), lowest_before);
  v1::JobInfo next = BackupWait(d, {"--unit", "DB02", "--type", "full"});
  EXPECT_EQ(next.state(), v1::JOB_SUCCEEDED) << next.reason();
  EXPECT_EQ(next.attempts_size(), 1);
}

TEST(Deployment, ACancelledJobStopsOnItsNodeAndReleasesTheUnit) {
  Deployment d(Options({{"DAGVAULT_DELAY_AT", "agent.backup.segment_read:2000"}}), "cancel");
  ASSERT_OK(d.Start());
  LoadDb02(d);
  const auto lowest_before = LowestLogs(d, "DB02");
  const v1::JobInfo job = Start(d, {"--unit", "DB02", "--type", "full"});
  ASSERT_FALSE(job.id().empty());
  ASSERT_OK(WaitTransferring(d, job.id()).status());
  ProcessResult cancel = d.Cli({"job", "cancel", job.id()});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr("cancel requested"));
  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_CANCELLED) << done->DebugString();
  EXPECT_EQ(done->attempts_size(), 1);
  // The writer session ended with failure: nothing truncated, no backup.
  EXPECT_EQ(LowestLogs(d, "DB02"), lowest_before);
  v1::ListBackupsResponse backups;
  ASSERT_OK(d.CliJson({"backup", "list"}, &backups));
  EXPECT_EQ(backups.backups_size(), 0);
  auto status = d.Status();
  ASSERT_OK(status.status());
  EXPECT_EQ(status->leases_size(), 0);
  // Cancelling it again says it has ended.
  ProcessResult again = d.Cli({"job", "cancel", job.id()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("has already ended: cancelled"));
}

TEST(Deployment, ARestoreBesideProductionMountsTheRestorePointAsARecoveryDatabase) {
  Deployment d(Options(), "rdb");
  ASSERT_OK(d.Start());
  v1::JobInfo full = LoadAndBackUp(d, 1, 0, 60, "full");
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED);
  const std::string at_full = UnitDigest(d.cluster(), kNode1, "DB02");
  const absl::Time after_full = absl::Now();
  v1::JobInfo inc = LoadAndBackUp(d, 1, 60, 60, "incremental");
  ASSERT_EQ(inc.state(), v1::JOB_SUCCEEDED);
  const std::string at_inc = UnitDigest(d.cluster(), kNode1, "DB02");
  ASSERT_NE(at_full, at_inc);

  // To a time between the two backups, on node3: the Full's restore point.
  ProcessResult pit = d.Cli({"restore", "start", "--unit", "DB02", "--rdb", "DB02-PIT", "--node",
                             "node3", "--path", d.cluster().root() + "/rdb/pit", "--to-time",
                             absl::FormatTime(absl::RFC3339_full, after_full, absl::UTCTimeZone()),
                             "--wait", "--json"});
  ASSERT_EQ(pit.exit_code, 0) << pit.out << pit.err << d.CoordinatorLog();
  v1::JobInfo job;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(pit.out, &job).ok());
  EXPECT_EQ(job.kind(), v1::JOB_RESTORE);
  EXPECT_EQ(LastNode(job), "node3");
  EXPECT_EQ(job.manifest(), full.manifest());
  bool said = false;
  for (const auto& e : job.events()) {
    said |= e.message().find("as recovery database DB02-PIT") != std::string::npos;
  }
  EXPECT_TRUE(said) << job.DebugString();
  EXPECT_EQ(UnitDigest(d.cluster(), kNode3, "DB02", "DB02-PIT"), at_full);

  // The newest restore point, on node2, while production keeps taking mail.
  EXPECT_EQ(UnitDigest(d.cluster(), kNode1, "DB02"), at_inc);  // untouched by the first
  std::atomic<bool> writing{true};
  uint64_t written = 0;
  absl::Status write_error;
  std::thread writer([&] {
    while (writing && write_error.ok()) {
      write_error = d.cluster().Put(kNode1, "DB02", "DB02", 7, written, ItemValue(7, written));
      if (write_error.ok()) ++written;
    }
  });
  ProcessResult latest =
      d.Cli({"restore", "start", "--unit", "DB02", "--rdb", "DB02-NOW", "--node", "node2", "--path",
             d.cluster().root() + "/rdb/now", "--to", "latest", "--wait"});
  writing = false;
  writer.join();
  ASSERT_EQ(latest.exit_code, 0) << latest.out << latest.err;
  EXPECT_TRUE(write_error.ok()) << "production refused mail during the restore: " << write_error;
  EXPECT_GT(written, 0u);
  EXPECT_EQ(UnitDigest(d.cluster(), kNode2, "DB02", "DB02-NOW"), at_inc);
  // Production has every item written meanwhile, and stayed mounted.
  for (uint64_t item : {uint64_t{0}, written - 1}) {
    auto got = d.cluster().Get(kNode1, "DB02", "DB02", 7, item);
    ASSERT_OK(got.status());
    EXPECT_EQ(got->value_or(""), ItemValue(7, item)) << "item " << item;
  }
  auto copy = d.cluster().Copy(kNode1, "DB02");
  ASSERT_OK(copy.status());
  EXPECT_EQ(copy->state(), v1::MOUNTED);

  // Mode node, aimed at node1 where the unit is mounted: it becomes a
  // Recovery Database beside it, and production stays mounted.
  ProcessResult beside = d.Cli({"restore", "start", "--unit", "DB02", "--node", "node1", "--to",
                                "latest", "--wait", "--json"});
  ASSERT_EQ(beside.exit_code, 0) << beside.out << beside.err;
  v1::JobInfo beside_job;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(beside.out, &beside_job).ok());
  std::string rdb;
  const std::string prefix = "as recovery database ";
  for (const auto& e : beside_job.events()) {
    const size_t at = e.message().find(prefix + "DB02-RDB-");
    if (at == std::string::npos) continue;
    const size_t from = at + prefix.size();
    rdb = e.message().substr(from, e.message().find(',', from) - from);
  }
  ASSERT_FALSE(rdb.empty()) << beside_job.DebugString();
  EXPECT_EQ(UnitDigest(d.cluster(), kNode1, "DB02", rdb), at_inc);
  copy = d.cluster().Copy(kNode1, "DB02");
  ASSERT_OK(copy.status());
  EXPECT_EQ(copy->state(), v1::MOUNTED);

  // Before the first backup there is nothing to restore, and says so.
  ProcessResult early =
      d.Cli({"restore", "start", "--unit", "DB02", "--rdb", "DB02-OLD", "--node", "node2", "--path",
             d.cluster().root() + "/rdb/old", "--to-time", "2001-01-01 00:00:00"});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_THAT(early.err, HasSubstr("has no restore point at or before 2001-01-01 00:00:00 UTC"));
  // A Recovery Database needs its node and path, and says so.
  ProcessResult half = d.Cli({"restore", "start", "--unit", "DB02", "--rdb", "DB02-X"});
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_THAT(half.err, HasSubstr("a Recovery Database needs --rdb NAME --node N --path DIR"));
}

// Jobs of `units` created at or after `since`, oldest first.
std::vector<v1::JobInfo> JobsSince(Deployment& d, absl::Time since) {
  std::vector<v1::JobInfo> out;
  v1::ListJobsResponse jobs;
  if (!d.CliJson({"job", "list"}, &jobs).ok()) return out;
  for (const auto& j : jobs.jobs()) {
    if (absl::FromUnixMicros(j.created_us()) >= since) out.insert(out.begin(), j);
  }
  return out;
}

absl::Time NextMinute(absl::Time t) {
  return absl::FromCivil(absl::ToCivilMinute(t, absl::UTCTimeZone()) + 1, absl::UTCTimeZone());
}

TEST(Deployment, AScheduleRunsOnTimeWithinItsLimitAndARunMissedWhileDownRunsOnce) {
  // Each segment read takes 300 ms: two backups at once would overlap.
  Deployment d(Options({{"DAGVAULT_DELAY_AT", "agent.backup.segment_read:300"}}), "schedule");
  ASSERT_OK(d.Start());
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  for (const char* unit : {"DB02", "SG01"}) {
    v1::JobInfo full = BackupWait(d, {"--unit", unit, "--type", "full"});
    ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED) << full.reason();
  }
  ProcessResult set = d.Cli({"policy", "set", "--name", "minutely", "--unit", "DB02", "--unit",
                             "SG01", "--incremental", "* * * * *", "--max-jobs", "1"});
  ASSERT_EQ(set.exit_code, 0) << set.err;

  // At the next whole minute, an Incremental of each unit, one at a time.
  const absl::Time minute = NextMinute(absl::Now());
  std::vector<v1::JobInfo> scheduled;
  std::string waiting;  // what `status` said the queued backup waits for
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::SleepFor(absl::Milliseconds(500));  // a command line per poll: not too often
        if (auto status = d.Status(); status.ok()) {
          for (const auto& q : status->queued()) {
            if (!q.waiting_for().empty()) waiting = q.waiting_for();
          }
        }
        scheduled = JobsSince(d, minute - absl::Seconds(1));
        return scheduled.size() == 2 && !scheduled[1].attempts().empty();
      },
      absl::Seconds(150)))
      << d.CoordinatorLog();
  EXPECT_THAT(waiting, HasSubstr("the deployment runs 1 backups (policy limit 1)"));
  EXPECT_LT(absl::FromUnixMicros(scheduled[0].created_us()) - minute, absl::Seconds(5))
      << "started late";
  std::vector<v1::JobInfo> done;
  for (const auto& j : scheduled) {
    auto finished = d.WaitJob(j.id());
    ASSERT_OK(finished.status());
    EXPECT_EQ(finished->state(), v1::JOB_SUCCEEDED) << finished->DebugString();
    EXPECT_EQ(finished->type(), v1::INCREMENTAL);
    bool by_policy = false;
    for (const auto& e : finished->events()) {
      by_policy |= e.message().find("scheduled by policy minutely") != std::string::npos;
    }
    EXPECT_TRUE(by_policy) << finished->DebugString();
    done.push_back(*finished);
  }
  EXPECT_NE(done[0].unit(), done[1].unit());
  // --max-jobs 1: the second started only after the first ended.
  EXPECT_GE(done[1].attempts(0).started_us(), done[0].attempts(0).ended_us())
      << done[0].DebugString() << done[1].DebugString();

  // Down across a firing: at start-up the missed run runs once per unit.
  d.KillCoordinator();
  const absl::Time missed = NextMinute(absl::Now());
  absl::SleepFor(missed - absl::Now() + absl::Seconds(2));
  const absl::Time restarted = absl::Now();
  ASSERT_OK(d.StartCoordinator());
  const absl::Time next = NextMinute(restarted);
  std::vector<v1::JobInfo> after;
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::SleepFor(absl::Milliseconds(500));
        after = JobsSince(d, restarted);
        return after.size() >= 2;
      },
      next - absl::Now() - absl::Seconds(1)))
      << d.CoordinatorLog();
  std::set<std::string> units;
  for (const auto& j : after) {
    EXPECT_LT(absl::FromUnixMicros(j.created_us()), next) << "not the missed run";
    units.insert(j.unit());
  }
  EXPECT_EQ(after.size(), 2u);
  EXPECT_EQ(units.size(), 2u);
  for (const auto& j : after) {
    auto finished = d.WaitJob(j.id());
    ASSERT_OK(finished.status());
    bool missed_minute = false;
    for (const auto& e : finished->events()) {
      missed_minute |= e.message().find(FormatUtc(missed)) != std::string::npos;
    }
    EXPECT_TRUE(missed_minute) << "due " << FormatUtc(missed) << ": " << finished->DebugString();
  }
  ASSERT_EQ(d.Cli({"policy", "remove", "minutely"}).exit_code, 0);
}

}  // namespace
}  // namespace dagvault::testing
