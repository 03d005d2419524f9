#include "coordinator/catalog/postgres_catalog.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "coordinator/catalog/catalog_codec.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using codec::Serialized;
using codec::TimeOf;
using codec::Us;
using pg::Connection;
using pg::Isolation;
using pg::Params;
using pg::Result;

// The SQLite catalog's migrations (sqlite_catalog.cc), in PostgreSQL's
// words: migration i brings a catalog from version i to i + 1. Never edit
// one that has shipped; add one, here and there.
const std::vector<std::vector<std::string>>& Migrations() {
  static const auto* migrations = new std::vector<std::vector<std::string>>{
      {
          "CREATE TABLE nodes (name TEXT PRIMARY KEY, agent_version TEXT NOT NULL, "
          "registered_us BIGINT NOT NULL, last_report_us BIGINT NOT NULL)",
          "CREATE TABLE copies (unit TEXT NOT NULL, node TEXT NOT NULL, status BYTEA NOT NULL, "
          "reported_us BIGINT NOT NULL, PRIMARY KEY (unit, node))",
          "CREATE TABLE leases (unit TEXT PRIMARY KEY, job TEXT NOT NULL, holder_node TEXT NOT "
          "NULL, acquired_us BIGINT NOT NULL, expires_us BIGINT NOT NULL)",
          "CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, unit TEXT NOT NULL, type "
          "INTEGER NOT NULL, source_mode TEXT NOT NULL, preferred TEXT NOT NULL, state TEXT NOT "
          "NULL, reason TEXT NOT NULL, created_us BIGINT NOT NULL, updated_us BIGINT NOT NULL, "
          "bytes_done BIGINT NOT NULL, bytes_total BIGINT NOT NULL, manifest TEXT NOT NULL)",
          "CREATE INDEX jobs_by_unit ON jobs (unit, created_us)",
          "CREATE TABLE job_attempts (job TEXT NOT NULL REFERENCES jobs (id), number INTEGER NOT "
          "NULL, node TEXT NOT NULL, writer_instance TEXT NOT NULL, state TEXT NOT NULL, "
          "started_us BIGINT NOT NULL, ended_us BIGINT NOT NULL, reason TEXT NOT NULL, PRIMARY "
          "KEY (job, number))",
          "CREATE TABLE job_events (seq BIGSERIAL PRIMARY KEY, job TEXT NOT NULL REFERENCES jobs "
          "(id), time_us BIGINT NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL, message "
          "TEXT NOT NULL)",
          "CREATE INDEX job_events_by_job ON job_events (job, seq)",
          "CREATE TABLE backups (manifest TEXT PRIMARY KEY, unit TEXT NOT NULL, type INTEGER NOT "
          "NULL, source_node TEXT NOT NULL, writer_instance TEXT NOT NULL, low_generation BIGINT "
          "NOT NULL, high_generation BIGINT NOT NULL, log_signature TEXT NOT NULL, "
          "database_signatures TEXT NOT NULL, logical_bytes BIGINT NOT NULL, new_bytes BIGINT "
          "NOT NULL, stored_bytes BIGINT NOT NULL, started_us BIGINT NOT NULL, finished_us "
          "BIGINT NOT NULL, verified INTEGER NOT NULL, job TEXT NOT NULL, chain_summary BYTEA "
          "NOT NULL)",
          "CREATE INDEX backups_by_unit ON backups (unit, manifest)",
      },
      // 2: chain breaks.
      {
          "CREATE TABLE chain_breaks (unit TEXT NOT NULL, after_manifest TEXT NOT NULL, "
          "generation BIGINT NOT NULL, reason TEXT NOT NULL, detected_us BIGINT NOT NULL, job "
          "TEXT NOT NULL, PRIMARY KEY (unit, after_manifest))",
      },
      // 3: backup policies.
      {"CREATE TABLE policies (name TEXT PRIMARY KEY, policy BYTEA NOT NULL)"},
      // 4: when each policy's schedules last fired.
      {
          "CREATE TABLE schedule_fired (policy TEXT NOT NULL, kind TEXT NOT NULL, fired_us "
          "BIGINT NOT NULL, PRIMARY KEY (policy, kind))",
      },
      // 5: restore plans; expiring backups.
      {
          "ALTER TABLE jobs ADD COLUMN plan BYTEA NOT NULL DEFAULT ''::bytea",
          "CREATE TABLE expiring (manifest TEXT PRIMARY KEY, unit TEXT NOT NULL, decided_us "
          "BIGINT NOT NULL, why TEXT NOT NULL)",
      },
      // 6: fencing tokens.
      {
          "ALTER TABLE leases ADD COLUMN token BIGINT NOT NULL DEFAULT 0",
          "CREATE TABLE lease_tokens (unit TEXT PRIMARY KEY, last_token BIGINT NOT NULL)",
      },
      // 7: the scheduler's queue.
      {
          "CREATE TABLE schedule_queue (unit TEXT NOT NULL, type INTEGER NOT NULL, policy TEXT "
          "NOT NULL, priority INTEGER NOT NULL, due_us BIGINT NOT NULL, PRIMARY KEY (unit, "
          "type))",
      },
      // 8: the audit log.
      {
          "CREATE TABLE audit (seq BIGSERIAL PRIMARY KEY, time_us BIGINT NOT NULL, identity "
          "TEXT NOT NULL, entry BYTEA NOT NULL)",
          "CREATE INDEX audit_by_identity ON audit (identity, seq)",
      },
      // 9: the newest leader epoch (Catalog::FenceWrites).
      {"CREATE TABLE leadership (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL)"},
      // 10: a node's copies by node (see the SQLite migration).
      {"CREATE INDEX copies_by_node ON copies (node)"},
      // 11: restore verifications (see the SQLite migration).
      {"CREATE TABLE restore_verifications (job TEXT PRIMARY KEY, unit TEXT NOT NULL, ended_us "
       "BIGINT NOT NULL, record BYTEA NOT NULL)",
       "CREATE INDEX restore_verifications_by_unit ON restore_verifications (unit, ended_us)"},
  };
  return *migrations;
}

// Any number as PostgreSQL's parameter (uint64 values here stay below 2^63:
// byte counts and tokens from the wall clock in microseconds).
int64_t I(uint64_t v) { return static_cast<int64_t>(v); }

// The advisory lock key under which a catalog is migrated ("dagvault").
constexpr int64_t kMigrationLock = 0x6461677661756c74;

}  // namespace

int PostgresCatalog::SchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::StatusOr<std::unique_ptr<PostgresCatalog>> PostgresCatalog::Open(
    const std::string& conninfo, pg::ConnectionOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> db, Connection::Open(conninfo, options));
  std::unique_ptr<PostgresCatalog> catalog(new PostgresCatalog(std::move(db)));
  RETURN_IF_ERROR(catalog->Migrate());
  return catalog;
}

absl::Status PostgresCatalog::Migrate() {
  std::lock_guard<std::mutex> l(mu_);
  const int known = SchemaVersion();
  // DDL is transactional in PostgreSQL: the version and the tables move
  // together, and a re-run after a lost COMMIT finds the work done.
  return db_->Transaction(
      Isolation::kReadCommitted, /*idempotent=*/true, [&](Connection& tx) -> absl::Status {
        RETURN_IF_ERROR(
            tx.Exec("SELECT pg_advisory_xact_lock($1)", Params().Int(kMigrationLock)).status());
        RETURN_IF_ERROR(tx.Exec("CREATE TABLE IF NOT EXISTS catalog_schema "
                                "(version INTEGER NOT NULL)")
                            .status());
        ASSIGN_OR_RETURN(Result v, tx.Exec("SELECT version FROM catalog_schema"));
        int version = 0;
        if (v.rows() == 0) {
          RETURN_IF_ERROR(tx.Exec("INSERT INTO catalog_schema (version) VALUES (0)").status());
        } else {
          version = static_cast<int>(v.Int(0, 0));
        }
        if (version > known) {
          return absl::FailedPreconditionError(
              absl::StrCat("catalog ", Name(), " has schema version ", version,
                           "; this coordinator knows versions up to ", known,
                           ": run the newer coordinator that wrote it"));
        }
        for (int m = version; m < known; ++m) {
          for (const std::string& sql : Migrations()[m]) {
            absl::Status s = tx.Exec(sql).status();
            if (!s.ok()) {
              return absl::Status(
                  s.code(), absl::StrCat("migrating to schema version ", m + 1, ": ", s.message()));
            }
          }
          RETURN_IF_ERROR(
              tx.Exec("UPDATE catalog_schema SET version = $1", Params().Int(m + 1)).status());
        }
        return absl::OkStatus();
      });
}

absl::Status PostgresCatalog::Write(bool idempotent,
                                    const std::function<absl::Status(Connection&)>& body) {
  std::lock_guard<std::mutex> l(mu_);
  const int64_t fence = fence_epoch_.load();
  if (fence == 0) return db_->Transaction(Isolation::kSerializable, idempotent, body);
  // In the write's own SERIALIZABLE transaction: a new leader's
  // FenceWrites that commits first makes this read stale, and PostgreSQL
  // aborts one of the two (40001); the retry sees the new epoch.
  return db_->Transaction(
      Isolation::kSerializable, idempotent, [&](Connection& tx) -> absl::Status {
        ASSIGN_OR_RETURN(Result r, tx.Exec("SELECT epoch FROM leadership WHERE id = 1"));
        const int64_t newest = r.rows() > 0 ? r.Int(0, 0) : 0;
        if (newest != fence) {
          return absl::FailedPreconditionError(
              absl::StrCat("catalog ", Name(), ": this coordinator led as epoch ", fence,
                           ", but a newer leader (epoch ", newest,
                           ") has taken over; it writes nothing more (docs/ha.md)"));
        }
        return body(tx);
      });
}

absl::Status PostgresCatalog::FenceWrites(int64_t epoch) {
  if (epoch <= 0) return absl::InvalidArgumentError("a leader epoch is positive");
  fence_epoch_.store(0);
  int64_t newest = 0;
  RETURN_IF_ERROR(Write(true, [&](Connection& tx) -> absl::Status {
    ASSIGN_OR_RETURN(
        Result r, tx.Exec("INSERT INTO leadership (id, epoch) VALUES (1, $1) ON CONFLICT (id) DO "
                          "UPDATE SET epoch = excluded.epoch WHERE leadership.epoch <= "
                          "excluded.epoch RETURNING epoch",
                          Params().Int(epoch)));
    if (r.rows() > 0) {
      newest = epoch;
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(Result current, tx.Exec("SELECT epoch FROM leadership WHERE id = 1"));
    newest = current.rows() > 0 ? current.Int(0, 0) : 0;
    return absl::OkStatus();
  }));
  if (newest != epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("catalog ", Name(), ": a newer leader (epoch ", newest,
                     ") than this one (epoch ", epoch, ") has written to it"));
  }
  fence_epoch_.store(epoch);
  return absl::OkStatus();
}

absl::StatusOr<Result> PostgresCatalog::Read(const std::string& sql, const Params& params) {
  std::lock_guard<std::mutex> l(mu_);
  return db_->Exec(sql, params, /*idempotent=*/true);
}

// --- nodes and copies ---

namespace {

absl::Status UpsertNodeIn(pg::Connection& tx, const NodeRecord& n) {
  return tx
      .Exec(
          "INSERT INTO nodes (name, agent_version, registered_us, last_report_us) VALUES ($1, "
          "$2, $3, $4) ON CONFLICT (name) DO UPDATE SET agent_version = excluded.agent_version, "
          "registered_us = excluded.registered_us, last_report_us = excluded.last_report_us",
          pg::Params()
              .Text(n.name)
              .Text(n.agent_version)
              .Int(Us(n.registered))
              .Int(Us(n.last_report)))
      .status();
}

absl::Status ReplaceCopiesIn(pg::Connection& tx, const std::string& node,
                             const std::vector<v1::CopyStatus>& copies, absl::Time reported) {
  RETURN_IF_ERROR(tx.Exec("DELETE FROM copies WHERE node = $1", pg::Params().Text(node)).status());
  for (const v1::CopyStatus& c : copies) {
    RETURN_IF_ERROR(
        tx.Exec("INSERT INTO copies (unit, node, status, reported_us) VALUES ($1, $2, $3, $4)",
                pg::Params().Text(c.unit()).Text(node).Bytes(Serialized(c)).Int(Us(reported)))
            .status());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PostgresCatalog::UpsertNode(const NodeRecord& n) {
  return Write(true, [&](Connection& tx) { return UpsertNodeIn(tx, n); });
}

absl::Status PostgresCatalog::PutTopology(const std::vector<NodeSnapshot>& nodes) {
  return Write(true, [&](Connection& tx) -> absl::Status {
    for (const NodeSnapshot& n : nodes) {
      RETURN_IF_ERROR(UpsertNodeIn(tx, n.record));
      if (n.copies) RETURN_IF_ERROR(ReplaceCopiesIn(tx, n.record.name, *n.copies, n.reported));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<NodeRecord>> PostgresCatalog::Nodes() {
  ASSIGN_OR_RETURN(Result r, Read("SELECT name, agent_version, registered_us, last_report_us FROM "
                                  "nodes ORDER BY name COLLATE \"C\""));
  std::vector<NodeRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({r.Text(i, 0), r.Text(i, 1), TimeOf(r.Int(i, 2)), TimeOf(r.Int(i, 3))});
  }
  return out;
}

absl::Status PostgresCatalog::ReplaceCopiesOfNode(const std::string& node,
                                                  const std::vector<v1::CopyStatus>& copies,
                                                  absl::Time reported) {
  return Write(true, [&](Connection& tx) { return ReplaceCopiesIn(tx, node, copies, reported); });
}

absl::StatusOr<std::vector<CopyRecord>> PostgresCatalog::Copies() {
  ASSIGN_OR_RETURN(Result r, Read("SELECT status, reported_us, unit, node FROM copies ORDER BY "
                                  "unit COLLATE \"C\", node COLLATE \"C\""));
  std::vector<CopyRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    CopyRecord c;
    if (!c.status.ParseFromString(r.Bytes(i, 0))) {
      return absl::DataLossError(absl::StrCat("catalog ", Name(), ": the copy of ", r.Text(i, 2),
                                              " on ", r.Text(i, 3), " does not parse"));
    }
    c.reported = TimeOf(r.Int(i, 1));
    out.push_back(std::move(c));
  }
  return out;
}

// --- leases ---

absl::StatusOr<LeaseRecord> PostgresCatalog::AcquireLease(const std::string& unit,
                                                          const std::string& job,
                                                          const std::string& holder_node,
                                                          absl::Time now, absl::Duration ttl) {
  LeaseRecord lease{unit, job, holder_node, now, now + ttl};
  // Run twice after a lost COMMIT, the second run finds its own job's
  // lease and takes a newer token: the rows then say what it returns, and
  // tokens still only grow.
  const absl::Status written = Write(true, [&](Connection& tx) -> absl::Status {
    ASSIGN_OR_RETURN(Result q, tx.Exec("SELECT job, holder_node, acquired_us, expires_us FROM "
                                       "leases WHERE unit = $1",
                                       Params().Text(unit)));
    if (q.rows() > 0 && q.Text(0, 0) != job && TimeOf(q.Int(0, 3)) > now) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", unit,
          absl::StartsWith(q.Text(0, 0), "restore")  ? " is being restored"
          : absl::StartsWith(q.Text(0, 0), "reseed") ? " is being reseeded"
                                                     : " is being backed up",
          ": job ", q.Text(0, 0), " on ", q.Text(0, 1),
          " holds its backup-in-progress lease (since ", absl::FormatTime(TimeOf(q.Int(0, 2))),
          ", expires ", absl::FormatTime(TimeOf(q.Int(0, 3))), ")"));
    }
    // As in the SQLite catalog: one more than the last, never below the
    // wall clock in microseconds.
    ASSIGN_OR_RETURN(Result t,
                     tx.Exec("INSERT INTO lease_tokens (unit, last_token) VALUES ($1, $2) ON "
                             "CONFLICT (unit) DO UPDATE SET last_token = GREATEST(lease_tokens."
                             "last_token + 1, excluded.last_token) RETURNING last_token",
                             Params().Text(unit).Int(std::max<int64_t>(1, Us(now)))));
    if (t.rows() != 1) {
      return absl::InternalError(absl::StrCat("catalog ", Name(), ": no fencing token"));
    }
    lease.token = static_cast<uint64_t>(t.Int(0, 0));
    return tx
        .Exec(
            "INSERT INTO leases (unit, job, holder_node, acquired_us, expires_us, token) VALUES "
            "($1, $2, $3, $4, $5, $6) ON CONFLICT (unit) DO UPDATE SET job = excluded.job, "
            "holder_node = excluded.holder_node, acquired_us = excluded.acquired_us, expires_us "
            "= excluded.expires_us, token = excluded.token",
            Params()
                .Text(unit)
                .Text(job)
                .Text(holder_node)
                .Int(Us(now))
                .Int(Us(lease.expires))
                .Int(I(lease.token)))
        .status();
  });
  if (!written.ok()) return written;
  return lease;
}

absl::Status PostgresCatalog::RenewLease(const std::string& unit, const std::string& job,
                                         absl::Time expires) {
  uint64_t changed = 0;
  const absl::Status written = Write(true, [&](Connection& tx) -> absl::Status {
    ASSIGN_OR_RETURN(Result r,
                     tx.Exec("UPDATE leases SET expires_us = $1 WHERE unit = $2 AND job = $3",
                             Params().Int(Us(expires)).Text(unit).Text(job)));
    changed = r.affected();
    return absl::OkStatus();
  });
  if (!written.ok()) return written;
  if (changed == 0) {
    return absl::NotFoundError(
        absl::StrCat("job ", job, " no longer holds the lease of unit ", unit));
  }
  return absl::OkStatus();
}

absl::Status PostgresCatalog::ReleaseLease(const std::string& unit, const std::string& job) {
  return Write(true, [&](Connection& tx) {
    return tx.Exec("DELETE FROM leases WHERE unit = $1 AND job = $2", Params().Text(unit).Text(job))
        .status();
  });
}

absl::StatusOr<std::vector<LeaseRecord>> PostgresCatalog::Leases() {
  ASSIGN_OR_RETURN(Result r, Read("SELECT unit, job, holder_node, acquired_us, expires_us, token "
                                  "FROM leases ORDER BY unit COLLATE \"C\""));
  std::vector<LeaseRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({r.Text(i, 0), r.Text(i, 1), r.Text(i, 2), TimeOf(r.Int(i, 3)),
                   TimeOf(r.Int(i, 4)), static_cast<uint64_t>(r.Int(i, 5))});
  }
  return out;
}

// --- jobs ---

absl::Status PostgresCatalog::WriteJobWithEvent(Connection& tx, const JobRecord& j,
                                                const JobEvent& event) {
  RETURN_IF_ERROR(
      tx.Exec("INSERT INTO jobs (id, kind, unit, type, source_mode, preferred, state, reason, "
              "created_us, updated_us, bytes_done, bytes_total, manifest, plan) VALUES ($1, $2, "
              "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (id) DO UPDATE "
              "SET kind = excluded.kind, unit = excluded.unit, type = excluded.type, source_mode "
              "= excluded.source_mode, preferred = excluded.preferred, state = excluded.state, "
              "reason = excluded.reason, created_us = excluded.created_us, updated_us = "
              "excluded.updated_us, bytes_done = excluded.bytes_done, bytes_total = "
              "excluded.bytes_total, manifest = excluded.manifest, plan = excluded.plan",
              Params()
                  .Text(j.id)
                  .Text(j.kind)
                  .Text(j.unit)
                  .Int(j.type)
                  .Text(j.source_mode)
                  .Text(absl::StrJoin(j.preferred, ","))
                  .Text(JobStateName(j.state))
                  .Text(j.reason)
                  .Int(Us(j.created))
                  .Int(Us(j.updated))
                  .Int(I(j.bytes_done))
                  .Int(I(j.bytes_total))
                  .Text(j.manifest)
                  .Bytes(j.plan))
          .status());
  for (const JobAttempt& a : j.attempts) {
    RETURN_IF_ERROR(
        tx.Exec("INSERT INTO job_attempts (job, number, node, writer_instance, state, "
                "started_us, ended_us, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON "
                "CONFLICT (job, number) DO UPDATE SET node = excluded.node, writer_instance = "
                "excluded.writer_instance, state = excluded.state, started_us = "
                "excluded.started_us, ended_us = excluded.ended_us, reason = excluded.reason",
                Params()
                    .Text(j.id)
                    .Int(a.number)
                    .Text(a.node)
                    .Text(a.writer_instance)
                    .Text(JobStateName(a.state))
                    .Int(Us(a.started))
                    .Int(Us(a.ended))
                    .Text(a.reason))
            .status());
  }
  // As in the SQLite catalog: a scheduled backup leaves the queue with the
  // write that assigns (or ends) its job.
  if (j.dequeues.has_value() && (j.state == JobState::kAssigned || IsFinal(j.state))) {
    RETURN_IF_ERROR(tx.Exec("DELETE FROM schedule_queue WHERE unit = $1 AND type = $2",
                            Params().Text(j.unit).Int(*j.dequeues))
                        .status());
  }
  return tx
      .Exec(
          "INSERT INTO job_events (job, time_us, attempt, state, message) VALUES ($1, $2, $3, "
          "$4, $5)",
          Params()
              .Text(j.id)
              .Int(Us(event.time))
              .Int(event.attempt)
              .Text(JobStateName(event.state))
              .Text(event.message))
      .status();
}

absl::Status PostgresCatalog::CreateJob(const JobRecord& job) {
  // Not idempotent: a second run would write the "created" event twice.
  return Write(false, [&](Connection& tx) {
    return WriteJobWithEvent(tx, job, JobEvent{job.created, 0, job.state, "created"});
  });
}

absl::Status PostgresCatalog::UpdateJob(const JobRecord& job, const JobEvent& event) {
  return Write(false, [&](Connection& tx) { return WriteJobWithEvent(tx, job, event); });
}

absl::StatusOr<std::vector<JobRecord>> PostgresCatalog::ReadJobs(const std::string& where_sql,
                                                                 const std::string& arg,
                                                                 size_t limit) {
  std::vector<JobRecord> out;
  std::lock_guard<std::mutex> l(mu_);
  // One snapshot for the jobs and their attempts; read-only, so run again
  // whole after a lost connection.
  const absl::Status read = db_->Transaction(
      Isolation::kRepeatableRead, /*idempotent=*/true, [&](Connection& tx) -> absl::Status {
        out.clear();
        Params params;
        if (absl::StrContains(where_sql, "$1")) params.Text(arg);
        ASSIGN_OR_RETURN(
            Result r, tx.Exec(absl::StrCat("SELECT ", codec::kJobColumns, " FROM jobs ", where_sql,
                                           " ORDER BY created_us DESC, id COLLATE \"C\" DESC",
                                           limit > 0 ? absl::StrCat(" LIMIT ", limit) : ""),
                              params));
        for (int i = 0; i < r.rows(); ++i) {
          ASSIGN_OR_RETURN(JobRecord j, codec::JobFromRow(r.row(i)));
          out.push_back(std::move(j));
        }
        for (JobRecord& j : out) {
          ASSIGN_OR_RETURN(Result a, tx.Exec(absl::StrCat("SELECT ", codec::kAttemptColumns,
                                                          " FROM job_attempts WHERE job = $1 "
                                                          "ORDER BY number"),
                                             Params().Text(j.id)));
          for (int i = 0; i < a.rows(); ++i) {
            ASSIGN_OR_RETURN(JobAttempt attempt, codec::AttemptFromRow(a.row(i)));
            j.attempts.push_back(std::move(attempt));
          }
        }
        return absl::OkStatus();
      });
  if (!read.ok()) return read;
  return out;
}

absl::StatusOr<JobRecord> PostgresCatalog::GetJob(const std::string& id) {
  ASSIGN_OR_RETURN(auto jobs, ReadJobs("WHERE id = $1", id, 1));
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no job ", id, " in the catalog"));
  return std::move(jobs.front());
}

absl::StatusOr<std::vector<JobRecord>> PostgresCatalog::ListJobs(const std::string& unit,
                                                                 size_t limit) {
  return ReadJobs(unit.empty() ? "" : "WHERE unit = $1", unit, limit);
}

absl::StatusOr<std::vector<JobRecord>> PostgresCatalog::UnfinishedJobs() {
  return ReadJobs("WHERE state NOT IN ('succeeded', 'failed', 'cancelled')", "", 0);
}

absl::StatusOr<uint64_t> PostgresCatalog::PurgeFinishedJobs(absl::Time cutoff) {
  uint64_t removed = 0;
  const absl::Status written = Write(true, [&](Connection& tx) -> absl::Status {
    const char* kOld =
        "SELECT id FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND "
        "updated_us < $1";
    for (const char* table : {"job_events", "job_attempts"}) {
      RETURN_IF_ERROR(tx.Exec(absl::StrCat("DELETE FROM ", table, " WHERE job IN (", kOld, ")"),
                              Params().Int(Us(cutoff)))
                          .status());
    }
    ASSIGN_OR_RETURN(Result r, tx.Exec("DELETE FROM jobs WHERE state IN ('succeeded', 'failed', "
                                       "'cancelled') AND updated_us < $1",
                                       Params().Int(Us(cutoff))));
    removed = r.affected();
    // A verification's record lives as long as its job's.
    RETURN_IF_ERROR(
        tx.Exec("DELETE FROM restore_verifications WHERE ended_us < $1", Params().Int(Us(cutoff)))
            .status());
    return absl::OkStatus();
  });
  if (!written.ok()) return written;
  return removed;
}

absl::StatusOr<std::vector<JobEvent>> PostgresCatalog::JobEvents(const std::string& id) {
  ASSIGN_OR_RETURN(Result r, Read("SELECT time_us, attempt, state, message FROM job_events WHERE "
                                  "job = $1 ORDER BY seq",
                                  Params().Text(id)));
  std::vector<JobEvent> out;
  for (int i = 0; i < r.rows(); ++i) {
    JobEvent e;
    e.time = TimeOf(r.Int(i, 0));
    e.attempt = static_cast<int>(r.Int(i, 1));
    ASSIGN_OR_RETURN(e.state, ParseJobState(r.Text(i, 2)));
    e.message = r.Text(i, 3);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace dagvault::coordinator
