// The SQLite catalog's backups, chain breaks and expiry; policies, their
// schedules and the scheduler's queue.
#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "coordinator/catalog/sqlite_statement.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;
using sqlite::Serialized;
using sqlite::Statement;
using sqlite::TimeOf;
using sqlite::Us;

// --- backups ---

absl::Status SqliteCatalog::WriteBackup(const BackupRecord& b) {
  Statement s(db_, path_,
              "INSERT OR REPLACE INTO backups (manifest, unit, type, source_node, "
              "writer_instance, low_generation, high_generation, log_signature, "
              "database_signatures, logical_bytes, new_bytes, stored_bytes, started_us, "
              "finished_us, verified, job, chain_summary) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  return s.Bind(b.manifest)
      .Bind(b.unit)
      .Bind(int64_t{b.type})
      .Bind(b.source_node)
      .Bind(b.writer_instance)
      .Bind(int64_t{b.low_generation})
      .Bind(int64_t{b.high_generation})
      .Bind(b.log_signature)
      .Bind(absl::StrJoin(b.database_signatures, ","))
      .Bind(static_cast<int64_t>(b.logical_bytes))
      .Bind(static_cast<int64_t>(b.new_bytes))
      .Bind(static_cast<int64_t>(b.stored_bytes))
      .Bind(Us(b.started))
      .Bind(Us(b.finished))
      .Bind(int64_t{b.verified ? 1 : 0})
      .Bind(b.job)
      .BindBlob(Serialized(b.chain_summary))
      .Run();
}

absl::Status SqliteCatalog::PutBackup(const BackupRecord& backup) {
  std::lock_guard<std::mutex> l(mu_);
  return WriteBackup(backup);
}

absl::StatusOr<std::vector<BackupRecord>> SqliteCatalog::Backups(const std::string& unit) {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_,
              absl::StrCat("SELECT ", codec::kBackupColumns, " FROM backups ",
                           unit.empty() ? "" : "WHERE unit = ? ", "ORDER BY manifest"));
  if (!unit.empty()) s.Bind(unit);
  std::vector<BackupRecord> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    ASSIGN_OR_RETURN(BackupRecord b, codec::BackupFromRow(s, path_));
    out.push_back(std::move(b));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteCatalog::ReplaceBackups(const std::vector<BackupRecord>& backups) {
  std::lock_guard<std::mutex> l(mu_);
  return Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(Exec("DELETE FROM backups"));
    for (const BackupRecord& b : backups) RETURN_IF_ERROR(WriteBackup(b));
    return absl::OkStatus();
  });
}

absl::Status SqliteCatalog::ExpireBackups(const std::vector<BackupRecord>& backups,
                                          const std::string& why, absl::Time when) {
  std::lock_guard<std::mutex> l(mu_);
  return Transaction([&]() -> absl::Status {
    for (const BackupRecord& b : backups) {
      RETURN_IF_ERROR(
          Statement(db_, path_, "DELETE FROM backups WHERE manifest = ?").Bind(b.manifest).Run());
      RETURN_IF_ERROR(Statement(db_, path_,
                                "INSERT OR REPLACE INTO expiring (manifest, unit, decided_us, why) "
                                "VALUES (?, ?, ?, ?)")
                          .Bind(b.manifest)
                          .Bind(b.unit)
                          .Bind(Us(when))
                          .Bind(why)
                          .Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<std::string>> SqliteCatalog::Expiring() {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_, "SELECT manifest FROM expiring ORDER BY manifest");
  std::vector<std::string> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    out.push_back(s.Text(0));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteCatalog::ClearExpiring(const std::vector<std::string>& manifests) {
  std::lock_guard<std::mutex> l(mu_);
  return Transaction([&]() -> absl::Status {
    for (const auto& m : manifests) {
      RETURN_IF_ERROR(
          Statement(db_, path_, "DELETE FROM expiring WHERE manifest = ?").Bind(m).Run());
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteCatalog::PutChainBreak(const ChainBreakRecord& b) {
  std::lock_guard<std::mutex> l(mu_);
  return Statement(db_, path_,
                   "INSERT OR REPLACE INTO chain_breaks (unit, after_manifest, generation, reason, "
                   "detected_us, job) VALUES (?, ?, ?, ?, ?, ?)")
      .Bind(b.unit)
      .Bind(b.after_manifest)
      .Bind(static_cast<int64_t>(b.generation))
      .Bind(b.reason)
      .Bind(Us(b.detected))
      .Bind(b.job)
      .Run();
}

absl::StatusOr<std::vector<ChainBreakRecord>> SqliteCatalog::ChainBreaks(const std::string& unit) {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_,
              "SELECT unit, after_manifest, generation, reason, detected_us, job FROM chain_breaks "
              "WHERE unit = ? ORDER BY after_manifest");
  s.Bind(unit);
  std::vector<ChainBreakRecord> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    out.push_back({s.Text(0), s.Text(1), static_cast<uint32_t>(s.Int(2)), s.Text(3),
                   TimeOf(s.Int(4)), s.Text(5)});
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteCatalog::PutPolicy(const v1::Policy& policy) {
  std::lock_guard<std::mutex> l(mu_);
  return Statement(db_, path_, "INSERT OR REPLACE INTO policies (name, policy) VALUES (?, ?)")
      .Bind(policy.name())
      .BindBlob(policy.SerializeAsString())
      .Run();
}

absl::StatusOr<std::vector<v1::Policy>> SqliteCatalog::Policies() {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_, "SELECT name, policy FROM policies ORDER BY name");
  std::vector<v1::Policy> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    v1::Policy p;
    if (!p.ParseFromString(s.Text(1))) {
      return absl::DataLossError(
          absl::StrCat("catalog ", path_, ": policy \"", s.Text(0), "\" does not parse"));
    }
    out.push_back(std::move(p));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteCatalog::RemovePolicy(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  return Statement(db_, path_, "DELETE FROM policies WHERE name = ?").Bind(name).Run();
}

absl::StatusOr<absl::Time> SqliteCatalog::LastFired(const std::string& policy,
                                                    const std::string& kind) {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_, "SELECT fired_us FROM schedule_fired WHERE policy = ? AND kind = ?");
  s.Bind(policy).Bind(kind);
  ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? TimeOf(s.Int(0)) : absl::InfinitePast();
}

absl::Status SqliteCatalog::SetLastFired(const std::string& policy, const std::string& kind,
                                         absl::Time when) {
  std::lock_guard<std::mutex> l(mu_);
  return Statement(
             db_, path_,
             "INSERT OR REPLACE INTO schedule_fired (policy, kind, fired_us) VALUES (?, ?, ?)")
      .Bind(policy)
      .Bind(kind)
      .Bind(Us(when))
      .Run();
}

absl::Status SqliteCatalog::FireSchedule(const std::string& policy, const std::string& kind,
                                         absl::Time when,
                                         const std::vector<QueuedBackupRecord>& queue,
                                         bool supersede) {
  std::lock_guard<std::mutex> l(mu_);
  return Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(
        Statement(db_, path_,
                  "INSERT OR REPLACE INTO schedule_fired (policy, kind, fired_us) VALUES (?, ?, ?)")
            .Bind(policy)
            .Bind(kind)
            .Bind(Us(when))
            .Run());
    for (const auto& q : queue) {
      if (supersede) {
        RETURN_IF_ERROR(
            Statement(db_, path_, "DELETE FROM schedule_queue WHERE unit = ?").Bind(q.unit).Run());
      }
      RETURN_IF_ERROR(Statement(db_, path_,
                                "INSERT OR IGNORE INTO schedule_queue (unit, type, policy, "
                                "priority, due_us) VALUES (?, ?, ?, ?, ?)")
                          .Bind(q.unit)
                          .Bind(int64_t{q.type})
                          .Bind(q.policy)
                          .Bind(int64_t{q.priority})
                          .Bind(Us(q.due))
                          .Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<QueuedBackupRecord>> SqliteCatalog::QueuedBackups() {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_,
              "SELECT unit, type, policy, priority, due_us FROM schedule_queue "
              "ORDER BY due_us, unit, type");
  std::vector<QueuedBackupRecord> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    QueuedBackupRecord q;
    q.unit = s.Text(0);
    q.type = static_cast<v1::BackupType>(s.Int(1));
    q.policy = s.Text(2);
    q.priority = static_cast<int>(s.Int(3));
    q.due = TimeOf(s.Int(4));
    out.push_back(std::move(q));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteCatalog::RemoveQueued(const std::string& unit, v1::BackupType type) {
  std::lock_guard<std::mutex> l(mu_);
  return Statement(db_, path_, "DELETE FROM schedule_queue WHERE unit = ? AND type = ?")
      .Bind(unit)
      .Bind(int64_t{type})
      .Run();
}

absl::Status SqliteCatalog::PutVerification(const dagvault::v1::RestoreVerification& v) {
  std::lock_guard<std::mutex> l(mu_);
  return Statement(db_, path_,
                   "INSERT OR REPLACE INTO restore_verifications (job, unit, ended_us, record) "
                   "VALUES (?, ?, ?, ?)")
      .Bind(v.job())
      .Bind(v.unit())
      .Bind(static_cast<int64_t>(v.ended_us()))
      .BindBlob(v.SerializeAsString())
      .Run();
}

absl::StatusOr<std::vector<dagvault::v1::RestoreVerification>> SqliteCatalog::Verifications(
    const std::string& unit, size_t limit) {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_,
              "SELECT job, record FROM restore_verifications WHERE unit = ? ORDER BY ended_us "
              "DESC, job DESC LIMIT ?");
  s.Bind(unit);
  s.Bind(limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
  std::vector<dagvault::v1::RestoreVerification> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    dagvault::v1::RestoreVerification v;
    if (!v.ParseFromString(s.Text(1))) {
      return absl::DataLossError(absl::StrCat(
          "catalog ", path_, ": the restore verification of job ", s.Text(0), " does not parse"));
    }
    out.push_back(std::move(v));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteCatalog::AppendAudit(const dagvault::v1::AuditEntry& entry) {
  std::lock_guard<std::mutex> l(mu_);
  return Statement(db_, path_, "INSERT INTO audit (time_us, identity, entry) VALUES (?, ?, ?)")
      .Bind(static_cast<int64_t>(entry.time_us()))
      .Bind(entry.identity())
      .BindBlob(entry.SerializeAsString())
      .Run();
}

absl::StatusOr<std::vector<dagvault::v1::AuditEntry>> SqliteCatalog::AuditEntries(
    size_t limit, const std::string& identity) {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_,
              identity.empty()
                  ? "SELECT seq, entry FROM audit ORDER BY seq DESC LIMIT ?"
                  : "SELECT seq, entry FROM audit WHERE identity = ? ORDER BY seq DESC LIMIT ?");
  if (!identity.empty()) s.Bind(identity);
  s.Bind(static_cast<int64_t>(limit));
  std::vector<dagvault::v1::AuditEntry> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    dagvault::v1::AuditEntry e;
    if (!e.ParseFromString(s.Text(1))) {
      return absl::DataLossError(
          absl::StrCat("catalog ", path_, ": audit entry ", s.Int(0), " does not parse"));
    }
    out.push_back(std::move(e));
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace dagvault::coordinator
