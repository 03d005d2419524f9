// The PostgreSQL catalog's backups, chain breaks and expiry; policies, their
// schedules and the scheduler's queue; the audit log.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "coordinator/catalog/catalog_codec.h"
#include "coordinator/catalog/postgres_catalog.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;
using codec::Serialized;
using codec::TimeOf;
using codec::Us;
using pg::Connection;
using pg::Params;
using pg::Result;

namespace {

absl::Status WriteBackup(Connection& tx, const BackupRecord& b) {
  return tx
      .Exec(
          "INSERT INTO backups (manifest, unit, type, source_node, writer_instance, "
          "low_generation, high_generation, log_signature, database_signatures, logical_bytes, "
          "new_bytes, stored_bytes, started_us, finished_us, verified, job, chain_summary) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) "
          "ON CONFLICT (manifest) DO UPDATE SET unit = excluded.unit, type = excluded.type, "
          "source_node = excluded.source_node, writer_instance = excluded.writer_instance, "
          "low_generation = excluded.low_generation, high_generation = "
          "excluded.high_generation, log_signature = excluded.log_signature, "
          "database_signatures = excluded.database_signatures, logical_bytes = "
          "excluded.logical_bytes, new_bytes = excluded.new_bytes, stored_bytes = "
          "excluded.stored_bytes, started_us = excluded.started_us, finished_us = "
          "excluded.finished_us, verified = excluded.verified, job = excluded.job, "
          "chain_summary = excluded.chain_summary",
          Params()
              .Text(b.manifest)
              .Text(b.unit)
              .Int(b.type)
              .Text(b.source_node)
              .Text(b.writer_instance)
              .Int(b.low_generation)
              .Int(b.high_generation)
              .Text(b.log_signature)
              .Text(absl::StrJoin(b.database_signatures, ","))
              .Int(static_cast<int64_t>(b.logical_bytes))
              .Int(static_cast<int64_t>(b.new_bytes))
              .Int(static_cast<int64_t>(b.stored_bytes))
              .Int(Us(b.started))
              .Int(Us(b.finished))
              .Int(b.verified ? 1 : 0)
              .Text(b.job)
              .Bytes(Serialized(b.chain_summary)))
      .status();
}

}  // namespace

// --- backups ---

absl::Status PostgresCatalog::PutBackup(const BackupRecord& backup) {
  return Write(true, [&](Connection& tx) { return WriteBackup(tx, backup); });
}

absl::StatusOr<std::vector<BackupRecord>> PostgresCatalog::Backups(const std::string& unit) {
  Params params;
  if (!unit.empty()) params.Text(unit);
  ASSIGN_OR_RETURN(Result r, Read(absl::StrCat("SELECT ", codec::kBackupColumns, " FROM backups ",
                                               unit.empty() ? "" : "WHERE unit = $1 ",
                                               "ORDER BY manifest COLLATE \"C\""),
                                  params));
  std::vector<BackupRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    ASSIGN_OR_RETURN(BackupRecord b, codec::BackupFromRow(r.row(i), Name()));
    out.push_back(std::move(b));
  }
  return out;
}

absl::Status PostgresCatalog::ReplaceBackups(const std::vector<BackupRecord>& backups) {
  return Write(true, [&](Connection& tx) -> absl::Status {
    RETURN_IF_ERROR(tx.Exec("DELETE FROM backups").status());
    for (const BackupRecord& b : backups) RETURN_IF_ERROR(WriteBackup(tx, b));
    return absl::OkStatus();
  });
}

absl::Status PostgresCatalog::ExpireBackups(const std::vector<BackupRecord>& backups,
                                            const std::string& why, absl::Time when) {
  return Write(true, [&](Connection& tx) -> absl::Status {
    for (const BackupRecord& b : backups) {
      RETURN_IF_ERROR(
          tx.Exec("DELETE FROM backups WHERE manifest = $1", Params().Text(b.manifest)).status());
      RETURN_IF_ERROR(
          tx.Exec("INSERT INTO expiring (manifest, unit, decided_us, why) VALUES ($1, $2, $3, "
                  "$4) ON CONFLICT (manifest) DO UPDATE SET unit = excluded.unit, decided_us = "
                  "excluded.decided_us, why = excluded.why",
                  Params().Text(b.manifest).Text(b.unit).Int(Us(when)).Text(why))
              .status());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<std::string>> PostgresCatalog::Expiring() {
  ASSIGN_OR_RETURN(Result r, Read("SELECT manifest FROM expiring ORDER BY manifest COLLATE \"C\""));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Text(i, 0));
  return out;
}

absl::Status PostgresCatalog::ClearExpiring(const std::vector<std::string>& manifests) {
  return Write(true, [&](Connection& tx) -> absl::Status {
    for (const auto& m : manifests) {
      RETURN_IF_ERROR(
          tx.Exec("DELETE FROM expiring WHERE manifest = $1", Params().Text(m)).status());
    }
    return absl::OkStatus();
  });
}

absl::Status PostgresCatalog::PutChainBreak(const ChainBreakRecord& b) {
  return Write(true, [&](Connection& tx) {
    return tx
        .Exec(
            "INSERT INTO chain_breaks (unit, after_manifest, generation, reason, detected_us, "
            "job) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (unit, after_manifest) DO UPDATE "
            "SET generation = excluded.generation, reason = excluded.reason, detected_us = "
            "excluded.detected_us, job = excluded.job",
            Params()
                .Text(b.unit)
                .Text(b.after_manifest)
                .Int(b.generation)
                .Text(b.reason)
                .Int(Us(b.detected))
                .Text(b.job))
        .status();
  });
}

absl::StatusOr<std::vector<ChainBreakRecord>> PostgresCatalog::ChainBreaks(
    const std::string& unit) {
  ASSIGN_OR_RETURN(
      Result r, Read("SELECT unit, after_manifest, generation, reason, detected_us, "
                     "job FROM chain_breaks WHERE unit = $1 ORDER BY after_manifest COLLATE \"C\"",
                     Params().Text(unit)));
  std::vector<ChainBreakRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({r.Text(i, 0), r.Text(i, 1), static_cast<uint32_t>(r.Int(i, 2)), r.Text(i, 3),
                   TimeOf(r.Int(i, 4)), r.Text(i, 5)});
  }
  return out;
}

// --- policies and the scheduler ---

absl::Status PostgresCatalog::PutPolicy(const v1::Policy& policy) {
  return Write(true, [&](Connection& tx) {
    return tx
        .Exec(
            "INSERT INTO policies (name, policy) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE "
            "SET policy = excluded.policy",
            Params().Text(policy.name()).Bytes(policy.SerializeAsString()))
        .status();
  });
}

absl::StatusOr<std::vector<v1::Policy>> PostgresCatalog::Policies() {
  ASSIGN_OR_RETURN(Result r, Read("SELECT name, policy FROM policies ORDER BY name COLLATE \"C\""));
  std::vector<v1::Policy> out;
  for (int i = 0; i < r.rows(); ++i) {
    v1::Policy p;
    if (!p.ParseFromString(r.Bytes(i, 1))) {
      return absl::DataLossError(
          absl::StrCat("catalog ", Name(), ": policy \"", r.Text(i, 0), "\" does not parse"));
    }
    out.push_back(std::move(p));
  }
  return out;
}

absl::Status PostgresCatalog::RemovePolicy(const std::string& name) {
  return Write(true, [&](Connection& tx) {
    return tx.Exec("DELETE FROM policies WHERE name = $1", Params().Text(name)).status();
  });
}

absl::StatusOr<absl::Time> PostgresCatalog::LastFired(const std::string& policy,
                                                      const std::string& kind) {
  ASSIGN_OR_RETURN(Result r,
                   Read("SELECT fired_us FROM schedule_fired WHERE policy = $1 AND kind = $2",
                        Params().Text(policy).Text(kind)));
  return r.rows() > 0 ? TimeOf(r.Int(0, 0)) : absl::InfinitePast();
}

namespace {

absl::Status WriteFired(Connection& tx, const std::string& policy, const std::string& kind,
                        absl::Time when) {
  return tx
      .Exec(
          "INSERT INTO schedule_fired (policy, kind, fired_us) VALUES ($1, $2, $3) ON "
          "CONFLICT (policy, kind) DO UPDATE SET fired_us = excluded.fired_us",
          Params().Text(policy).Text(kind).Int(Us(when)))
      .status();
}

}  // namespace

absl::Status PostgresCatalog::SetLastFired(const std::string& policy, const std::string& kind,
                                           absl::Time when) {
  return Write(true, [&](Connection& tx) { return WriteFired(tx, policy, kind, when); });
}

absl::Status PostgresCatalog::FireSchedule(const std::string& policy, const std::string& kind,
                                           absl::Time when,
                                           const std::vector<QueuedBackupRecord>& queue,
                                           bool supersede) {
  // Twice is once: the same time, the same queue.
  return Write(true, [&](Connection& tx) -> absl::Status {
    RETURN_IF_ERROR(WriteFired(tx, policy, kind, when));
    for (const auto& q : queue) {
      if (supersede) {
        RETURN_IF_ERROR(
            tx.Exec("DELETE FROM schedule_queue WHERE unit = $1", Params().Text(q.unit)).status());
      }
      RETURN_IF_ERROR(
          tx.Exec("INSERT INTO schedule_queue (unit, type, policy, priority, due_us) "
                  "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (unit, type) DO NOTHING",
                  Params().Text(q.unit).Int(q.type).Text(q.policy).Int(q.priority).Int(Us(q.due)))
              .status());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<QueuedBackupRecord>> PostgresCatalog::QueuedBackups() {
  ASSIGN_OR_RETURN(Result r, Read("SELECT unit, type, policy, priority, due_us FROM "
                                  "schedule_queue ORDER BY due_us, unit COLLATE \"C\", type"));
  std::vector<QueuedBackupRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    QueuedBackupRecord q;
    q.unit = r.Text(i, 0);
    q.type = static_cast<v1::BackupType>(r.Int(i, 1));
    q.policy = r.Text(i, 2);
    q.priority = static_cast<int>(r.Int(i, 3));
    q.due = TimeOf(r.Int(i, 4));
    out.push_back(std::move(q));
  }
  return out;
}

absl::Status PostgresCatalog::RemoveQueued(const std::string& unit, v1::BackupType type) {
  return Write(true, [&](Connection& tx) {
    return tx
        .Exec("DELETE FROM schedule_queue WHERE unit = $1 AND type = $2",
              Params().Text(unit).Int(type))
        .status();
  });
}

// --- restore verifications ---

absl::Status PostgresCatalog::PutVerification(const v1::RestoreVerification& v) {
  return Write(true, [&](Connection& tx) {
    return tx
        .Exec(
            "INSERT INTO restore_verifications (job, unit, ended_us, record) VALUES ($1, $2, $3, "
            "$4) ON CONFLICT (job) DO UPDATE SET unit = excluded.unit, ended_us = "
            "excluded.ended_us, record = excluded.record",
            Params()
                .Text(v.job())
                .Text(v.unit())
                .Int(static_cast<int64_t>(v.ended_us()))
                .Bytes(v.SerializeAsString()))
        .status();
  });
}

absl::StatusOr<std::vector<v1::RestoreVerification>> PostgresCatalog::Verifications(
    const std::string& unit, size_t limit) {
  Params params;
  params.Text(unit);
  if (limit != 0) params.Int(static_cast<int64_t>(limit));
  ASSIGN_OR_RETURN(Result r, Read(limit == 0 ? "SELECT job, record FROM restore_verifications "
                                               "WHERE unit = $1 ORDER BY ended_us DESC, job "
                                               "COLLATE \"C\" DESC"
                                             : "SELECT job, record FROM restore_verifications "
                                               "WHERE unit = $1 ORDER BY ended_us DESC, job "
                                               "COLLATE \"C\" DESC LIMIT $2",
                                  params));
  std::vector<v1::RestoreVerification> out;
  for (int i = 0; i < r.rows(); ++i) {
    v1::RestoreVerification v;
    if (!v.ParseFromString(r.Bytes(i, 1))) {
      return absl::DataLossError(absl::StrCat("catalog ", Name(),
                                              ": the restore verification of job ", r.Text(i, 0),
                                              " does not parse"));
    }
    out.push_back(std::move(v));
  }
  return out;
}

// --- the audit log ---

absl::Status PostgresCatalog::AppendAudit(const v1::AuditEntry& entry) {
  // Not idempotent: a second run would log the action twice.
  return Write(false, [&](Connection& tx) {
    return tx
        .Exec("INSERT INTO audit (time_us, identity, entry) VALUES ($1, $2, $3)",
              Params()
                  .Int(static_cast<int64_t>(entry.time_us()))
                  .Text(entry.identity())
                  .Bytes(entry.SerializeAsString()))
        .status();
  });
}

absl::StatusOr<std::vector<v1::AuditEntry>> PostgresCatalog::AuditEntries(
    size_t limit, const std::string& identity) {
  Params params;
  if (!identity.empty()) params.Text(identity);
  params.Int(static_cast<int64_t>(limit));
  ASSIGN_OR_RETURN(
      Result r,
      Read(identity.empty()
               ? "SELECT seq, entry FROM audit ORDER BY seq DESC LIMIT $1"
               : "SELECT seq, entry FROM audit WHERE identity = $1 ORDER BY seq DESC LIMIT $2",
           params));
  std::vector<v1::AuditEntry> out;
  for (int i = 0; i < r.rows(); ++i) {
    v1::AuditEntry e;
    if (!e.ParseFromString(r.Bytes(i, 1))) {
      return absl::DataLossError(
          absl::StrCat("catalog ", Name(), ": audit entry ", r.Text(i, 0), " does not parse"));
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace dagvault::coordinator
