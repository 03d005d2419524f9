// 4. Leader failover (issue 18's target: kill -9 of the leader to the first
// assignment by the new leader, at most 10 s p99 over 20 trials): two
// dagvault-coordinator processes on a private three-member etcd and a
// private PostgreSQL, simulated agents that follow the leader. Each trial
// kills the leader, starts backups through the other coordinator until
// one is assigned, then starts the killed one again as a standby.
#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/certs.h"
#include "common/file_util.h"
#include "common/free_ports.h"
#include "common/testing/subprocess.h"
#include "common/testing/temp_dir.h"
#include "common/text_config.h"
#include "common/tls.h"
#include "coordinator/catalog/postgres_test_util.h"
#include "coordinator/etcd/etcd_test_cluster.h"
#include "dagvault/v1/admin.grpc.pb.h"
#include "tests/bench/coordinator_bench.h"

namespace dagvault::bench {
namespace v1 = dagvault::v1;

int BenchFailover(int nodes, int trials, int report_ms, int leader_ttl_ms) {
  testing::TempDir dir("bench_failover");
  std::cout << "\n4. Leader failover: two coordinators on etcd (3 members) and PostgreSQL, "
            << nodes << " simulated agents, leader TTL " << leader_ttl_ms << " ms, " << trials
            << " trials\n";
  coordinator::testing::PrivatePostgres pg;
  if (pg.conninfo().empty()) return 1;
  auto etcd = coordinator::EtcdTestCluster::Start(dir.Sub("etcd"), 3);
  if (!etcd.ok()) {
    std::cerr << etcd.status() << "\n";
    return 1;
  }
  const std::string certs = dir.Sub("certs");
  if (!CreateCa({.dir = certs}).ok()) return 1;
  (void)IssueCertificate(
      {.dir = certs, .name = "coordinator", .role = "coordinator", .sans = {"127.0.0.1"}});
  (void)IssueCertificate({.dir = certs, .name = "admin", .role = "admin"});
  auto ports = PickFreePorts("127.0.0.1", 2);
  if (!ports.ok()) return 1;
  const std::vector<std::string> addresses = {absl::StrCat("127.0.0.1:", (*ports)[0]),
                                              absl::StrCat("127.0.0.1:", (*ports)[1])};
  std::vector<std::string> configs;
  for (size_t i = 0; i < addresses.size(); ++i) {
    v1::CoordinatorConfig c;
    c.set_listen(addresses[i]);
    *c.mutable_tls() = CertificateFiles(certs, "coordinator");
    c.set_catalog(pg.conninfo());
    c.set_report_every_ms(static_cast<uint32_t>(report_ms));
    c.set_lease_ttl_ms(static_cast<uint32_t>(report_ms * 6));
    c.set_log_level("warn");
    *c.mutable_etcd() = (*etcd)->Config("/bench-failover/");
    c.mutable_etcd()->set_leader_ttl_ms(static_cast<uint32_t>(leader_ttl_ms));
    configs.push_back(dir.Sub(absl::StrCat("coordinator", i, ".conf")));
    (void)WriteFileAtomically(configs.back(), ToTextConfig(c));
  }
  std::vector<std::unique_ptr<testing::Subprocess>> coordinators(2);
  auto start = [&](size_t i) {
    coordinators[i] = std::make_unique<testing::Subprocess>(
        std::vector<std::string>{testing::BinaryPath("dagvault-coordinator"), "--config",
                                 configs[i]},
        std::map<std::string, std::string>{}, dir.Sub(absl::StrCat("coordinator", i, ".log")));
  };
  auto admin_creds = *MakeChannelCredentials(CertificateFiles(certs, "admin"), false, "admin",
                                             {.role = kRoleCoordinator});
  std::vector<std::unique_ptr<v1::CoordinatorAdmin::Stub>> admins;
  for (const auto& a : addresses) {
    admins.push_back(v1::CoordinatorAdmin::NewStub(grpc::CreateChannel(a, admin_creds)));
  }
  // Which coordinator leads now, asking both (-1: neither says so).
  auto leader = [&]() -> int {
    for (size_t i = 0; i < admins.size(); ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      v1::LeaderInfo who;
      if (admins[i]->WhoLeads(&ctx, v1::WhoLeadsRequest(), &who).ok() && who.this_one()) {
        return static_cast<int>(i);
      }
    }
    return -1;
  };
  start(0);
  for (int i = 0; i < 200 && leader() != 0; ++i) absl::SleepFor(absl::Milliseconds(100));
  start(1);
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<SimAgent>> agents;
  for (int n = 0; n < nodes; ++n) {
    if (!IssueCertificate({.dir = certs, .name = NodeName(n), .role = "node"}).ok()) return 1;
    auto creds = *MakeChannelCredentials(CertificateFiles(certs, NodeName(n)), false, "sim",
                                         {.role = kRoleCoordinator});
    agents.push_back(std::make_unique<SimAgent>(n, nodes, creds, addresses,
                                                absl::Milliseconds(report_ms),
                                                absl::Milliseconds(report_ms) * n / nodes, &stop));
  }
  auto all_registered = [&] {
    for (auto& a : agents) {
      if (!a->registered) return false;
    }
    return true;
  };
  for (int i = 0; i < 600 && !all_registered(); ++i) absl::SleepFor(absl::Milliseconds(100));
  absl::SleepFor(absl::Milliseconds(2 * report_ms));  // every agent has reported

  std::vector<double> seconds;
  int unit = 0;
  for (int trial = 0; trial < trials; ++trial) {
    int led = leader();
    for (int i = 0; i < 300 && led < 0; ++i) {  // a takeover still under way
      absl::SleepFor(absl::Milliseconds(100));
      led = leader();
    }
    if (led < 0) {
      std::cerr << "trial " << trial + 1 << ": nobody leads after 30 s\n";
      break;
    }
    const size_t other = led == 0 ? 1 : 0;
    coordinators[static_cast<size_t>(led)]->Kill(9);
    coordinators[static_cast<size_t>(led)]->Wait();
    const absl::Time killed = absl::Now();
    bool assigned = false;
    std::string last;
    while (!assigned && absl::Now() - killed < absl::Seconds(120)) {
      v1::StartBackupRequest r;
      r.set_unit(UnitName((unit++ * 97) % (nodes * kUnitsPerNode)));
      r.set_type(v1::FULL);
      v1::JobInfo job;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      grpc::Status s = admins[other]->StartBackup(&ctx, r, &job);
      assigned = s.ok() && job.attempts_size() >= 1;
      if (!assigned) {
        last = s.ok() ? job.reason() : s.error_message();
        absl::SleepFor(absl::Milliseconds(50));
      }
    }
    const double took = absl::ToDoubleSeconds(absl::Now() - killed);
    if (!assigned) {
      std::cerr << "trial " << trial + 1 << ": no assignment within 120 s (" << last << ")\n";
      break;
    }
    seconds.push_back(took);
    std::cout << absl::StrFormat("  trial %2d: %.2f s\n", trial + 1, took) << std::flush;
    // The killed one comes back as a standby, as its service manager
    // would start it again.
    start(static_cast<size_t>(led));
    absl::SleepFor(absl::Seconds(1));
  }
  if (!seconds.empty()) {
    Row("failover, kill -9 to first assignment p50 / p99",
        absl::StrFormat("%.2f / %.2f s", Percentile(seconds, 0.5), Percentile(seconds, 0.99)),
        absl::StrFormat("target p99 <= 10 s: %s", Verdict(Percentile(seconds, 0.99), 10)));
    Row("failover, min / max",
        absl::StrFormat("%.2f / %.2f s", *std::min_element(seconds.begin(), seconds.end()),
                        *std::max_element(seconds.begin(), seconds.end())));
  }
  stop = true;
  agents.clear();
  for (auto& c : coordinators) {
    if (c && c->running()) c->Kill(15), c->Wait();
  }
  return static_cast<int>(seconds.size()) == trials ? 0 : 1;
}

}  // namespace dagvault::bench
