// RPO as a policy, end to end (issue 16, docs/monitoring.md): `dagvault
// status` leads with the units outside their RPO and why, and fails (exit 1)
// while a unit is critical or was never backed up, in text and in --json;
// the coordinator's /metrics, scraped over HTTPS with a client certificate,
// carries the same states and the jobs' results.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/coordinator/metrics_scrape.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

// DB02's protection from `status --json` (and the command's exit code).
std::pair<int, v1::UnitProtection> Protection(Deployment& d) {
  ProcessResult r = d.Cli({"status", "--unit", "DB02", "--json"});
  v1::ClusterStatus status;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &status, options).ok())
      << r.out << r.err;
  EXPECT_EQ(status.units_size(), 1) << r.out;
  return {r.exit_code, status.units_size() == 1 ? status.units(0) : v1::UnitProtection()};
}

// GET /metrics from the coordinator with the certificate `name` (empty:
// none); "" when refused.
std::string Scrape(Deployment& d, const std::string& name = "admin") {
  return ScrapeMetrics(d, d.metrics_address(), name);
}

TEST(DeploymentRpo, StatusLeadsWithUnitsOutsideTheirRpoSaysWhyAndFailsWhileOneIsCritical) {
  DeploymentOptions o = Options();
  o.metrics = true;
  Deployment d(o, "rpo");
  ASSERT_OK(d.Start());
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));

  // No policy: listed as such, and not a failure.
  ProcessResult none = d.Cli({"status"});
  EXPECT_EQ(none.exit_code, 0) << none.out << none.err;
  EXPECT_THAT(none.out, HasSubstr("DB02: no policy covers DB02"));
  EXPECT_THAT(none.out, HasSubstr("units: 0 of 2 within their RPO"));

  // An RPO of 20 s (critical past 30 s, grace 2 s: warning past 22 s,
  // critical past 32 s), passive copies only; the schedule never fires
  // during the test.
  ProcessResult set = d.Cli({"policy", "set", "--name", "tight", "--unit", "DB02", "--full",
                             "0 1 1 1 *", "--source-mode", "passive-only", "--rpo", "20s",
                             "--rpo-critical", "30s", "--rpo-grace", "2s"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_THAT(set.out, HasSubstr("RPO 20s: warning past the RPO, critical past 30s, grace 2s"));
  ProcessResult bad = d.Cli(
      {"policy", "set", "--name", "tight", "--unit", "DB02", "--full", "0 1 1 1 *", "--rpo", "6x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--rpo: \"6x\" is not a duration"));
  ProcessResult contradicting =
      d.Cli({"policy", "set", "--name", "tight", "--unit", "DB02", "--full", "0 1 1 1 *", "--rpo",
             "6s", "--rpo-warning", "10s", "--rpo-critical", "8s"});
  EXPECT_EQ(contradicting.exit_code, 1);
  EXPECT_THAT(contradicting.err, HasSubstr("rpo_warning (10s) is above rpo_critical (8s)"));

  // Never backed up: a failure, first in the table, with where a backup
  // would read from.
  ProcessResult never = d.Cli({"status"});
  EXPECT_EQ(never.exit_code, 1) << never.out;
  EXPECT_THAT(never.err, HasSubstr("1 unit is outside its RPO: DB02 (never backed up)"));
  EXPECT_THAT(never.out, HasSubstr("never backed up"));
  EXPECT_THAT(never.out, HasSubstr("DB02: no verified restore point"));
  auto [never_exit, never_json] = Protection(d);
  EXPECT_EQ(never_exit, 1);
  EXPECT_EQ(never_json.state(), v1::RPO_NEVER_BACKED_UP);
  EXPECT_EQ(never_json.policy(), "tight");
  EXPECT_THAT(never_json.next_source(), ::testing::AnyOf("node2", "node3"));
  EXPECT_EQ(never_json.rpo_seconds(), 20u);
  std::string scraped = Scrape(d);
  EXPECT_THAT(scraped,
              HasSubstr("dagvault_unit_rpo_state{unit=\"DB02\",state=\"never backed up\"} 1"));
  EXPECT_THAT(scraped, HasSubstr("dagvault_unit_rpo_state{unit=\"SG01\",state=\"not set\"} 1"));
  EXPECT_THAT(scraped, HasSubstr("dagvault_unit_rpo_seconds{unit=\"DB02\"} 20\n"));
  EXPECT_THAT(scraped, HasSubstr("dagvault_node_reporting{node=\"node3\"} 1\n"));
  EXPECT_THAT(scraped, HasSubstr("dagvault_copies{state=\"Healthy\"} "));
  EXPECT_THAT(scraped,
              HasSubstr("dagvault_certificate_expiry_timestamp_seconds{name=\"coordinator\"} "));
  EXPECT_EQ(Scrape(d, ""), "") << "a scrape without a certificate is refused";

  // A Full: ok, and every number traces to the backup behind it.
  const v1::JobInfo full =
      BackupWait(d, {"--unit", "DB02", "--type", "full", "--source-mode", "passive-only"});
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED) << full.reason();
  auto [ok_exit, ok] = Protection(d);
  EXPECT_EQ(ok_exit, 0);
  EXPECT_EQ(ok.state(), v1::RPO_OK);
  EXPECT_EQ(ok.newest_restore_point_manifest(), full.manifest());
  EXPECT_EQ(ok.newest_restore_point_node(), LastNode(full));
  EXPECT_LT(ok.newest_restore_point_age_seconds(), 20);
  EXPECT_EQ(ok.newest_full_us(), ok.newest_restore_point_us());
  EXPECT_EQ(ok.last_job(), full.id());
  EXPECT_EQ(ok.last_job_state(), v1::JOB_SUCCEEDED);
  scraped = Scrape(d);
  EXPECT_THAT(scraped, HasSubstr("dagvault_unit_rpo_state{unit=\"DB02\",state=\"ok\"} 1"));
  EXPECT_THAT(scraped, HasSubstr("dagvault_jobs_total{kind=\"backup\",result=\"succeeded\"} 1\n"));
  EXPECT_THAT(scraped, HasSubstr("dagvault_unit_last_backup_success{unit=\"DB02\"} 1\n"));
  EXPECT_THAT(scraped,
              HasSubstr(absl::StrCat("dagvault_unit_last_good_backup_source{unit=\"DB02\",node=\"",
                                     LastNode(full), "\"} 1\n")));
  EXPECT_THAT(scraped, HasSubstr("dagvault_unit_restore_point_age_seconds{unit=\"DB02\"} "));
  EXPECT_THAT(scraped,
              HasSubstr("dagvault_unit_last_good_backup_bytes{unit=\"DB02\",measure=\"read\"} "));

  // Past the warning level and its grace: warning, still exit 0.
  ASSERT_TRUE(
      WaitFor([&] { return Protection(d).second.state() == v1::RPO_WARNING; }, absl::Seconds(40)));
  ProcessResult warning = d.Cli({"status"});
  EXPECT_EQ(warning.exit_code, 0) << warning.err;
  EXPECT_THAT(warning.out, HasSubstr("old (RPO 20s)"));

  // The next backup fails (no passive copy qualifies): past critical, the
  // status names the failed job's reason and why no copy qualifies.
  FailAPassiveOnlyBackup(d);
  ASSERT_TRUE(
      WaitFor([&] { return Protection(d).second.state() == v1::RPO_CRITICAL; }, absl::Seconds(40)));
  auto [critical_exit, critical] = Protection(d);
  EXPECT_EQ(critical_exit, 1);
  EXPECT_EQ(critical.last_job_state(), v1::JOB_FAILED);
  EXPECT_THAT(critical.reason(), HasSubstr("the last backup, job "));
  EXPECT_THAT(critical.reason(), HasSubstr("no copy of DB02 qualifies"));
  EXPECT_EQ(critical.next_source(), "");
  EXPECT_THAT(critical.next_source_why(), HasSubstr("Suspended"));
  scraped = Scrape(d);
  EXPECT_THAT(scraped, HasSubstr("dagvault_unit_rpo_state{unit=\"DB02\",state=\"critical\"} 1"));
  EXPECT_THAT(scraped, HasSubstr("dagvault_jobs_total{kind=\"backup\",result=\"failed\"} 1\n"));
  EXPECT_THAT(scraped, HasSubstr("dagvault_unit_last_backup_success{unit=\"DB02\"} 0\n"));
  EXPECT_THAT(scraped, HasSubstr("dagvault_unit_backup_source_available{unit=\"DB02\"} 0\n"));
  ProcessResult table = d.Cli({"status"});
  EXPECT_EQ(table.exit_code, 1);
  EXPECT_THAT(table.err, HasSubstr("DB02 (critical)"));
  EXPECT_THAT(table.out, HasSubstr("critical"));

  // Back: replication resumed, a backup brings it to ok at once.
  ASSERT_OK(d.cluster().Admin(kNode2, "resume", "DB02"));
  ASSERT_OK(d.cluster().Admin(kNode3, "resume", "DB02"));
  ASSERT_TRUE(WaitCopyState(d, "DB02", "node2", v1::HEALTHY));
  const v1::JobInfo again =
      BackupWait(d, {"--unit", "DB02", "--type", "incremental", "--source-mode", "passive-only"});
  ASSERT_EQ(again.state(), v1::JOB_SUCCEEDED) << again.reason();
  auto [back_exit, back] = Protection(d);
  EXPECT_EQ(back_exit, 0);
  EXPECT_EQ(back.state(), v1::RPO_OK);
  EXPECT_EQ(back.newest_restore_point_manifest(), again.manifest());

  // Each change of state was logged as its event, with a stable id; so
  // were the failed job and the copies it skipped.
  const std::string log = d.CoordinatorLog();
  EXPECT_THAT(log, HasSubstr("[DV1002 rpo_breached unit=DB02 policy=tight state=warning"));
  EXPECT_THAT(log, HasSubstr("[DV1002 rpo_breached unit=DB02 policy=tight state=critical"));
  EXPECT_THAT(log, HasSubstr("[DV1003 rpo_recovered unit=DB02 policy=tight state=ok"));
  EXPECT_THAT(log, HasSubstr("[DV1001 job_failed unit=DB02"));
  EXPECT_THAT(log, HasSubstr("[DV1006 copy_skipped unit=DB02"));
}

}  // namespace
}  // namespace dagvault::testing
