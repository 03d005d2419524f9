// coordinator_bench: the coordinator at the scale of issue 6, printing
// figures against the targets (it never fails on speed).
//
//   1. Source selection for every unit of a deployment of 1,000 nodes and
//      10,000 units (three copies each: 30 copies per node), in process.
//   2. Chain assembly for one unit with 5,000 catalogued backups, from the
//      SQLite catalog and from memory.
//   3. A real dagvault-coordinator over mutual TLS with 1,000 simulated
//      agents in this process, each reporting its 30 copies every 5 s:
//      the coordinator's CPU and RSS, and the latency of `status` and of
//      `backup start` (the simulated agents fail each assignment at once).
//   4. Leader failover between two coordinators on etcd and PostgreSQL
//      (coordinator_bench_failover.cc): kill -9 of the leader to the first
//      assignment by the new one, p50 and p99 over 20 trials.
//
//   coordinator_bench [--agents N] [--seconds S] [--report-ms MS] [--ramp-ms-per-agent MS] [--pin]
//                     [--plaintext]
//                     [--failover-agents N] [--failover-trials T] [--leader-ttl-ms MS]
#include "tests/bench/coordinator_bench.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/certs.h"
#include "common/cli_args.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/mutex_debugging.h"
#include "common/testing/subprocess.h"
#include "common/testing/temp_dir.h"
#include "common/text_config.h"
#include "common/tls.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/server/topology.h"
#include "dagvault/v1/admin.grpc.pb.h"
#include "dagvault/v1/agent.grpc.pb.h"
#include "repository/chain.h"

namespace dagvault::bench {
namespace {

namespace v1 = dagvault::v1;
using coordinator::CopyView;

// 1. Selection for every unit.
void BenchSelection(int nodes) {
  testing::TempDir dir("bench_sel");
  auto catalog = coordinator::SqliteCatalog::Open(dir.Sub("catalog.db"));
  coordinator::Topology topology(catalog->get(), absl::Hours(1));
  class NullChannel : public coordinator::AgentChannel {
    bool Send(const v1::CoordinatorMessage&) override { return true; }
  };
  auto channel = std::make_shared<NullChannel>();
  for (int n = 0; n < nodes; ++n) {
    v1::Register hello;
    hello.set_node(NodeName(n));
    topology.Connected(hello, channel);
    topology.Report(ReportOf(n, nodes));
  }
  std::vector<double> runs;
  size_t selected = 0, units = 0;
  for (int run = 0; run < 5; ++run) {
    const absl::Time t0 = absl::Now();
    auto all = topology.AllCopies();
    selected = 0;
    for (const auto& [unit, copies] : all) {
      if (coordinator::SelectSource(copies, {}, {}).ok()) ++selected;
    }
    units = all.size();
    runs.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  std::vector<double> describe_ms, serialize_ms;
  size_t bytes = 0;
  for (int run = 0; run < 5; ++run) {
    v1::ClusterStatus status;
    absl::Time t0 = absl::Now();
    v1::ClusterStatusRequest all;
    all.set_all_copies(true);
    topology.Describe(all, &status);
    describe_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    t0 = absl::Now();
    bytes = status.SerializeAsString().size();
    serialize_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  const double median = Percentile(runs, 0.5);
  std::cout << "\n0. The status answer in process: " << bytes << " bytes; building "
            << Percentile(describe_ms, 0.5) << " ms, serializing " << Percentile(serialize_ms, 0.5)
            << " ms (medians of 5)\n";
  std::cout << "\n1. Source selection for every unit (" << nodes << " nodes, " << units
            << " units, 3 copies each)\n";
  Row("units with a source", absl::StrCat(selected, " of ", units));
  Row("time for all units (median of 5)", absl::StrFormat("%.1f ms", median),
      absl::StrFormat("target <= 1000 ms: %s", Verdict(median, 1000)));
}

// 2. Chain assembly with 5,000 backups.
void BenchChains(int backups) {
  testing::TempDir dir("bench_chain");
  auto catalog = coordinator::SqliteCatalog::Open(dir.Sub("catalog.db"));
  std::vector<coordinator::BackupRecord> records;
  std::string previous_sha(32, '\0');
  uint32_t generation = 1;
  for (int i = 0; i < backups; ++i) {
    v1::Manifest m;
    m.set_id(absl::StrFormat("20260101T%06d.000000Z-%08x", i, i));
    m.set_unit("DB02");
    m.set_type(i == 0 ? v1::FULL : v1::INCREMENTAL);
    m.set_source_node(NodeName(i % 3));
    m.set_log_signature("sig");
    m.add_database_signatures("dbsig");
    m.set_low_generation(generation);
    m.set_frozen_us(1'700'000'000'000'000 + i);
    for (int k = 0; k < 2; ++k, ++generation) {
      v1::ManifestFile* f = m.add_files();
      f->set_name(absl::StrCat("logs/E01", generation, ".log"));
      f->set_role("log");
      f->set_generation(generation);
      std::string sha(32, '\0');
      std::memcpy(sha.data(), &generation, sizeof(generation));
      f->set_sha256(sha);
      f->set_link_hash(previous_sha);
      previous_sha = sha;
    }
    m.set_high_generation(generation - 1);
    if (i == 0) {
      m.mutable_files(0)->clear_link_hash();
      v1::ManifestFile* db = m.add_files();
      db->set_name("DB02.edb");
      db->set_role("database");
    }
    records.push_back(coordinator::BackupRecordOf(m));
  }
  (void)(*catalog)->ReplaceBackups(records);
  std::vector<double> from_catalog, in_memory;
  size_t points = 0;
  for (int run = 0; run < 20; ++run) {
    absl::Time t0 = absl::Now();
    auto stored = (*catalog)->Backups("DB02");
    auto breaks = (*catalog)->ChainBreaks("DB02");
    auto shown = coordinator::ShowChains("DB02", *stored, *breaks);
    from_catalog.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    t0 = absl::Now();
    auto again = coordinator::ShowChains("DB02", records, {});
    in_memory.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    points =
        shown.chains_size() == 1 ? static_cast<size_t>(shown.chains(0).restore_points_size()) : 0;
  }
  std::cout << "\n2. Chain assembly for one unit with " << backups << " catalogued backups\n";
  Row("restore points in the one chain", absl::StrCat(points));
  const double assembly = Percentile(in_memory, 0.5);
  Row("assembly from the records (median of 20)", absl::StrFormat("%.2f ms", assembly),
      absl::StrFormat("target <= 10 ms: %s", Verdict(assembly, 10)));
  Row("read from SQLite and assemble (median of 20)",
      absl::StrFormat("%.2f ms", Percentile(from_catalog, 0.5)));
}

// One simulated agent: registers, reports every `every`, and fails each
// assignment at once.
struct ProcStat {
  double cpu_seconds = 0;
  uint64_t rss_kib = 0, peak_kib = 0;
};

ProcStat Sample(pid_t pid) {
  ProcStat s;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  // Fields after the command name, which is in parentheses.
  std::vector<std::string> f = absl::StrSplit(line.substr(line.rfind(')') + 2), ' ');
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (f.size() > 13) {
    uint64_t ut = 0, st = 0;
    (void)absl::SimpleAtoi(f[11], &ut);
    (void)absl::SimpleAtoi(f[12], &st);
    s.cpu_seconds = static_cast<double>(ut + st) / tick;
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  while (std::getline(status, line)) {
    uint64_t v = 0;
    if (line.rfind("VmRSS:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &v))
      s.rss_kib = v;
    if (line.rfind("VmHWM:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &v))
      s.peak_kib = v;
  }
  return s;
}

// A deployment at rest: a policy with a 26-hour RPO covers every unit,
// and every unit has a verified Full from an hour ago, so `status` has
// 100,000 units to judge and none to list.
absl::Status CatalogueEveryUnit(const std::string& catalog_path, int units) {
  auto catalog = coordinator::SqliteCatalog::Open(catalog_path);
  if (!catalog.ok()) return catalog.status();
  v1::Policy policy;
  policy.set_name("bench");
  policy.set_rpo_seconds(26 * 3600);
  std::vector<coordinator::BackupRecord> records;
  const int64_t an_hour_ago = absl::ToUnixMicros(absl::Now() - absl::Hours(1));
  for (int u = 0; u < units; ++u) {
    policy.add_units(UnitName(u));
    v1::Manifest m;
    m.set_id(absl::StrFormat("20260101T000000Z-%08x", u));
    m.set_unit(UnitName(u));
    m.set_type(v1::FULL);
    m.set_source_node(NodeName(u / kUnitsPerNode));
    m.set_log_signature("sig");
    m.add_database_signatures("dbsig");
    m.set_low_generation(1);
    m.set_high_generation(1);
    m.set_frozen_us(an_hour_ago);
    v1::ManifestFile* log = m.add_files();
    log->set_name("logs/E0100000001.log");
    log->set_role("log");
    log->set_generation(1);
    log->set_sha256(std::string(32, 'x'));
    v1::ManifestFile* db = m.add_files();
    db->set_name(UnitName(u) + ".edb");
    db->set_role("database");
    coordinator::BackupRecord r = coordinator::BackupRecordOf(m);
    r.verified = true;
    records.push_back(std::move(r));
  }
  if (absl::Status s = (*catalog)->PutPolicy(policy); !s.ok()) return s;
  return (*catalog)->ReplaceBackups(records);
}

// Every thread of this process onto one CPU: with --pin the coordinator
// has CPU 0 to itself and the simulated agents run on CPU 1, so that the
// coordinator's figures are its own and not the fleet's contention.
// -1: back onto every CPU.
void PinThisProcessTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu >= 0) {
    CPU_SET(cpu, &set);
  } else {
    for (long c = 0; c < ::sysconf(_SC_NPROCESSORS_ONLN); ++c) CPU_SET(c, &set);
  }
  DIR* tasks = ::opendir("/proc/self/task");
  if (tasks == nullptr) return;
  while (const dirent* e = ::readdir(tasks)) {
    pid_t tid = 0;
    if (absl::SimpleAtoi(e->d_name, &tid)) (void)::sched_setaffinity(tid, sizeof(set), &set);
  }
  ::closedir(tasks);
}

// 3. A real coordinator under 1,000 agents (issue 6) or 10,000 (issue 18).
int BenchCoordinator(int nodes, int seconds, int report_ms, int ramp_ms_per_agent, bool pin,
                     bool plaintext, const std::vector<std::string>& wrapper) {
  // The targets of the issue whose scale this run has.
  const bool large = nodes > 1000;
  const double cpu_target = large ? 50 : 25, rss_target_mb = large ? 1024 : 500,
               status_target_ms = large ? 100 : 50;
  testing::TempDir dir("bench_coord");
  const std::string certs = dir.Sub("certs");
  if (!CreateCa({.dir = certs}).ok()) return 1;
  // The simulated agents dial 127.0.0.1, which the certificate must name.
  (void)IssueCertificate(
      {.dir = certs, .name = "coordinator", .role = "coordinator", .sans = {"127.0.0.1"}});
  (void)IssueCertificate({.dir = certs, .name = "admin", .role = "admin"});
  const absl::Time issuing = absl::Now();
  std::vector<std::shared_ptr<grpc::ChannelCredentials>> creds;
  for (int n = 0; n < nodes; ++n) {
    if (!plaintext && !IssueCertificate({.dir = certs, .name = NodeName(n), .role = "node"}).ok()) {
      return 1;
    }
    creds.push_back(*MakeChannelCredentials(CertificateFiles(certs, NodeName(n)), plaintext, "sim",
                                            {.role = kRoleCoordinator}));
  }
  std::cout << "\n3. One dagvault-coordinator, " << nodes << " simulated agents "
            << (plaintext ? "in plain text (insecure_dev: not the production shape)"
                          : "over mutual TLS")
            << ", each reporting " << 3 * kUnitsPerNode << " copies every " << report_ms << " ms\n";
  Row("certificates issued for the agents",
      plaintext
          ? std::string("none (--plaintext)")
          : absl::StrFormat("%d in %.1f s", nodes, absl::ToDoubleSeconds(absl::Now() - issuing)));
  // A free port: bound to 0 and released.
  std::vector<int> ports;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ports.push_back(ntohs(a.sin_port));
    ::close(fd);
  }
  const std::string address = absl::StrCat("127.0.0.1:", ports[0]);
  v1::CoordinatorConfig c;
  c.set_listen(address);
  *c.mutable_tls() = CertificateFiles(certs, "coordinator");
  c.set_insecure_dev(plaintext);
  c.set_catalog(dir.Sub("catalog.db"));
  const absl::Time cataloguing = absl::Now();
  if (absl::Status s = CatalogueEveryUnit(dir.Sub("catalog.db"), nodes * kUnitsPerNode); !s.ok()) {
    std::cerr << "cataloguing: " << s << "\n";
    return 1;
  }
  Row("units catalogued, each with a verified Full and a 26 h RPO",
      absl::StrFormat("%d in %.1f s", nodes * kUnitsPerNode,
                      absl::ToDoubleSeconds(absl::Now() - cataloguing)));
  c.set_report_every_ms(static_cast<uint32_t>(report_ms));
  c.set_lease_ttl_ms(static_cast<uint32_t>(report_ms * 6));
  c.set_log_level("warn");
  (void)WriteFileAtomically(dir.Sub("coordinator.conf"), ToTextConfig(c));
  std::vector<std::string> argv = {testing::BinaryPath("dagvault-coordinator"), "--config",
                                   dir.Sub("coordinator.conf")};
  // taskset execs the coordinator: the pid measured is the coordinator's
  // (and so with a --wrap that execs it, such as env; not one that forks).
  argv.insert(argv.begin(), wrapper.begin(), wrapper.end());
  if (pin) argv.insert(argv.begin(), {"/usr/bin/taskset", "-c", "0"});
  if (pin) PinThisProcessTo(1);
  testing::Subprocess coordinator(argv, {}, dir.Sub("coordinator.log"));
  // As the command line does: answers of every copy of 10,000 nodes
  // exceed gRPC's default 4 MB.
  grpc::ChannelArguments admin_args;
  admin_args.SetMaxReceiveMessageSize(256 << 20);
  auto admin = v1::CoordinatorAdmin::NewStub(
      grpc::CreateCustomChannel(address,
                                *MakeChannelCredentials(CertificateFiles(certs, "admin"), plaintext,
                                                        "admin", {.role = kRoleCoordinator}),
                                admin_args));
  auto status_call = [&](v1::ClusterStatus* out, bool all_copies = false, bool all_units = false,
                         bool all_nodes = false) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    ctx.set_compression_algorithm(GRPC_COMPRESS_NONE);
    v1::ClusterStatusRequest request;
    request.set_all_copies(all_copies);
    request.set_all_units(all_units);
    request.set_all_nodes(all_nodes);
    return admin->GetStatus(&ctx, request, out);
  };
  grpc::Status answer;
  for (absl::Time until = absl::Now() + absl::Seconds(60); absl::Now() < until;) {
    v1::ClusterStatus s;
    answer = status_call(&s);
    if (answer.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (!answer.ok()) {
    std::cerr << "the coordinator did not answer `status` within 60 s (" << answer.error_message()
              << "); its log:\n"
              << ReadFileToString(dir.Sub("coordinator.log")).value_or("(none)")
              << ReadFileToString(dir.Sub("coordinator.log.err")).value_or("") << "\n";
    return 1;
  }
  const absl::Duration every = absl::Milliseconds(report_ms);
  const absl::Time connecting = absl::Now();
  // Agents start over a few seconds per thousand, as a fleet's service
  // managers would start them, not as one storm of TLS handshakes.
  const absl::Duration ramp = absl::Milliseconds(static_cast<int64_t>(ramp_ms_per_agent) * nodes);
  // While the agents connect, the fleet may use every CPU: 10,000 TLS
  // client handshakes plus the reports of those already connected load the
  // fleet's side at least as much as the coordinator's (seen: the fleet at
  // 94% of its one CPU, the coordinator at 40% of its own, 8,162 of 10,000
  // registered). With a 15 ms ramp, that was not enough either (8,059);
  // with 25 ms, every run registered all 10,000. The coordinator stays on
  // CPU 0 throughout, and the fleet is moved to CPU 1 before anything is
  // measured.
  if (pin) PinThisProcessTo(-1);
  auto fleet = std::make_unique<SimFleet>(nodes, creds, address, every, ramp);
  int registered = 0;
  for (absl::Time until = absl::Now() + ramp + absl::Seconds(60);
       registered < nodes && absl::Now() < until;) {
    absl::SleepFor(absl::Milliseconds(200));
    registered = fleet->Registered();
  }
  Row("agents registered",
      absl::StrFormat("%d in %.1f s (connections spread over %.0f s)", registered,
                      absl::ToDoubleSeconds(absl::Now() - connecting),
                      absl::ToDoubleSeconds(ramp)));
  if (pin) PinThisProcessTo(1);  // gRPC's threads started since included
  absl::SleepFor(every * 2);     // every agent has reported
  {
    // The first status after start reads every unit's chains and jobs from
    // the catalog; the ones after, only what changed (UnitHistoryCache).
    v1::ClusterStatus s;
    const absl::Time t = absl::Now();
    grpc::Status ok = status_call(&s);
    Row("first status (every unit read from the catalog)",
        absl::StrFormat("%.0f ms; %s; %u of %u units within their RPO",
                        absl::ToDoubleMilliseconds(absl::Now() - t),
                        ok.ok() ? "ok" : ok.error_message(), s.units_within_rpo(),
                        s.units_total()));
  }
  const ProcStat before = Sample(coordinator.pid());
  const absl::Time t0 = absl::Now();
  absl::SleepFor(absl::Seconds(seconds));
  const ProcStat after = Sample(coordinator.pid());
  const double wall = absl::ToDoubleSeconds(absl::Now() - t0);
  const double cpu = 100.0 * (after.cpu_seconds - before.cpu_seconds) / wall;
  Row("reports sent (all agents, whole run); sessions",
      absl::StrCat(fleet->reports(), "; ", fleet->sessions()));
  Row(absl::StrFormat("coordinator CPU over %.0f s of reports", wall),
      absl::StrFormat("%.1f%% of one core", cpu),
      absl::StrFormat("target <= %.0f%%: %s", cpu_target,
                      registered < nodes ? "not judged (not every agent registered)"
                                         : Verdict(cpu, cpu_target)));
  Row("coordinator RSS (now / peak)",
      absl::StrFormat("%.0f / %.0f MB", after.rss_kib / 1024.0, after.peak_kib / 1024.0),
      absl::StrFormat("target <= %.0f MB: %s", rss_target_mb,
                      registered < nodes ? "not judged (not every agent registered)"
                                         : Verdict(after.peak_kib / 1024.0, rss_target_mb)));

  // `status` (the target), `status --nodes` (every node listed, as every
  // `status` did before it counted the reporting ones) and `status
  // --copies` (every node and copy).
  for (const std::string what : {"status", "status --nodes", "status --copies"}) {
    const bool all = what == "status --copies";
    const bool nodes_listed = what == "status --nodes";
    std::vector<double> status_ms;
    size_t copies = 0, nodes_seen = 0, fine = 0;
    int failed = 0;
    // Every copy listed is an answer of megabytes: fewer calls, no target.
    const int calls = all ? 10 : 100;
    for (int i = 0; i < calls; ++i) {
      v1::ClusterStatus s;
      const absl::Time t = absl::Now();
      grpc::Status ok = status_call(&s, all, false, nodes_listed);
      status_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
      if (ok.ok()) {
        copies = static_cast<size_t>(s.copies_size());
        nodes_seen = static_cast<size_t>(s.nodes_size());
        fine = s.copies_fine();
      } else {
        ++failed;
      }
    }
    Row(absl::StrCat(what, ": nodes, copies listed, fine"),
        absl::StrCat(nodes_seen, ", ", copies, ", ", fine));
    Row(absl::StrCat(what, " latency p50 / p99 (", calls, " calls)"),
        absl::StrFormat("%.1f / %.1f ms", Percentile(status_ms, 0.5), Percentile(status_ms, 0.99)),
        what != "status" ? std::string()
                         : absl::StrFormat("target p99 <= %.0f ms: %s", status_target_ms,
                                           VerdictOfCalls(Percentile(status_ms, 0.99),
                                                          status_target_ms, failed)));
  }
  {
    // Every unit listed, each with where its next backup would read from:
    // what the console's overview asks for.
    std::vector<double> all_ms;
    size_t listed = 0;
    for (int i = 0; i < 5; ++i) {
      v1::ClusterStatus s;
      const absl::Time t = absl::Now();
      if (status_call(&s, false, /*all_units=*/true).ok()) listed = s.units_size();
      all_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
    }
    Row("status --units: units listed with their next source", absl::StrCat(listed));
    Row("status --units latency p50 / max (5 calls)",
        absl::StrFormat("%.0f / %.0f ms", Percentile(all_ms, 0.5), Percentile(all_ms, 1.0)));
  }
  std::vector<double> start_ms;
  int started = 0;
  for (int i = 0; i < 100; ++i) {
    v1::StartBackupRequest r;
    r.set_unit(UnitName(i * 97 % (nodes * kUnitsPerNode)));
    r.set_type(v1::FULL);
    v1::JobInfo job;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const absl::Time t = absl::Now();
    grpc::Status s = admin->StartBackup(&ctx, r, &job);
    start_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
    started += s.ok() && job.attempts_size() == 1;
  }
  Row("backup start: jobs assigned", absl::StrCat(started, " of 100"));
  Row("backup start latency p50 / p99 (100 calls)",
      absl::StrFormat("%.1f / %.1f ms", Percentile(start_ms, 0.5), Percentile(start_ms, 0.99)),
      absl::StrFormat("target p99 <= 50 ms: %s",
                      VerdictOfCalls(Percentile(start_ms, 0.99), 50, 100 - started)));
  if (auto ended = coordinator.Poll(); ended || started < 100) {
    // A call failed or the coordinator is gone: the figures above say so
    // but not why; the end of its log usually does.
    std::string log = ReadFileToString(dir.Sub("coordinator.log")).value_or("(none)") +
                      ReadFileToString(dir.Sub("coordinator.log.err")).value_or("");
    if (log.size() > 8000) log = "..." + log.substr(log.size() - 8000);
    std::cerr << "the coordinator "
              << (ended ? absl::StrCat("exited (code ", ended->exit_code, ", signal ",
                                       ended->signal, ")")
                        : std::string("failed calls"))
              << "; the end of its log:\n"
              << log << "\n";
  }
  fleet.reset();
  coordinator.Kill(15);
  coordinator.Wait();
  if (pin) PinThisProcessTo(-1);  // the failover section runs on every CPU
  return 0;
}

}  // namespace
}  // namespace dagvault::bench

int main(int argc, char** argv) {
  // The simulated fleet is gRPC-bound like the coordinator it measures.
  dagvault::TurnOffAbslDeadlockDetection();
  dagvault::logging::Init({.level = "error"});
  auto args =
      dagvault::CliArgs::Parse(std::vector<std::string>(argv + 1, argv + argc),
                               {{"agents", "seconds", "report-ms", "backups", "failover-agents",
                                 "failover-trials", "leader-ttl-ms", "ramp-ms-per-agent", "wrap"},
                                {"pin", "plaintext"}});
  if (!args.ok()) {
    std::cerr
        << args.status().message()
        << "\nusage: coordinator_bench [--agents 1000] [--seconds 60] [--report-ms 5000]\n"
           "       [--ramp-ms-per-agent 5 (agents' connections spread over agents x this)]\n"
           "       [--pin (the coordinator on CPU 0, the connected simulated agents on CPU 1)]\n"
           "       [--plaintext (no TLS, insecure_dev: the leader needs one descriptor per\n"
           "        agent instead of the TLS front's three; not the production shape)]\n"
           "       [--wrap 'CMD ARG...' (start the coordinator under CMD, e.g. /usr/bin/env\n"
           "        LD_PRELOAD=libtcmalloc.so.4 HEAPPROFILE=/tmp/hp to profile its heap)]\n"
           "       [--failover-agents 100] [--failover-trials 20 (0: none)] "
           "[--leader-ttl-ms 5000]\n";
    return 2;
  }
  const int agents = static_cast<int>(*args->GetUint("agents", 1000));
  const int seconds = static_cast<int>(*args->GetUint("seconds", 60));
  const int report_ms = static_cast<int>(*args->GetUint("report-ms", 5000));
  const int backups = static_cast<int>(*args->GetUint("backups", 5000));
  const int failover_agents = static_cast<int>(*args->GetUint("failover-agents", 100));
  const int trials = static_cast<int>(*args->GetUint("failover-trials", 20));
  const int leader_ttl_ms = static_cast<int>(*args->GetUint("leader-ttl-ms", 5000));
  const int ramp_ms = static_cast<int>(*args->GetUint("ramp-ms-per-agent", 5));
  std::cout << "coordinator_bench: figures for the scale targets of issues 6 and 18\n";
  dagvault::bench::BenchSelection(agents);
  dagvault::bench::BenchChains(backups);
  const std::vector<std::string> wrapper =
      absl::StrSplit(args->GetOr("wrap", ""), ' ', absl::SkipEmpty());
  int status = dagvault::bench::BenchCoordinator(agents, seconds, report_ms, ramp_ms,
                                                 args->Has("pin"), args->Has("plaintext"), wrapper);
  if (trials > 0) {
    status |= dagvault::bench::BenchFailover(failover_agents, trials, report_ms, leader_ttl_ms);
  }
  return status;
}
