// The coordinator's metrics through Debian's real Prometheus server
// (issue 16, docs/monitoring.md): Prometheus scrapes a lab deployment over
// HTTPS with a client certificate of the deployment CA and evaluates the
// shipped alert rules; the test asks its HTTP query API whether the RPO and
// job metrics carry the right values after a backup and after a failure.
// promtool checks the alert rules and lints a scrape.
#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/certs.h"
#include "common/file_util.h"
#include "common/testing/subprocess.h"
#include "common/testing/temp_dir.h"
#include "mailstore/server/lab_config.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/coordinator/metrics_scrape.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kPromtool[] = "/usr/bin/promtool";

std::string AlertRules() {
  return JoinPath(DAGVAULT_SOURCE_DIR, "deploy/monitoring/dagvault-alerts.yml");
}

// A Prometheus of the test's own: its folder, a free port on 127.0.0.1,
// stopped by pid.
class Prometheus {
 public:
  absl::Status Start(const Deployment& d) {
    auto ports = mailstore::PickFreePorts("127.0.0.1", 1);
    if (!ports.ok()) return ports.status();
    port_ = (*ports)[0];
    const auto tls = CertificateFiles(d.certs(), "admin");
    const std::string config = absl::StrCat(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n  - ",
        AlertRules(),
        "\nscrape_configs:\n  - job_name: dagvault-coordinator\n    scheme: https\n"
        "    tls_config:\n      ca_file: ",
        tls.ca_file(), "\n      cert_file: ", tls.cert_file(), "\n      key_file: ", tls.key_file(),
        "\n    static_configs:\n      - targets: [\"", d.metrics_address(), "\"]\n",
        "  - job_name: dagvault-agent\n    scheme: https\n    tls_config:\n      ca_file: ",
        tls.ca_file(), "\n      cert_file: ", tls.cert_file(), "\n      key_file: ", tls.key_file(),
        "\n    static_configs:\n      - targets: [\"", d.agent_metrics_address(0), "\", \"",
        d.agent_metrics_address(1), "\", \"", d.agent_metrics_address(2), "\"]\n");
    const std::string path = dir_.path() + "/prometheus.yml";
    if (absl::Status s = WriteFileAtomically(path, config); !s.ok()) return s;
    process_ = std::make_unique<Subprocess>(
        std::vector<std::string>{
            kPrometheus, "--config.file=" + path, "--storage.tsdb.path=" + dir_.path() + "/data",
            absl::StrCat("--web.listen-address=127.0.0.1:", port_), "--log.level=warn"},
        std::map<std::string, std::string>{}, dir_.path() + "/prometheus.log");
    httplib::Client c("127.0.0.1", port_);
    const bool ready = WaitFor(
        [&] {
          auto r = c.Get("/-/ready");
          return r && r->status == 200;
        },
        absl::Seconds(60));
    if (!ready) return absl::UnavailableError("prometheus did not become ready");
    return absl::OkStatus();
  }

  ~Prometheus() {
    if (process_) process_->Kill(SIGTERM), process_->Wait();
  }

  // The value of the instant query `expr` if it has exactly one series.
  std::optional<double> Query(const std::string& expr) {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Get("/api/v1/query", httplib::Params{{"query", expr}}, httplib::Headers{});
    if (!r || r->status != 200) return std::nullopt;
    google::protobuf::Struct body;
    if (!google::protobuf::util::JsonStringToMessage(r->body, &body).ok()) return std::nullopt;
    const auto& result = body.fields().at("data").struct_value().fields().at("result").list_value();
    if (result.values_size() != 1) return std::nullopt;
    const auto& value = result.values(0).struct_value().fields().at("value").list_value();
    double v = 0;
    if (!absl::SimpleAtod(value.values(1).string_value(), &v)) return std::nullopt;
    return v;
  }

  // Waits until `expr` has one series equal to `want`; prints the query and
  // what it last saw (the closing note quotes them).
  bool WaitValue(const std::string& expr, double want) {
    std::optional<double> seen;
    const bool ok = WaitFor(
        [&] {
          seen = Query(expr);
          return seen.has_value() && *seen == want;
        },
        absl::Seconds(30));
    std::cout << "prometheus: " << expr << " = "
              << (seen ? absl::StrCat(*seen) : std::string("(no single series)")) << std::endl;
    return ok;
  }

  std::string Log() const {
    auto s = ReadFileToString(dir_.path() + "/prometheus.log.err");
    return s.ok() ? *s : "";
  }

 private:
  TempDir dir_{"prometheus"};
  int port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

// `promtool check metrics` on a scrape of `address` (the coordinator's or
// an agent's).
void LintScrape(const std::string& address, const Deployment& d) {
  const std::string scraped = ScrapeMetrics(d, address);
  ASSERT_FALSE(scraped.empty()) << address;
  TempDir dir("promtool");
  ASSERT_OK(WriteFileAtomically(dir.path() + "/scrape.txt", scraped));
  ProcessResult lint = RunProcess(
      {"/bin/sh", "-c", absl::StrCat(kPromtool, " check metrics < ", dir.path(), "/scrape.txt")});
  EXPECT_TRUE(lint.ok()) << lint.out << lint.err << "\n" << scraped;
}

TEST(Prometheus, TheAlertRulesCheck) {
  ProcessResult r = RunProcess({kPromtool, "check", "rules", AlertRules()});
  EXPECT_TRUE(r.ok()) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("SUCCESS: 12 rules found"));
}

TEST(Prometheus, ScrapesTheCoordinatorAndSeesRpoAndJobResultsAfterABackupAndAFailure) {
  DeploymentOptions o = Options();
  o.metrics = true;
  Deployment d(o, "prometheus");
  ASSERT_OK(d.Start());
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  ProcessResult set = d.Cli({"policy", "set", "--name", "watched", "--unit", "DB02", "--full",
                             "0 1 1 1 *", "--source-mode", "passive-only", "--rpo", "1h"});
  ASSERT_EQ(set.exit_code, 0) << set.err;

  Prometheus prometheus;
  ASSERT_OK(prometheus.Start(d));
  EXPECT_TRUE(prometheus.WaitValue("up{job=\"dagvault-coordinator\"}", 1)) << prometheus.Log();
  EXPECT_TRUE(prometheus.WaitValue("sum(up{job=\"dagvault-agent\"})", 3)) << prometheus.Log();
  EXPECT_TRUE(
      prometheus.WaitValue("dagvault_unit_rpo_state{unit=\"DB02\",state=\"never backed up\"}", 1));
  EXPECT_TRUE(prometheus.WaitValue("dagvault_unit_rpo_seconds{unit=\"DB02\"}", 3600));
  EXPECT_TRUE(prometheus.WaitValue("dagvault_node_reporting{node=\"node2\"}", 1));

  // A Full: ok, one job succeeded, its source and bytes.
  const v1::JobInfo full =
      BackupWait(d, {"--unit", "DB02", "--type", "full", "--source-mode", "passive-only"});
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED) << full.reason();
  EXPECT_TRUE(prometheus.WaitValue("dagvault_unit_rpo_state{unit=\"DB02\",state=\"ok\"}", 1));
  EXPECT_TRUE(prometheus.WaitValue("dagvault_jobs_total{kind=\"backup\",result=\"succeeded\"}", 1));
  EXPECT_TRUE(prometheus.WaitValue("dagvault_unit_last_backup_success{unit=\"DB02\"}", 1));
  EXPECT_TRUE(prometheus.WaitValue(
      absl::StrCat("dagvault_unit_last_good_backup_source{unit=\"DB02\",node=\"", LastNode(full),
                   "\"}"),
      1));
  const auto age = prometheus.Query("dagvault_unit_restore_point_age_seconds{unit=\"DB02\"}");
  ASSERT_TRUE(age.has_value());
  EXPECT_LT(*age, 3600);
  std::cout << "prometheus: dagvault_unit_restore_point_age_seconds{unit=\"DB02\"} = " << *age
            << std::endl;
  // The agent that ran it counted it, with what it read, stored and checked.
  EXPECT_TRUE(prometheus.WaitValue(
      "sum(dagvault_agent_jobs_total{kind=\"backup\",result=\"succeeded\"})", 1));
  EXPECT_TRUE(
      prometheus.WaitValue("sum(dagvault_agent_backup_bytes_total{measure=\"read\"}) > bool 0", 1));
  EXPECT_TRUE(prometheus.WaitValue("sum(dagvault_agent_pages_checked_total) > bool 0", 1));
  EXPECT_TRUE(prometheus.WaitValue("sum(dagvault_agent_freeze_seconds_count)", 1));
  // Its writer calls were timed: one Freeze, one Thaw.
  EXPECT_TRUE(
      prometheus.WaitValue("sum(dagvault_agent_writer_call_seconds_count{call=\"Freeze\"})", 1));
  EXPECT_TRUE(
      prometheus.WaitValue("sum(dagvault_agent_writer_call_seconds_count{call=\"Thaw\"})", 1));
  // promtool lints a scrape of each: names, units, _total on counters.
  LintScrape(d.metrics_address(), d);
  LintScrape(d.agent_metrics_address(kNode2), d);

  // A failure: no passive copy qualifies.
  FailAPassiveOnlyBackup(d);
  EXPECT_TRUE(prometheus.WaitValue("dagvault_jobs_total{kind=\"backup\",result=\"failed\"}", 1));
  EXPECT_TRUE(prometheus.WaitValue("dagvault_unit_last_backup_success{unit=\"DB02\"}", 0));
  EXPECT_TRUE(prometheus.WaitValue("dagvault_unit_backup_source_available{unit=\"DB02\"}", 0));
  EXPECT_TRUE(prometheus.WaitValue("dagvault_copies{state=\"Suspended\"}", 2));
  // The restore point is still the Full's: within the RPO.
  EXPECT_TRUE(prometheus.WaitValue("dagvault_unit_rpo_state{unit=\"DB02\",state=\"ok\"}", 1));
  // The shipped rules load and evaluate on these metrics: with no source
  // for DB02, its alert is pending (it would fire after its `for:`).
  EXPECT_TRUE(prometheus.WaitValue(
      "ALERTS{alertname=\"DagvaultNoBackupSource\",alertstate=\"pending\",unit=\"DB02\"}", 1));
}

}  // namespace
}  // namespace dagvault::testing
