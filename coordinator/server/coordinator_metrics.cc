#include "coordinator/server/coordinator_metrics.h"

#include "common/certs.h"
#include "common/copy_state.h"
#include "common/logging.h"
#include "common/rpo_state.h"
#include "coordinator/server/coordinator.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;
using metrics::Labels;
using metrics::TextWriter;
using metrics::Type;

namespace {

double Seconds(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

std::string Result(JobState s) {
  return s == JobState::kSucceeded   ? "succeeded"
         : s == JobState::kCancelled ? "cancelled"
                                     : "failed";
}

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(Coordinator* coordinator)
    : c_(coordinator),
      jobs_(registry_.AddCounter("dagvault_jobs_total",
                                 "Jobs that ended since the coordinator started, by kind (backup, "
                                 "restore) and result (succeeded, failed, cancelled).")),
      job_seconds_(registry_.AddHistogram("dagvault_job_duration_seconds",
                                          "How long jobs took from start to end, by kind.",
                                          metrics::DurationBuckets())),
      leases_expired_(registry_.AddCounter(
          "dagvault_leases_expired_total",
          "Job attempts whose lease ran out before their agent reported (backups, restores and "
          "restore steps), by unit.")),
      verifications_(registry_.AddCounter(
          "dagvault_restore_verifications_total",
          "Restore verifications that ended since the coordinator started, by unit and result "
          "(passed, failed, inconclusive).")),
      catalog_seconds_(registry_.AddHistogram(
          "dagvault_catalog_operation_seconds", "Catalog calls' latency, by operation.",
          {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})),
      catalog_errors_(registry_.AddCounter("dagvault_catalog_errors_total",
                                           "Catalog calls that failed, by operation.")) {
  // Every series an alert counts on exists from the start, at 0: an
  // increase() over the first failure after a restart sees it.
  for (const char* kind : {"backup", "restore"}) {
    for (const char* result : {"succeeded", "failed", "cancelled"}) {
      jobs_.Add({{"kind", kind}, {"result", result}}, 0);
    }
  }
  registry_.AddCollector([this](TextWriter& w) { CollectUnits(w); });
  registry_.AddCollector([this](TextWriter& w) { CollectLastBackups(w); });
  registry_.AddCollector([this](TextWriter& w) { CollectDeployment(w); });
}

void CoordinatorMetrics::JobEnded(const JobRecord& job) {
  const std::string result = Result(job.state);
  jobs_.Add({{"kind", job.kind}, {"result", result}});
  const double duration =
      job.created == absl::InfinitePast() ? 0 : absl::ToDoubleSeconds(job.updated - job.created);
  job_seconds_.Observe({{"kind", job.kind}}, duration);
  if (job.kind != "backup") return;
  std::lock_guard<std::mutex> l(mu_);
  LastBackup& b = last_[job.unit];
  b.succeeded = job.state == JobState::kSucceeded;
  b.ended = Seconds(job.updated);
  b.duration = duration;
}

void CoordinatorMetrics::VerificationEnded(const v1::RestoreVerification& verification) {
  verifications_.Add({{"unit", verification.unit()},
                      {"result", verification.passed()         ? "passed"
                                 : verification.inconclusive() ? "inconclusive"
                                                               : "failed"}});
  // An inconclusive one leaves the unit's last conclusive answer standing.
  if (verification.inconclusive()) return;
  std::lock_guard<std::mutex> l(mu_);
  last_verification_[verification.unit()] = {verification.passed(),
                                             static_cast<double>(verification.ended_us()) / 1e6};
}

void CoordinatorMetrics::BackupSucceeded(const JobRecord& job, const std::string& node,
                                         const v1::BackupJobResult& result) {
  std::lock_guard<std::mutex> l(mu_);
  LastBackup& b = last_[job.unit];
  b.has_result = true;
  b.source = node;
  b.freeze = static_cast<double>(result.freeze_window_us()) / 1e6;
  b.logical = result.logical_bytes();
  b.stored = result.stored_bytes();
  b.fresh = result.new_bytes();
}

void CoordinatorMetrics::LeaseExpired(const std::string& unit, const std::string&) {
  leases_expired_.Add({{"unit", unit}});
}

void CoordinatorMetrics::CollectUnits(TextWriter& w) {
  auto protection = c_->Protection("", /*every_unit=*/true, /*sources=*/false);
  if (!protection.ok()) {
    logging::Get("metrics")->warn("unit metrics: {}", protection.status());
    return;
  }
  const std::vector<v1::UnitProtection>* units = &protection->units;
  w.Family("dagvault_unit_rpo_state", Type::kGauge,
           "1 for the unit's state against its RPO (ok, warning, critical, never backed up, "
           "not set, unknown: not judged), 0 for the others.");
  for (const auto& u : *units) {
    for (v1::RpoState s : {v1::RPO_OK, v1::RPO_WARNING, v1::RPO_CRITICAL, v1::RPO_NEVER_BACKED_UP,
                           v1::RPO_NOT_SET, v1::RPO_STATE_UNSPECIFIED}) {
      w.Sample({{"unit", u.unit()}, {"state", RpoStateName(s)}}, u.state() == s ? 1 : 0);
    }
  }
  struct Level {
    const char* name;
    const char* help;
    uint64_t (v1::UnitProtection::*get)() const;
  };
  for (const Level& level :
       {Level{"dagvault_unit_rpo_seconds", "The unit's RPO (units with one).",
              &v1::UnitProtection::rpo_seconds},
        Level{"dagvault_unit_rpo_warning_seconds",
              "Age of the newest restore point past which "
              "the unit is in warning (before the grace).",
              &v1::UnitProtection::warning_seconds},
        Level{"dagvault_unit_rpo_critical_seconds",
              "Age of the newest restore point past which the unit is critical (before the "
              "grace).",
              &v1::UnitProtection::critical_seconds}}) {
    w.Family(level.name, Type::kGauge, level.help);
    for (const auto& u : *units) {
      if (u.rpo_seconds() != 0)
        w.Sample({{"unit", u.unit()}}, static_cast<double>((u.*level.get)()));
    }
  }
  w.Family("dagvault_unit_restore_point_age_seconds", Type::kGauge,
           "Age of the unit's newest verified restore point (units that have one).");
  for (const auto& u : *units) {
    if (u.newest_restore_point_us() != 0) {
      w.Sample({{"unit", u.unit()}}, static_cast<double>(u.newest_restore_point_age_seconds()));
    }
  }
  w.Family("dagvault_unit_restore_point_timestamp_seconds", Type::kGauge,
           "When the unit's newest verified restore point was frozen (unix time).");
  for (const auto& u : *units) {
    if (u.newest_restore_point_us() != 0) {
      w.Sample({{"unit", u.unit()}, {"node", u.newest_restore_point_node()}},
               static_cast<double>(u.newest_restore_point_us()) / 1e6);
    }
  }
  w.Family("dagvault_unit_archive_lag_seconds", Type::kGauge,
           "Age of the unit's newest archived log generation (units whose logs are archived).");
  for (const auto& u : *units) {
    if (u.archived_through_us() != 0) {
      w.Sample({{"unit", u.unit()}}, static_cast<double>(u.archive_lag_seconds()));
    }
  }
  w.Family("dagvault_unit_archived_generation", Type::kGauge,
           "The unit's newest archived log generation.");
  for (const auto& u : *units) {
    if (u.archived_through_us() != 0) {
      w.Sample({{"unit", u.unit()}}, static_cast<double>(u.archived_through_generation()));
    }
  }
  w.Family("dagvault_unit_full_age_seconds", Type::kGauge,
           "Age of the unit's newest Full that starts a valid chain.");
  for (const auto& u : *units) {
    if (u.newest_full_us() != 0) {
      w.Sample({{"unit", u.unit()}}, static_cast<double>(u.newest_full_age_seconds()));
    }
  }
  w.Family("dagvault_unit_backup_source_available", Type::kGauge,
           "1 when a copy of the unit qualifies as a backup source now, 0 when none does.");
  for (const auto& u : *units) {
    w.Sample({{"unit", u.unit()}}, u.next_source().empty() ? 0 : 1);
  }
}

void CoordinatorMetrics::CollectLastBackups(TextWriter& w) {
  std::lock_guard<std::mutex> l(mu_);
  w.Family("dagvault_unit_last_verification_passed", Type::kGauge,
           "1 when the unit's last restore verification passed, 0 when it failed (units verified "
           "since the coordinator started).");
  for (const auto& [unit, v] : last_verification_) w.Sample({{"unit", unit}}, v.first ? 1 : 0);
  w.Family("dagvault_unit_last_verification_end_timestamp_seconds", Type::kGauge,
           "When the unit's last restore verification ended (unix time).");
  for (const auto& [unit, v] : last_verification_) w.Sample({{"unit", unit}}, v.second);
  w.Family("dagvault_unit_last_backup_success", Type::kGauge,
           "1 when the unit's last backup job succeeded, 0 when it failed or was cancelled.");
  for (const auto& [unit, b] : last_) w.Sample({{"unit", unit}}, b.succeeded ? 1 : 0);
  w.Family("dagvault_unit_last_backup_end_timestamp_seconds", Type::kGauge,
           "When the unit's last backup job ended (unix time).");
  for (const auto& [unit, b] : last_) w.Sample({{"unit", unit}}, b.ended);
  w.Family("dagvault_unit_last_backup_duration_seconds", Type::kGauge,
           "How long the unit's last backup job took.");
  for (const auto& [unit, b] : last_) w.Sample({{"unit", unit}}, b.duration);
  w.Family("dagvault_unit_last_good_backup_bytes", Type::kGauge,
           "The unit's last successful backup: bytes read (logical), stored, and new to the "
           "repository.");
  for (const auto& [unit, b] : last_) {
    if (!b.has_result) continue;
    w.Sample({{"unit", unit}, {"measure", "read"}}, static_cast<double>(b.logical));
    w.Sample({{"unit", unit}, {"measure", "stored"}}, static_cast<double>(b.stored));
    w.Sample({{"unit", unit}, {"measure", "new"}}, static_cast<double>(b.fresh));
  }
  w.Family("dagvault_unit_last_good_backup_freeze_seconds", Type::kGauge,
           "Freeze to Thaw of the unit's last successful backup.");
  for (const auto& [unit, b] : last_) {
    if (b.has_result) w.Sample({{"unit", unit}}, b.freeze);
  }
  w.Family("dagvault_unit_last_good_backup_source", Type::kGauge,
           "1 for the node whose copy the unit's last successful backup read.");
  for (const auto& [unit, b] : last_) {
    if (b.has_result) w.Sample({{"unit", unit}, {"node", b.source}}, 1);
  }
}

void CoordinatorMetrics::CollectDeployment(TextWriter& w) {
  v1::ClusterStatusRequest all;
  all.set_all_copies(true);  // and so every node
  v1::ClusterStatus status;
  c_->topology().Describe(all, &status);
  w.Family("dagvault_node_reporting", Type::kGauge,
           "1 while the node's agent reports, 0 when it has stopped.");
  for (const auto& n : status.nodes()) w.Sample({{"node", n.node()}}, n.reporting() ? 1 : 0);
  w.Family("dagvault_node_last_report_timestamp_seconds", Type::kGauge,
           "When the node's agent last reported (unix time).");
  for (const auto& n : status.nodes()) {
    if (n.last_report_us() != 0) {
      w.Sample({{"node", n.node()}}, static_cast<double>(n.last_report_us()) / 1e6);
    }
  }
  std::map<std::string, int> by_state;
  for (const auto& c : status.copies()) {
    ++by_state[c.node_reporting() ? CopyStateName(c.status().state()) : "ServiceDown"];
  }
  w.Family("dagvault_copies", Type::kGauge, "Copies by state.");
  for (const auto& [state, n] : by_state) w.Sample({{"state", state}}, n);
  w.Family("dagvault_copy_queue_generations", Type::kGauge,
           "Logs a passive copy has not copied yet, per copy.");
  for (const auto& c : status.copies()) {
    if (c.status().role() == v1::PASSIVE) {
      w.Sample({{"unit", c.status().unit()}, {"node", c.status().node()}}, c.status().copy_queue());
    }
  }
  w.Family("dagvault_replay_queue_generations", Type::kGauge,
           "Logs a passive copy has copied and not replayed yet, per copy.");
  for (const auto& c : status.copies()) {
    if (c.status().role() == v1::PASSIVE) {
      w.Sample({{"unit", c.status().unit()}, {"node", c.status().node()}},
               c.status().replay_queue());
    }
  }
  auto leases = c_->catalog().Leases();
  w.Family("dagvault_lease_held_seconds", Type::kGauge,
           "How long each backup-in-progress lease has been held, by unit.");
  if (leases.ok()) {
    const absl::Time now = absl::Now();
    for (const auto& l : *leases) {
      w.Sample({{"unit", l.unit}, {"node", l.holder_node}},
               absl::ToDoubleSeconds(now - l.acquired));
    }
  }
  w.Family("dagvault_leases_held", Type::kGauge, "Backup-in-progress leases held now.");
  if (leases.ok()) w.Sample({}, static_cast<double>(leases->size()));
  w.Family("dagvault_scheduler_queue_depth", Type::kGauge,
           "Scheduled backups due and not started yet.");
  w.Sample({}, static_cast<double>(c_->scheduler().Queue().size()));
  w.Family("dagvault_certificate_expiry_timestamp_seconds", Type::kGauge,
           "When the coordinator's own certificate expires (unix time).");
  if (!c_->config().tls().cert_file().empty()) {
    auto not_after = CertificateNotAfter(c_->config().tls().cert_file());
    if (not_after.ok()) w.Sample({{"name", "coordinator"}}, Seconds(*not_after));
  }
}

}  // namespace dagvault::coordinator
