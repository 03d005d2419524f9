// The coordinator's Prometheus metrics (docs/monitoring.md lists every
// name). Jobs are counted as they end (JobObserver); everything else is
// read at scrape time from what the coordinator already knows: each unit's
// protection against its RPO, the topology, the leases, the scheduler's
// queue, its own certificate. Labels are bounded: units, nodes, states and
// kinds, never job ids.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "common/metrics/registry.h"
#include "coordinator/server/job_manager.h"

namespace dagvault::coordinator {

class Coordinator;

class CoordinatorMetrics : public JobObserver {
 public:
  explicit CoordinatorMetrics(Coordinator* coordinator);
  metrics::Registry& registry() { return registry_; }
  // For InstrumentedCatalog.
  metrics::Histogram& catalog_seconds() { return catalog_seconds_; }
  metrics::Counter& catalog_errors() { return catalog_errors_; }

  void JobEnded(const JobRecord& job) override;
  void BackupSucceeded(const JobRecord& job, const std::string& node,
                       const dagvault::v1::BackupJobResult& result) override;
  void LeaseExpired(const std::string& unit, const std::string& node) override;
  void VerificationEnded(const dagvault::v1::RestoreVerification& verification) override;

 private:
  struct LastBackup {
    bool succeeded = false;
    double ended = 0;     // unix seconds
    double duration = 0;  // seconds, created to end
    std::string source;
    double freeze = 0;  // seconds
    uint64_t logical = 0, stored = 0, fresh = 0;
    bool has_result = false;
  };
  void CollectUnits(metrics::TextWriter& w);
  void CollectLastBackups(metrics::TextWriter& w);
  void CollectDeployment(metrics::TextWriter& w);

  Coordinator* c_;
  metrics::Registry registry_;
  metrics::Counter& jobs_;
  metrics::Histogram& job_seconds_;
  metrics::Counter& leases_expired_;
  metrics::Counter& verifications_;
  metrics::Histogram& catalog_seconds_;
  metrics::Counter& catalog_errors_;
  std::mutex mu_;
  std::map<std::string, LastBackup> last_;  // by unit
  // By unit: whether its last restore verification passed, and when it
  // ended (unix seconds).
  std::map<std::string, std::pair<bool, double>> last_verification_;
};

}  // namespace dagvault::coordinator
