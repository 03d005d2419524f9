#include "node-agent/daemon/agent_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

#include "common/certs.h"

namespace dagvault::agent {

using metrics::TextWriter;
using metrics::Type;

namespace {

// The process's resident memory, from /proc/self/statm (pages).
double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

double CpuSeconds() {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

}  // namespace

AgentMetrics::AgentMetrics(std::function<std::vector<RunningJobView>()> running,
                           std::string certificate)
    : jobs_(registry_.AddCounter("dagvault_agent_jobs_total",
                                 "Jobs this agent ran to their end, by kind (backup, restore, "
                                 "copy-op) and result (succeeded, failed, cancelled).")),
      backup_bytes_(registry_.AddCounter(
          "dagvault_agent_backup_bytes_total",
          "Successful backups' bytes: read from the snapshot (read), written to the repository "
          "after compression (stored), and new to the repository (new).")),
      restore_bytes_(registry_.AddCounter("dagvault_agent_restore_bytes_total",
                                          "Bytes successful restores wrote.")),
      pages_checked_(registry_.AddCounter("dagvault_agent_pages_checked_total",
                                          "Database pages the inline check verified.")),
      check_cpu_(registry_.AddCounter(
          "dagvault_agent_transfer_cpu_seconds_total",
          "CPU time of successful backups' transfers (read, check, compress, encrypt, store).")),
      freeze_(registry_.AddHistogram("dagvault_agent_freeze_seconds",
                                     "Freeze to Thaw of successful backups, by snapshot provider.",
                                     {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 20, 60})),
      transfer_(registry_.AddHistogram("dagvault_agent_transfer_seconds",
                                       "How long successful backups' transfers took, by "
                                       "snapshot provider.",
                                       metrics::DurationBuckets())),
      writer_calls_(registry_.AddHistogram(
          "dagvault_agent_writer_call_seconds",
          "Latency of calls to the application's writers (PrepareBackup, Freeze, Thaw, "
          "BackupComplete, ...), by call.",
          {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 20, 60})),
      writer_errors_(registry_.AddCounter("dagvault_agent_writer_call_errors_total",
                                          "Writer calls that failed, by call.")) {
  for (const char* kind : {"backup", "restore", "copy-op"}) {
    for (const char* result : {"succeeded", "failed", "cancelled"}) {
      jobs_.Add({{"kind", kind}, {"result", result}}, 0);
    }
  }
  registry_.AddCollector([running = std::move(running)](TextWriter& w) {
    const std::vector<RunningJobView> jobs = running();
    w.Family("dagvault_agent_running_jobs", Type::kGauge, "Jobs running on this agent now.");
    w.Sample({}, static_cast<double>(jobs.size()));
    w.Family("dagvault_agent_job_bytes", Type::kGauge,
             "Each running job's progress: bytes done and in all, by kind, unit and phase.");
    for (const auto& j : jobs) {
      if (j.bytes_total == 0) continue;
      w.Sample({{"kind", j.kind}, {"unit", j.unit}, {"phase", j.phase}, {"measure", "done"}},
               static_cast<double>(j.bytes_done));
      w.Sample({{"kind", j.kind}, {"unit", j.unit}, {"phase", j.phase}, {"measure", "total"}},
               static_cast<double>(j.bytes_total));
    }
    w.Family("dagvault_agent_job_rate_bytes_per_second", Type::kGauge,
             "Each running job's transfer rate.");
    for (const auto& j : jobs) {
      if (j.bytes_per_second > 0) {
        w.Sample({{"kind", j.kind}, {"unit", j.unit}}, j.bytes_per_second);
      }
    }
  });
  registry_.AddCollector([certificate = std::move(certificate)](TextWriter& w) {
    w.Family("process_cpu_seconds_total", Type::kCounter, "User and system CPU time spent.");
    w.Sample({}, CpuSeconds());
    w.Family("process_resident_memory_bytes", Type::kGauge, "Resident memory size.");
    w.Sample({}, ResidentBytes());
    w.Family("dagvault_certificate_expiry_timestamp_seconds", Type::kGauge,
             "When the agent's own certificate expires (unix time).");
    if (!certificate.empty()) {
      if (auto t = CertificateNotAfter(certificate); t.ok()) {
        w.Sample({{"name", "agent"}}, absl::ToDoubleSeconds(*t - absl::UnixEpoch()));
      }
    }
  });
}

void AgentMetrics::JobEnded(const std::string& kind, const std::string& result) {
  jobs_.Add({{"kind", kind}, {"result", result}});
}

void AgentMetrics::BackupSucceeded(const BackupJobResult& r) {
  backup_bytes_.Add({{"measure", "read"}}, static_cast<double>(r.logical_bytes));
  backup_bytes_.Add({{"measure", "stored"}}, static_cast<double>(r.stored_bytes));
  backup_bytes_.Add({{"measure", "new"}}, static_cast<double>(r.new_bytes));
  pages_checked_.Add({}, static_cast<double>(r.verified.pages));
  check_cpu_.Add({}, absl::ToDoubleSeconds(r.transfer_cpu));
  const std::string provider = r.snapshot_provider.empty() ? "none" : r.snapshot_provider;
  freeze_.Observe({{"provider", provider}}, absl::ToDoubleSeconds(r.freeze_window));
  transfer_.Observe({{"provider", provider}}, absl::ToDoubleSeconds(r.transfer));
}

void AgentMetrics::WriterCall(const std::string& method, absl::Duration took, bool ok) {
  writer_calls_.Observe({{"call", method}}, absl::ToDoubleSeconds(took));
  if (!ok) writer_errors_.Add({{"call", method}});
}

void AgentMetrics::RestoreSucceeded(uint64_t bytes) {
  restore_bytes_.Add({}, static_cast<double>(bytes));
}

}  // namespace dagvault::agent
