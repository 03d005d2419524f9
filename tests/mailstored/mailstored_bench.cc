// mailstored_bench: the figures of mailstored on this machine, measured on a
// real three-node lab (the tests' MailstoredCluster). It prints; it never
// fails because of speed.
//
//   1. The load generator (mailstore-util load) against node1, and the copy
//      and replay queues of the passive copies while it runs and until they
//      catch up. node3's copy is lagged: its replay queue holds the lag.
//   2. The writer alone: Freeze-to-Thaw windows on the active copy and on a
//      passive one, idle and under load (Prepare, Freeze, Thaw and a failed
//      BackupComplete, so nothing is recorded or truncated).
//
// usage: mailstored_bench [--seconds 10] [--threads 8] [--cycles 40]
//                         [--log-size 1048576] [--lag-seconds 30]
#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>

#include "absl/strings/str_format.h"
#include "common/cli_args.h"
#include "common/testing/subprocess.h"
#include "tests/mailstored/backup_set.h"

namespace dagvault::testing {
namespace {

namespace v1 = dagvault::v1;

struct Settings {
  uint64_t seconds = 10;
  uint64_t threads = 8;
  uint64_t cycles = 40;
  uint64_t log_size = 1 << 20;
  uint64_t lag_seconds = 30;
};

std::vector<std::string> LoadCommand(MailstoredCluster& cluster, const Settings& s) {
  return {BinaryPath("mailstore-util"),
          "load",
          "--server",
          cluster.node(0).config.store_listen(),
          "--unit",
          "SG01",
          "--unit",
          "DB02",
          "--duration",
          std::to_string(s.seconds),
          "--threads",
          std::to_string(s.threads),
          "--mailboxes",
          "100",
          "--size-mix",
          "4k:70,75k:25,1m:5"};
}

std::string Percentiles(std::vector<double> ms) {
  if (ms.empty()) return "no samples";
  std::sort(ms.begin(), ms.end());
  auto at = [&](double p) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
  };
  return absl::StrFormat("p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%d cycles)", at(0.5), at(0.99),
                         ms.back(), static_cast<int>(ms.size()));
}

double MsSince(absl::Time t) { return absl::ToDoubleMilliseconds(absl::Now() - t); }

// Replication under load: the queues every half second.
void ReplicationUnderLoad(MailstoredCluster& cluster, const Settings& s) {
  std::cout << "\n== 1. Load on node1 (SG01 and DB02), the SG01 queues of the passive copies\n";
  ProcessResult load;
  std::atomic<bool> done{false};
  std::thread runner([&] {
    load = RunProcess(LoadCommand(cluster, s), {}, absl::Seconds(s.seconds + 120));
    done = true;
  });
  std::cout << "     t   node1 closed  node2 copyq replayq  node3(lag " << s.lag_seconds
            << "s) copyq replayq\n";
  const absl::Time start = absl::Now();
  absl::Time load_end;
  bool caught_up = false;
  for (int tick = 1; !caught_up && tick < 2 * static_cast<int>(s.seconds + 300); ++tick) {
    const absl::Duration until_tick = start + absl::Milliseconds(500 * tick) - absl::Now();
    if (until_tick > absl::ZeroDuration()) absl::SleepFor(until_tick);
    auto a = cluster.Copy(0, "SG01");
    auto b = cluster.Copy(1, "SG01");
    auto c = cluster.Copy(2, "SG01");
    if (!a.ok() || !b.ok() || !c.ok()) continue;
    std::cout << absl::StrFormat("%6.1fs  %12u  %11u %7u  %18u %7u\n",
                                 absl::ToDoubleSeconds(absl::Now() - start),
                                 a->last_log_generation(), b->copy_queue(), b->replay_queue(),
                                 c->copy_queue(), c->replay_queue());
    if (done && load_end == absl::Time()) load_end = absl::Now();
    caught_up = done && b->copy_queue() == 0 && b->replay_queue() == 0 &&
                b->last_replayed_generation() >= a->last_log_generation() && c->copy_queue() == 0;
  }
  runner.join();
  std::cout << load.out << load.err;
  if (caught_up) {
    std::cout << absl::StrFormat(
        "node2 replayed, and node3 inspected, everything node1 closed %.1f s after the load "
        "ended\n",
        absl::ToDoubleSeconds(absl::Now() - load_end));
  }
}

// Freeze-to-Thaw cycles on node i's copy of DB02.
void WriterCycles(MailstoredCluster& cluster, int i, const Settings& s, const std::string& what) {
  std::vector<double> prepare, freeze, thaw, window, complete;
  for (uint64_t n = 0; n < s.cycles; ++n) {
    absl::Time t = absl::Now();
    auto prepared = PrepareBackup(cluster, i, "DB02", v1::FULL);
    if (!prepared.ok()) {
      std::cout << "PrepareBackup: " << prepared.status() << "\n";
      return;
    }
    prepare.push_back(MsSince(t));
    const absl::Time frozen_at = absl::Now();
    auto frozen = Freeze(cluster, i, prepared->session());
    freeze.push_back(MsSince(frozen_at));
    t = absl::Now();
    auto thawed = Thaw(cluster, i, prepared->session());
    thaw.push_back(MsSince(t));
    window.push_back(MsSince(frozen_at));
    t = absl::Now();
    auto completed = BackupComplete(cluster, i, prepared->session(), false, 0, 0);
    complete.push_back(MsSince(t));
    if (!frozen.ok() || !thawed.ok() || !completed.ok()) {
      std::cout << "cycle failed: " << frozen.status() << " " << thawed.status() << " "
                << completed.status() << "\n";
      return;
    }
  }
  std::cout << what << "\n";
  std::cout << "   Prepare         " << Percentiles(prepare) << "\n";
  std::cout << "   Freeze          " << Percentiles(freeze) << "\n";
  std::cout << "   Thaw            " << Percentiles(thaw) << "\n";
  std::cout << "   Freeze-to-Thaw  " << Percentiles(window) << "\n";
  std::cout << "   BackupComplete  " << Percentiles(complete) << "\n";
}

void WriterAlone(MailstoredCluster& cluster, const Settings& s) {
  std::cout << "\n== 2. The writer alone: Freeze-to-Thaw as the requestor sees it (DB02)\n";
  WriterCycles(cluster, 0, s, "active copy (Store writer), idle");
  WriterCycles(cluster, 1, s, "passive copy (Replication writer), idle");
  std::thread load([&] { (void)RunProcess(LoadCommand(cluster, s)); });
  absl::SleepFor(absl::Seconds(1));
  WriterCycles(cluster, 0, s, "active copy (Store writer), under load");
  WriterCycles(cluster, 1, s, "passive copy (Replication writer), under load");
  load.join();
}

int Main(int argc, char** argv) {
  auto args = CliArgs::Parse(std::vector<std::string>(argv + 1, argv + argc),
                             {{"seconds", "threads", "cycles", "log-size", "lag-seconds"}, {}});
  if (!args.ok()) {
    std::cerr << args.status().message() << "\n";
    return 2;
  }
  Settings s;
  for (auto [flag, field] : {std::pair{"seconds", &s.seconds},
                             {"threads", &s.threads},
                             {"cycles", &s.cycles},
                             {"log-size", &s.log_size},
                             {"lag-seconds", &s.lag_seconds}}) {
    auto v = args->GetUint(flag, *field);
    if (!v.ok()) {
      std::cerr << v.status().message() << "\n";
      return 2;
    }
    *field = *v;
  }
  mailstore::LabSpec spec;
  spec.nodes = 3;
  spec.lag_seconds = static_cast<uint32_t>(s.lag_seconds);
  spec.log_file_size = s.log_size;
  MailstoredCluster cluster(spec, "bench");
  if (auto started = cluster.Start(); !started.ok()) {
    std::cerr << started.message() << "\n";
    return 1;
  }
  if (auto converged = cluster.WaitConverged(0, "SG01"); !converged.ok()) {
    std::cerr << converged.message() << "\n";
    return 1;
  }
  std::cout << absl::StrFormat(
      "mailstored_bench: 3 nodes on this machine, %u-byte logs, daemon defaults otherwise "
      "(replication poll 200 ms)\n",
      s.log_size);
  ReplicationUnderLoad(cluster, s);
  WriterAlone(cluster, s);
  return 0;
}

}  // namespace
}  // namespace dagvault::testing

int main(int argc, char** argv) { return dagvault::testing::Main(argc, argv); }
