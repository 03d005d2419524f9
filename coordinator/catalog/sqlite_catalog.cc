#include "coordinator/catalog/sqlite_catalog.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "coordinator/catalog/sqlite_statement.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using sqlite::Serialized;
using sqlite::Statement;
using sqlite::TimeOf;
using sqlite::Us;

// Schema changes, in order: migration i brings a catalog from version i to
// i + 1 (PRAGMA user_version). Never edit one that has shipped; add one.
const std::vector<std::string>& Migrations() {
  static const auto* migrations = new std::vector<std::string>{
      R"sql(
      CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        agent_version TEXT NOT NULL,
        registered_us INTEGER NOT NULL,
        last_report_us INTEGER NOT NULL);
      CREATE TABLE copies (
        unit TEXT NOT NULL,
        node TEXT NOT NULL,
        status BLOB NOT NULL,
        reported_us INTEGER NOT NULL,
        PRIMARY KEY (unit, node));
      CREATE TABLE leases (
        unit TEXT PRIMARY KEY,
        job TEXT NOT NULL,
        holder_node TEXT NOT NULL,
        acquired_us INTEGER NOT NULL,
        expires_us INTEGER NOT NULL);
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        unit TEXT NOT NULL,
        type INTEGER NOT NULL,
        source_mode TEXT NOT NULL,
        preferred TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        updated_us INTEGER NOT NULL,
        bytes_done INTEGER NOT NULL,
        bytes_total INTEGER NOT NULL,
        manifest TEXT NOT NULL);
      CREATE INDEX jobs_by_unit ON jobs (unit, created_us);
      CREATE TABLE job_attempts (
        job TEXT NOT NULL REFERENCES jobs (id),
        number INTEGER NOT NULL,
        node TEXT NOT NULL,
        writer_instance TEXT NOT NULL,
        state TEXT NOT NULL,
        started_us INTEGER NOT NULL,
        ended_us INTEGER NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (job, number));
      CREATE TABLE job_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL REFERENCES jobs (id),
        time_us INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        state TEXT NOT NULL,
        message TEXT NOT NULL);
      CREATE INDEX job_events_by_job ON job_events (job, seq);
      CREATE TABLE backups (
        manifest TEXT PRIMARY KEY,
        unit TEXT NOT NULL,
        type INTEGER NOT NULL,
        source_node TEXT NOT NULL,
        writer_instance TEXT NOT NULL,
        low_generation INTEGER NOT NULL,
        high_generation INTEGER NOT NULL,
        log_signature TEXT NOT NULL,
        database_signatures TEXT NOT NULL,
        logical_bytes INTEGER NOT NULL,
        new_bytes INTEGER NOT NULL,
        stored_bytes INTEGER NOT NULL,
        started_us INTEGER NOT NULL,
        finished_us INTEGER NOT NULL,
        verified INTEGER NOT NULL,
        job TEXT NOT NULL,
        chain_summary BLOB NOT NULL);
      CREATE INDEX backups_by_unit ON backups (unit, manifest);
      )sql",
      // 2: where a unit's chain was found broken, for `chain show` and the
      // promotion of the next Incremental to a Full.
      R"sql(
      CREATE TABLE chain_breaks (
        unit TEXT NOT NULL,
        after_manifest TEXT NOT NULL,
        generation INTEGER NOT NULL,
        reason TEXT NOT NULL,
        detected_us INTEGER NOT NULL,
        job TEXT NOT NULL,
        PRIMARY KEY (unit, after_manifest));
      )sql",
      // 3: backup policies, each a serialized dagvault.v1.Policy.
      R"sql(
      CREATE TABLE policies (
        name TEXT PRIMARY KEY,
        policy BLOB NOT NULL);
      )sql",
      // 4: when each policy's schedules last fired, so that a run missed
      // while the coordinator was down runs once at start-up.
      R"sql(
      CREATE TABLE schedule_fired (
        policy TEXT NOT NULL,
        kind TEXT NOT NULL,
        fired_us INTEGER NOT NULL,
        PRIMARY KEY (policy, kind));
      )sql",
      // 5: an all-copies restore's plan (a serialized dagvault.v1.RestorePlan)
      // with its job; backups expired from the catalog whose manifests the
      // repository may still hold (removed by the prune that follows).
      R"sql(
      ALTER TABLE jobs ADD COLUMN plan BLOB NOT NULL DEFAULT x'';
      CREATE TABLE expiring (
        manifest TEXT PRIMARY KEY,
        unit TEXT NOT NULL,
        decided_us INTEGER NOT NULL,
        why TEXT NOT NULL);
      )sql",
      // 6: fencing tokens. A lease carries its unit's token; lease_tokens
      // keeps each unit's last one, so tokens only grow, across releases.
      R"sql(
      ALTER TABLE leases ADD COLUMN token INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE lease_tokens (
        unit TEXT PRIMARY KEY,
        last_token INTEGER NOT NULL);
      )sql",
      // 7: the scheduler's queue, written with the schedule's firing and
      // emptied by the job that starts the backup.
      R"sql(
      CREATE TABLE schedule_queue (
        unit TEXT NOT NULL,
        type INTEGER NOT NULL,
        policy TEXT NOT NULL,
        priority INTEGER NOT NULL,
        due_us INTEGER NOT NULL,
        PRIMARY KEY (unit, type));
      )sql",
      // 8: the audit log, each entry a serialized dagvault.v1.AuditEntry.
      R"sql(
      CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_us INTEGER NOT NULL,
        identity TEXT NOT NULL,
        entry BLOB NOT NULL);
      CREATE INDEX audit_by_identity ON audit (identity, seq);
      )sql",
      // 9: the newest leader epoch (Catalog::FenceWrites); PostgreSQL
      // uses it, kept here so both number their migrations alike.
      R"sql(
      CREATE TABLE leadership (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        epoch INTEGER NOT NULL);
      )sql",
      // 10: a node's copies are replaced by node, and the primary key
      // (unit, node) does not serve that: at 10,000 nodes each replacement
      // scanned all 300,000 copies.
      R"sql(
      CREATE INDEX copies_by_node ON copies (node);
      )sql",
      // 11: restore verifications (issue 20 §2), each a serialized
      // dagvault.v1.RestoreVerification, kept per unit for chain show.
      R"sql(
      CREATE TABLE restore_verifications (
        job TEXT PRIMARY KEY,
        unit TEXT NOT NULL,
        ended_us INTEGER NOT NULL,
        record BLOB NOT NULL);
      CREATE INDEX restore_verifications_by_unit ON restore_verifications (unit, ended_us);
      )sql",
  };
  return *migrations;
}

}  // namespace

int SqliteCatalog::SchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::Status SqliteCatalog::FenceWrites(int64_t epoch) {
  return absl::UnimplementedError(absl::StrCat("leader election (epoch ", epoch,
                                               ") needs a catalog every coordinator shares, in "
                                               "PostgreSQL; ",
                                               path_,
                                               " is an SQLite file on one machine (docs/ha.md)"));
}

absl::StatusOr<std::unique_ptr<SqliteCatalog>> SqliteCatalog::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("catalog ", path, ": cannot open: ", why));
  }
  std::unique_ptr<SqliteCatalog> catalog(new SqliteCatalog(path, db));
  // WAL: readers do not block the writer; synchronous=FULL: a committed
  // job state or lease survives a power cut, which the coordinator's
  // promises (no stuck lease, no lost job outcome) depend on.
  RETURN_IF_ERROR(catalog->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(catalog->Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(catalog->Exec("PRAGMA foreign_keys=ON"));
  sqlite3_busy_timeout(db, 5000);
  RETURN_IF_ERROR(catalog->Migrate());
  return catalog;
}

SqliteCatalog::~SqliteCatalog() { sqlite3_close(db_); }

absl::Status SqliteCatalog::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err != nullptr ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("catalog ", path_, ": ", why));
  }
  return absl::OkStatus();
}

absl::Status SqliteCatalog::Migrate() {
  std::lock_guard<std::mutex> l(mu_);
  Statement q(db_, path_, "PRAGMA user_version");
  ASSIGN_OR_RETURN(bool row, q.Step());
  const int version = row ? static_cast<int>(q.Int(0)) : 0;
  const int known = SchemaVersion();
  if (version > known) {
    return absl::FailedPreconditionError(
        absl::StrCat("catalog ", path_, " has schema version ", version,
                     "; this coordinator knows versions up to ", known,
                     ": run the newer coordinator that wrote it"));
  }
  for (int v = version; v < known; ++v) {
    absl::Status s = Transaction([&]() -> absl::Status {
      RETURN_IF_ERROR(Exec(Migrations()[v]));
      return Exec(absl::StrCat("PRAGMA user_version=", v + 1));
    });
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("migrating to schema version ", v + 1, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteCatalog::Transaction(const std::function<absl::Status()>& body) {
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  absl::Status status = body();
  if (!status.ok()) {
    (void)Exec("ROLLBACK");
    return status;
  }
  status = Exec("COMMIT");
  if (!status.ok() && !sqlite3_get_autocommit(db_)) {
    // A COMMIT that failed (the disk is full, say) can leave the
    // transaction open: the next statement would run inside it, and a
    // later COMMIT would write this one's changes after all.
    (void)Exec("ROLLBACK");
  }
  return status;
}

// --- nodes and copies ---

absl::Status SqliteCatalog::UpsertNode(const NodeRecord& n) {
  std::lock_guard<std::mutex> l(mu_);
  return UpsertNodeLocked(n);
}

absl::Status SqliteCatalog::UpsertNodeLocked(const NodeRecord& n) {
  Statement s(db_, path_,
              "INSERT INTO nodes (name, agent_version, registered_us, last_report_us) "
              "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
              "agent_version = excluded.agent_version, registered_us = excluded.registered_us, "
              "last_report_us = excluded.last_report_us");
  return s.Bind(n.name).Bind(n.agent_version).Bind(Us(n.registered)).Bind(Us(n.last_report)).Run();
}

absl::Status SqliteCatalog::PutTopology(const std::vector<NodeSnapshot>& nodes) {
  std::lock_guard<std::mutex> l(mu_);
  return Transaction([&]() -> absl::Status {
    for (const NodeSnapshot& n : nodes) {
      RETURN_IF_ERROR(UpsertNodeLocked(n.record));
      if (n.copies) RETURN_IF_ERROR(ReplaceCopiesLocked(n.record.name, *n.copies, n.reported));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<NodeRecord>> SqliteCatalog::Nodes() {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_,
              "SELECT name, agent_version, registered_us, last_report_us FROM nodes ORDER BY name");
  std::vector<NodeRecord> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    out.push_back({s.Text(0), s.Text(1), TimeOf(s.Int(2)), TimeOf(s.Int(3))});
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteCatalog::ReplaceCopiesOfNode(const std::string& node,
                                                const std::vector<v1::CopyStatus>& copies,
                                                absl::Time reported) {
  std::lock_guard<std::mutex> l(mu_);
  return Transaction([&] { return ReplaceCopiesLocked(node, copies, reported); });
}

absl::Status SqliteCatalog::ReplaceCopiesLocked(const std::string& node,
                                                const std::vector<v1::CopyStatus>& copies,
                                                absl::Time reported) {
  RETURN_IF_ERROR(Statement(db_, path_, "DELETE FROM copies WHERE node = ?").Bind(node).Run());
  for (const v1::CopyStatus& c : copies) {
    Statement s(db_, path_,
                "INSERT INTO copies (unit, node, status, reported_us) VALUES (?, ?, ?, ?)");
    RETURN_IF_ERROR(s.Bind(c.unit()).Bind(node).BindBlob(Serialized(c)).Bind(Us(reported)).Run());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CopyRecord>> SqliteCatalog::Copies() {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_, "SELECT status, reported_us, unit, node FROM copies ORDER BY unit, node");
  std::vector<CopyRecord> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    CopyRecord c;
    if (!c.status.ParseFromString(s.Text(0))) {
      return absl::DataLossError(absl::StrCat("catalog ", path_, ": the copy of ", s.Text(2),
                                              " on ", s.Text(3), " does not parse"));
    }
    c.reported = TimeOf(s.Int(1));
    out.push_back(std::move(c));
    return absl::OkStatus();
  }));
  return out;
}

// --- leases ---

absl::StatusOr<LeaseRecord> SqliteCatalog::AcquireLease(const std::string& unit,
                                                        const std::string& job,
                                                        const std::string& holder_node,
                                                        absl::Time now, absl::Duration ttl) {
  std::lock_guard<std::mutex> l(mu_);
  LeaseRecord lease{unit, job, holder_node, now, now + ttl};
  RETURN_IF_ERROR(Transaction([&]() -> absl::Status {
    Statement q(db_, path_,
                "SELECT job, holder_node, acquired_us, expires_us FROM leases WHERE unit = ?");
    q.Bind(unit);
    ASSIGN_OR_RETURN(bool held, q.Step());
    if (held && q.Text(0) != job && TimeOf(q.Int(3)) > now) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", unit,
          absl::StartsWith(q.Text(0), "restore")  ? " is being restored"
          : absl::StartsWith(q.Text(0), "reseed") ? " is being reseeded"
                                                  : " is being backed up",
          ": job ", q.Text(0), " on ", q.Text(1), " holds its backup-in-progress lease (since ",
          absl::FormatTime(TimeOf(q.Int(2))), ", expires ", absl::FormatTime(TimeOf(q.Int(3))),
          ")"));
    }
    // The next token: one more than the last, and never below the wall
    // clock in microseconds, so that a catalog that was lost and started
    // afresh still issues tokens above those mailstored has seen.
    Statement t(db_, path_,
                "INSERT INTO lease_tokens (unit, last_token) VALUES (?, ?) ON CONFLICT (unit) "
                "DO UPDATE SET last_token = max(last_token + 1, excluded.last_token) "
                "RETURNING last_token");
    t.Bind(unit).Bind(std::max<int64_t>(1, Us(now)));
    ASSIGN_OR_RETURN(bool row, t.Step());
    if (!row) return absl::InternalError(absl::StrCat("catalog ", path_, ": no fencing token"));
    lease.token = static_cast<uint64_t>(t.Int(0));
    Statement w(db_, path_,
                "INSERT OR REPLACE INTO leases (unit, job, holder_node, acquired_us, expires_us, "
                "token) VALUES (?, ?, ?, ?, ?, ?)");
    return w.Bind(unit)
        .Bind(job)
        .Bind(holder_node)
        .Bind(Us(now))
        .Bind(Us(lease.expires))
        .Bind(static_cast<int64_t>(lease.token))
        .Run();
  }));
  return lease;
}

absl::Status SqliteCatalog::RenewLease(const std::string& unit, const std::string& job,
                                       absl::Time expires) {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_, "UPDATE leases SET expires_us = ? WHERE unit = ? AND job = ?");
  RETURN_IF_ERROR(s.Bind(Us(expires)).Bind(unit).Bind(job).Run());
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(
        absl::StrCat("job ", job, " no longer holds the lease of unit ", unit));
  }
  return absl::OkStatus();
}

absl::Status SqliteCatalog::ReleaseLease(const std::string& unit, const std::string& job) {
  std::lock_guard<std::mutex> l(mu_);
  return Statement(db_, path_, "DELETE FROM leases WHERE unit = ? AND job = ?")
      .Bind(unit)
      .Bind(job)
      .Run();
}

absl::StatusOr<std::vector<LeaseRecord>> SqliteCatalog::Leases() {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_,
              "SELECT unit, job, holder_node, acquired_us, expires_us, token FROM leases "
              "ORDER BY unit");
  std::vector<LeaseRecord> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    out.push_back({s.Text(0), s.Text(1), s.Text(2), TimeOf(s.Int(3)), TimeOf(s.Int(4)),
                   static_cast<uint64_t>(s.Int(5))});
    return absl::OkStatus();
  }));
  return out;
}

// --- jobs ---

absl::Status SqliteCatalog::WriteJob(const JobRecord& j) {
  Statement s(db_, path_,
              "INSERT OR REPLACE INTO jobs (id, kind, unit, type, source_mode, preferred, state, "
              "reason, created_us, updated_us, bytes_done, bytes_total, manifest, plan) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  RETURN_IF_ERROR(s.Bind(j.id)
                      .Bind(j.kind)
                      .Bind(j.unit)
                      .Bind(int64_t{j.type})
                      .Bind(j.source_mode)
                      .Bind(absl::StrJoin(j.preferred, ","))
                      .Bind(JobStateName(j.state))
                      .Bind(j.reason)
                      .Bind(Us(j.created))
                      .Bind(Us(j.updated))
                      .Bind(static_cast<int64_t>(j.bytes_done))
                      .Bind(static_cast<int64_t>(j.bytes_total))
                      .Bind(j.manifest)
                      .BindBlob(j.plan)
                      .Run());
  for (const JobAttempt& a : j.attempts) {
    Statement w(db_, path_,
                "INSERT OR REPLACE INTO job_attempts (job, number, node, writer_instance, state, "
                "started_us, ended_us, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    RETURN_IF_ERROR(w.Bind(j.id)
                        .Bind(int64_t{a.number})
                        .Bind(a.node)
                        .Bind(a.writer_instance)
                        .Bind(JobStateName(a.state))
                        .Bind(Us(a.started))
                        .Bind(Us(a.ended))
                        .Bind(a.reason)
                        .Run());
  }
  return absl::OkStatus();
}

absl::Status SqliteCatalog::CreateJob(const JobRecord& job) {
  std::lock_guard<std::mutex> l(mu_);
  return Transaction([&]() -> absl::Status {
    return WriteJobWithEvent(job, JobEvent{job.created, 0, job.state, "created"});
  });
}

absl::Status SqliteCatalog::WriteJobWithEvent(const JobRecord& job, const JobEvent& event) {
  RETURN_IF_ERROR(WriteJob(job));
  // A scheduled backup leaves the queue with the write that assigns its job
  // (or ends it), not before: a crash in between leaves it queued.
  if (job.dequeues.has_value() && (job.state == JobState::kAssigned || IsFinal(job.state))) {
    RETURN_IF_ERROR(Statement(db_, path_, "DELETE FROM schedule_queue WHERE unit = ? AND type = ?")
                        .Bind(job.unit)
                        .Bind(int64_t{*job.dequeues})
                        .Run());
  }
  Statement e(db_, path_,
              "INSERT INTO job_events (job, time_us, attempt, state, message) "
              "VALUES (?, ?, ?, ?, ?)");
  return e.Bind(job.id)
      .Bind(Us(event.time))
      .Bind(int64_t{event.attempt})
      .Bind(JobStateName(event.state))
      .Bind(event.message)
      .Run();
}

absl::Status SqliteCatalog::UpdateJob(const JobRecord& job, const JobEvent& event) {
  std::lock_guard<std::mutex> l(mu_);
  return Transaction([&]() -> absl::Status { return WriteJobWithEvent(job, event); });
}

absl::StatusOr<std::vector<JobRecord>> SqliteCatalog::ReadJobs(const std::string& where_sql,
                                                               const std::string& arg,
                                                               size_t limit) {
  Statement s(db_, path_,
              absl::StrCat("SELECT ", codec::kJobColumns, " FROM jobs ", where_sql,
                           " ORDER BY created_us DESC, id DESC",
                           limit > 0 ? absl::StrCat(" LIMIT ", limit) : ""));
  if (!arg.empty()) s.Bind(arg);
  std::vector<JobRecord> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord j, codec::JobFromRow(s));
    out.push_back(std::move(j));
    return absl::OkStatus();
  }));
  for (JobRecord& j : out) {
    Statement a(db_, path_,
                absl::StrCat("SELECT ", codec::kAttemptColumns,
                             " FROM job_attempts WHERE job = ? ORDER BY number"));
    a.Bind(j.id);
    RETURN_IF_ERROR(a.ForEachRow([&]() -> absl::Status {
      ASSIGN_OR_RETURN(JobAttempt attempt, codec::AttemptFromRow(a));
      j.attempts.push_back(std::move(attempt));
      return absl::OkStatus();
    }));
  }
  return out;
}

absl::StatusOr<JobRecord> SqliteCatalog::GetJob(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  ASSIGN_OR_RETURN(auto jobs, ReadJobs("WHERE id = ?", id, 1));
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no job ", id, " in the catalog"));
  return std::move(jobs.front());
}

absl::StatusOr<std::vector<JobRecord>> SqliteCatalog::ListJobs(const std::string& unit,
                                                               size_t limit) {
  std::lock_guard<std::mutex> l(mu_);
  return ReadJobs(unit.empty() ? "" : "WHERE unit = ?", unit, limit);
}

absl::StatusOr<std::vector<JobRecord>> SqliteCatalog::UnfinishedJobs() {
  std::lock_guard<std::mutex> l(mu_);
  return ReadJobs("WHERE state NOT IN ('succeeded', 'failed', 'cancelled')", "", 0);
}

absl::StatusOr<uint64_t> SqliteCatalog::PurgeFinishedJobs(absl::Time cutoff) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t removed = 0;
  const absl::Status done = Transaction([&]() -> absl::Status {
    const char* kOld =
        "SELECT id FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND "
        "updated_us < ?";
    for (const char* table : {"job_events", "job_attempts"}) {
      RETURN_IF_ERROR(
          Statement(db_, path_, absl::StrCat("DELETE FROM ", table, " WHERE job IN (", kOld, ")"))
              .Bind(Us(cutoff))
              .Run());
    }
    RETURN_IF_ERROR(Statement(db_, path_,
                              "DELETE FROM jobs WHERE state IN ('succeeded', 'failed', "
                              "'cancelled') AND updated_us < ?")
                        .Bind(Us(cutoff))
                        .Run());
    removed = static_cast<uint64_t>(sqlite3_changes(db_));
    // A verification's record lives as long as its job's.
    RETURN_IF_ERROR(Statement(db_, path_, "DELETE FROM restore_verifications WHERE ended_us < ?")
                        .Bind(Us(cutoff))
                        .Run());
    return absl::OkStatus();
  });
  if (!done.ok()) return done;
  return removed;
}

absl::StatusOr<std::vector<JobEvent>> SqliteCatalog::JobEvents(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  Statement s(db_, path_,
              "SELECT time_us, attempt, state, message FROM job_events WHERE job = ? ORDER BY seq");
  s.Bind(id);
  std::vector<JobEvent> out;
  RETURN_IF_ERROR(s.ForEachRow([&]() -> absl::Status {
    JobEvent e;
    e.time = TimeOf(s.Int(0));
    e.attempt = static_cast<int>(s.Int(1));
    ASSIGN_OR_RETURN(e.state, ParseJobState(s.Text(2)));
    e.message = s.Text(3);
    out.push_back(std::move(e));
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace dagvault::coordinator
