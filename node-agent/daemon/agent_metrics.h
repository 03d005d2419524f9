// The agent's Prometheus metrics (docs/monitoring.md): jobs by kind and
// result, what backups read, stored and found new, the pages checked and
// the CPU time the inline check took, freeze windows and transfer times by
// snapshot provider, restores' bytes; at scrape time, each running job's
// progress and rate and the process's own CPU and memory. Labels are
// bounded: kinds, results, providers, units; never job ids.
#pragma once

#include <string>
#include <vector>

#include "common/metrics/registry.h"
#include "node-agent/jobs/backup_job.h"

namespace dagvault::agent {

// A running job as the scrape shows it.
struct RunningJobView {
  std::string kind;  // backup, restore, copy-op
  std::string unit;
  std::string phase;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  double bytes_per_second = 0;
};

class AgentMetrics {
 public:
  // `running` is called at every scrape; `certificate` is the agent's own
  // (its expiry is exported), empty for none.
  AgentMetrics(std::function<std::vector<RunningJobView>()> running, std::string certificate);
  metrics::Registry& registry() { return registry_; }

  // A job's final update: `result` is succeeded, failed or cancelled.
  void JobEnded(const std::string& kind, const std::string& result);
  void BackupSucceeded(const BackupJobResult& r);
  void RestoreSucceeded(uint64_t bytes);
  // A writer call ended (node-agent/shadow ConnectWriter's observer).
  void WriterCall(const std::string& method, absl::Duration took, bool ok);

 private:
  metrics::Registry registry_;
  metrics::Counter& jobs_;
  metrics::Counter& backup_bytes_;
  metrics::Counter& restore_bytes_;
  metrics::Counter& pages_checked_;
  metrics::Counter& check_cpu_;
  metrics::Histogram& freeze_;
  metrics::Histogram& transfer_;
  metrics::Histogram& writer_calls_;
  metrics::Counter& writer_errors_;
};

}  // namespace dagvault::agent
