// Restores through the Store writer: to the dismounted active copy's own
// location, or beside production as a recovery database.
#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/evp.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/item_restore_name.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "mailstore/engine/recovery.h"
#include "mailstore/format/edb_header.h"
#include "mailstore/format/log_format.h"
#include "mailstore/server/recovery_checks.h"
#include "mailstore/server/writer.h"

namespace dagvault::mailstore {
namespace {

namespace fs = std::filesystem;

std::string Stamp(Clock* clock) {
  return absl::FormatTime("%Y%m%dT%H%M%S", clock->Now(), absl::UTCTimeZone());
}

// `path`, or `path`-2, -3, ...: the first that does not exist. Kept-aside
// folders are named by the second; two restores in one second get both.
std::string UnusedPath(const std::string& path) {
  std::string candidate = path;
  for (int n = 2; PathExists(candidate); ++n) candidate = absl::StrCat(path, "-", n);
  return candidate;
}

// A double-write buffer holds pages of the database files it was written
// for. Restored files replace those: a buffer left by an interrupted flush
// would put the old files' pages into them (a page past their end, or over
// one that fails its checksum). It is kept aside, not deleted.
absl::Status MoveDoubleWriteBufferAside(const std::string& system_dir, const std::string& prefix,
                                        const std::string& stamp) {
  const std::string dwb = JoinPath(system_dir, absl::StrCat(prefix, ".dwb"));
  if (!PathExists(dwb)) return absl::OkStatus();
  return RenameDurably(dwb, UnusedPath(absl::StrCat(dwb, ".before-restore-", stamp)));
}

// Moves closed logs newer than `generation` out of `dir` into `aside`, so
// that the unit can be opened after a point-in-time recovery.
absl::Status MoveLaterLogsAside(const std::string& dir, const std::string& prefix,
                                Generation generation, const std::string& aside) {
  ASSIGN_OR_RETURN(LogStreamListing listing, ListLogStream(dir, prefix));
  std::vector<std::string> later;
  for (const auto& [gen, path] : listing.closed) {
    if (gen > generation) later.push_back(path);
  }
  if (listing.current) later.push_back(*listing.current);
  if (later.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(CreateDirectories(aside));
  for (const auto& path : later)
    RETURN_IF_ERROR(RenameDurably(path, JoinPath(aside, BaseName(path))));
  return absl::OkStatus();
}

// A restore to the unit's own location replaces its database files: never
// those of another database (one created anew where the old one was lost,
// say) unless the operator says so, as Exchange's "this database can be
// overwritten by a restore". Missing or unreadable files are replaced.
absl::Status RefuseAnotherDatabasesFiles(const dagvault::v1::PrepareRestoreRequest& request,
                                         const dagvault::v1::UnitConfig& target,
                                         const std::string& node) {
  if (request.database_signatures().empty() || request.force_overwrite_different_database()) {
    return absl::OkStatus();
  }
  for (const auto& db : target.databases()) {
    const std::string path = JoinPath(target.system_dir(), db.name() + ".edb");
    if (!PathExists(path)) continue;
    auto header = ReadDbHeaderFromPath(path);
    if (!header.ok()) continue;
    const std::string signature = header->header.db_signature.RandomHex();
    bool ours = false;
    for (const auto& s : request.database_signatures()) ours = ours || s == signature;
    if (!ours) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", request.unit(), ": database file ", path, " on ", node, " has signature ",
          signature, ", which is not the backup's (",
          absl::StrJoin(request.database_signatures(), ", "),
          "): it belongs to another database; restore with --force-overwrite-different-database "
          "to replace it"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<dagvault::v1::PrepareRestoreResponse> Writers::PrepareRestore(
    const dagvault::v1::PrepareRestoreRequest& request) {
  const dagvault::v1::UnitDefinition* definition = config_.FindUnit(request.unit());
  if (definition == nullptr) {
    return absl::NotFoundError(absl::StrCat("no unit named ", request.unit(),
                                            " in the configuration of node ", config_.node()));
  }
  if (request.verification()) {
    // A restore verification holds no lease of the unit (backups of it go
    // on beside it), so it carries no fencing token; what it may write is
    // bounded instead: its own Recovery Database under data_root/rdb.
    if (!IsVerificationDatabaseName(request.recovery_database(), request.unit()) ||
        !request.path().empty() || request.passive_copy()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unit ", request.unit(), ": a restore verification restores a Recovery Database named ",
          request.unit(), "-VERIFY-<time>-<id> under the node's data root only (no path), not \"",
          request.recovery_database(), "\""));
    }
  } else {
    // Fenced by the unit, whatever the target: a superseded restore writes
    // nothing, a recovery database included.
    RETURN_IF_ERROR(
        fencing_tokens_->Admit(request.unit(), request.fencing_token(), "PrepareRestore"));
  }
  Session s;
  // Unique even for two restores of a unit prepared in the same second (a
  // verification holds no lease, so it may run beside another restore).
  s.id = absl::StrCat("restore-", Stamp(clock_), "-", request.unit(), "-", RandomHexId(3));
  s.unit = request.unit();
  s.restore = true;
  s.restore_id = request.restore_id();
  s.last_heard = clock_->Monotonic();
  s.recovery_database = request.recovery_database();
  std::string path = request.path();
  dagvault::v1::PrepareRestoreResponse response;
  // Set once the unit's own location is held for this restore; released
  // again if preparing fails after that.
  UnitHost* own_location = nullptr;
  UnitHost* passive_copy = nullptr;
  auto release = absl::MakeCleanup([&] {
    if (own_location != nullptr) own_location->EndRestore();
    if (passive_copy != nullptr) passive_copy->AbandonPassiveRestore("preparing it failed");
  });
  if (request.passive_copy()) {
    // Into this node's passive copy, through the Replication writer.
    if (!s.recovery_database.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unit ", request.unit(), ": a restore into a passive copy is not a recovery database"));
    }
    UnitHost* host = find_unit_(request.unit());
    if (host == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("unit ", request.unit(), ": node ", config_.node(), " holds no copy of it"));
    }
    // Another database's files are not replaced here either (the active
    // copy's restore refuses them too, but the two run at once).
    RETURN_IF_ERROR(RefuseAnotherDatabasesFiles(request, host->engine_config(), config_.node()));
    // A reseed while the active copy runs on: its stream must continue the
    // chain's, checked before the copy's files go.
    if (request.join_generation() != 0) {
      RETURN_IF_ERROR(
          host->CheckJoinsActiveStream(request.join_generation(), request.join_sha256()));
    }
    RETURN_IF_ERROR(host->BeginPassiveRestore());
    passive_copy = host;
    s.passive_copy = true;
    s.target = host->engine_config();
    s.restore_logs = s.target.log_dir();
  } else if (s.recovery_database.empty()) {
    // To the unit's own location: only through the Store writer of the
    // active copy, and only over a dismounted database.
    UnitHost* host = find_unit_(request.unit());
    const dagvault::v1::CopyStatus copy =
        host != nullptr ? host->Status() : dagvault::v1::CopyStatus{};
    if (host == nullptr || copy.role() != dagvault::v1::ACTIVE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", request.unit(),
          ": a restore to the unit's own location goes through the Store "
          "writer of its active copy",
          host == nullptr
              ? absl::StrCat("; node ", config_.node(), " holds no copy")
              : absl::StrCat(" (on ", copy.active_node(), "); the copy on ", config_.node(),
                             " is passive and is never overwritten by a restore to "
                             "the unit's own location (an all-copies restore replaces "
                             "it through its Replication writer)"),
          "; restore as a recovery database to use this node"));
    }
    if (host->MountedEngine().ok()) {
      if (request.refuse_if_mounted()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "unit ", request.unit(), " is mounted on ", config_.node(),
            ": a restore never overwrites a mounted database; dismount it (and suspend its "
            "passive copies) first, or restore as a recovery database"));
      }
      // Never over a mounted database: restore beside it instead.
      s.recovery_database = absl::StrCat(request.unit(), "-RDB-", Stamp(clock_));
      path = JoinPath(JoinPath(config_.proto.data_root(), "rdb"), s.recovery_database);
      response.set_became_recovery_database(true);
      response.set_message(absl::StrCat("unit ", request.unit(), " is mounted on ", config_.node(),
                                        ": restoring beside it as recovery database ",
                                        s.recovery_database, " at ", path));
    } else {
      if (auto backup = host->BackupInProgress()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "unit ", request.unit(), ": a backup holds the unit (session ", backup->session(),
            " on ", backup->holder_node(), "); restore when it ends"));
      }
      // Every passive copy must have replication suspended: they are
      // reseeded from the restored data afterwards. Each copy is asked
      // (a slow node gets a patient second try), and the refusal names
      // every copy still replicating or not confirmed, not just the first.
      std::vector<std::string> not_suspended;
      for (const auto& c : definition->copies()) {
        if (c.node() == config_.node()) continue;
        auto st = peers_->CopyStatus(c.node(), request.unit());
        if (!st.ok()) st = peers_->CopyStatus(c.node(), request.unit(), absl::Seconds(10));
        if (!st.ok()) {
          not_suspended.push_back(absl::StrCat("the copy on ", c.node(),
                                               " did not confirm it is suspended (",
                                               st.status().message(), ")"));
        } else if (st->state() != dagvault::v1::SUSPENDED &&
                   st->state() != dagvault::v1::FAILED_AND_SUSPENDED) {
          not_suspended.push_back(absl::StrCat("replication to the copy on ", c.node(),
                                               " is not suspended (",
                                               dagvault::v1::CopyState_Name(st->state()), ")"));
        }
      }
      if (!not_suspended.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("unit ", request.unit(), ": ", absl::StrJoin(not_suspended, "; "),
                         "; suspend every passive copy before restoring over the active copy"));
      }
      RETURN_IF_ERROR(RefuseAnotherDatabasesFiles(request, host->engine_config(), config_.node()));
      // From here until RestoreComplete (or the session's end), nothing
      // mounts the unit's files, and no second restore starts.
      RETURN_IF_ERROR(host->BeginRestore());
      own_location = host;
      s.target = host->engine_config();
      s.restore_logs = JoinPath(s.target.system_dir(), "restore-logs");
      std::error_code ec;
      fs::remove_all(s.restore_logs, ec);
    }
  }
  if (!s.recovery_database.empty()) {
    if (path.empty()) {
      // No folder named: beside the node's other recovery databases.
      path = JoinPath(JoinPath(config_.proto.data_root(), "rdb"), s.recovery_database);
    }
    if (config_.FindUnit(s.recovery_database) != nullptr || rdbs_->Has(s.recovery_database)) {
      return absl::AlreadyExistsError(absl::StrCat("the name ", s.recovery_database,
                                                   " is taken on node ", config_.node(),
                                                   "; choose another recovery database name"));
    }
    if (PathExists(path) && !fs::is_empty(path)) {
      return absl::AlreadyExistsError(
          absl::StrCat("recovery database path ", path, " is not empty"));
    }
    s.target = config_.EngineConfig(*definition);
    s.target.set_name(s.recovery_database);
    s.target.set_system_dir(path);
    s.target.set_log_dir(JoinPath(path, "logs"));
    s.restore_logs = s.target.log_dir();
  }
  RETURN_IF_ERROR(CreateDirectories(s.target.system_dir()));
  RETURN_IF_ERROR(CreateDirectories(s.restore_logs));
  response.set_session(s.id);
  response.set_system_dir(s.target.system_dir());
  response.set_log_dir(s.restore_logs);
  response.set_recovery_database(s.recovery_database);
  for (const auto& db : s.target.databases()) {
    response.add_database_paths(JoinPath(s.target.system_dir(), db.name() + ".edb"));
  }
  logging::Get("mailstored.writer")
      ->info("[unit {}] restore prepared ({}), session {}", s.unit,
             s.recovery_database.empty()
                 ? std::string("to the unit's own location")
                 : absl::StrCat("as recovery database ", s.recovery_database, " at ", path),
             s.id);
  std::move(release).Cancel();
  std::lock_guard<std::mutex> lock(mu_);
  sessions_[s.id] = std::move(s);
  return response;
}

absl::StatusOr<dagvault::v1::RestoreCompleteResponse> Writers::RestoreComplete(
    const dagvault::v1::RestoreCompleteRequest& request) {
  Session s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Session * found, FindLocked(request.session()));
    if (!found->restore)
      return absl::InvalidArgumentError(
          absl::StrCat("session ", request.session(), " is not a restore"));
    if (request.abandon()) {
      // The unit is released now rather than at the session's timeout.
      EndLocked(*found, "the requestor gave the restore up");
      sessions_.erase(request.session());
      dagvault::v1::RestoreCompleteResponse response;
      response.set_message("restore session ended without replay");
      return response;
    }
    s = *found;
    sessions_.erase(request.session());
    if (!s.recovery_database.empty()) completing_rdbs_.insert(s.recovery_database);
  }
  auto completed = absl::MakeCleanup([&] {
    if (s.recovery_database.empty()) return;
    bool remove = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      completing_rdbs_.erase(s.recovery_database);
      remove = remove_when_completed_.erase(s.recovery_database) != 0;
    }
    if (!remove) return;
    auto removed = rdbs_->RemoveRecoveryDatabase(s.recovery_database);
    logging::Get("mailstored.writer")
        ->info("[unit {}] recovery database {} removed once its restore completed, as asked: {}",
               s.unit, s.recovery_database,
               removed.ok() ? *removed : std::string(removed.status().message()));
  });
  UnitHost* host = find_unit_(s.unit);
  if (s.passive_copy) return CompletePassiveRestore(s, request, host);
  // Whatever happens now, the unit's files are no longer being replaced:
  // an operator may mount (recovery then says what is wrong) or restore
  // again.
  auto end_restore = absl::MakeCleanup([&] {
    if (s.recovery_database.empty() && host != nullptr) host->EndRestore();
  });
  const std::string log_dir = s.target.log_dir();
  const std::string prefix = s.target.log_prefix();
  const std::string stamp = Stamp(clock_);
  RETURN_IF_ERROR(MoveDoubleWriteBufferAside(s.target.system_dir(), prefix, stamp));
  if (s.recovery_database.empty()) {
    // The restored logs join the logs still on the server (roll-forward),
    // or replace them (the old ones are kept aside, not deleted).
    ASSIGN_OR_RETURN(LogStreamListing restored, ListLogStream(s.restore_logs, prefix));
    if (request.roll_forward()) {
      for (const auto& [gen, path] : restored.closed) {
        const std::string dest = JoinPath(log_dir, LogFileName(prefix, gen));
        if (PathExists(dest)) {
          ASSIGN_OR_RETURN(std::string a, ReadFileToString(path));
          ASSIGN_OR_RETURN(std::string b, ReadFileToString(dest));
          if (a != b) {
            return absl::FailedPreconditionError(
                absl::StrFormat("unit %s: the restored log generation 0x%08X differs from the one "
                                "on the server: the "
                                "streams diverged; restore without roll-forward",
                                s.unit, gen));
          }
          continue;
        }
        RETURN_IF_ERROR(RenameDurably(path, dest));
      }
    } else {
      const std::string aside = UnusedPath(absl::StrCat(log_dir, ".before-restore-", stamp));
      if (PathExists(log_dir)) RETURN_IF_ERROR(RenameDurably(log_dir, aside));
      // The checkpoint belongs to the logs kept aside (to another log
      // stream, if the database was created anew): it goes with them, and
      // replay starts where the restored databases say.
      const std::string checkpoint = JoinPath(s.target.system_dir(), CheckpointFileName(prefix));
      if (PathExists(checkpoint)) {
        RETURN_IF_ERROR(CreateDirectories(aside));
        RETURN_IF_ERROR(RenameDurably(checkpoint, JoinPath(aside, BaseName(checkpoint))));
      }
      RETURN_IF_ERROR(RenameDurably(s.restore_logs, log_dir));
    }
  }
  RecoveryRequest rr;
  rr.system_dir = s.target.system_dir();
  rr.log_dir = log_dir;
  rr.prefix = prefix;
  for (const auto& db : s.target.databases())
    rr.db_paths.push_back(JoinPath(s.target.system_dir(), db.name() + ".edb"));
  if (request.to_generation() != 0) rr.to_generation = request.to_generation();
  rr.clock = clock_;
  if (request.checks().requested() && s.recovery_database.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unit ", s.unit,
                     ": a restore verification's checks run on a Recovery "
                     "Database only"));
  }
  const absl::Duration replay_started = clock_->Monotonic();
  ASSIGN_OR_RETURN(RecoveryReport report, Recover(rr));
  const absl::Duration replayed_at = clock_->Monotonic();
  if (request.to_generation() != 0) {
    RETURN_IF_ERROR(MoveLaterLogsAside(
        log_dir, prefix, report.last_generation,
        UnusedPath(
            absl::StrCat(log_dir, ".after-", GenerationHex(report.last_generation), "-", stamp))));
  }
  std::error_code ec;
  fs::remove_all(JoinPath(s.target.system_dir(), "restore-logs"), ec);
  dagvault::v1::RestoreCompleteResponse response;
  response.set_last_generation(report.last_generation);
  response.set_message(absl::StrFormat(
      "recovered to %s (generations 0x%08X-0x%08X, %u transactions)", report.end.ToString(),
      report.first_generation, report.last_generation, report.transactions));
  response.set_replay_us(absl::ToInt64Microseconds(replayed_at - replay_started));
  if (request.checks().requested()) {
    RETURN_IF_ERROR(CheckRecoveryDatabase(s, rr.db_paths, request.checks(), &response));
    response.set_check_us(absl::ToInt64Microseconds(clock_->Monotonic() - replayed_at));
  } else if (request.mount()) {
    if (s.recovery_database.empty()) {
      std::move(end_restore).Invoke();
      // Recorded before the mount: a restore step repeated after its
      // answer was lost finds the unit mounted by this restore (or, if the
      // mount never happened, dismounted: then it restores again).
      if (!s.restore_id.empty()) RETURN_IF_ERROR(host->RecordRestoredBy(s.restore_id));
      RETURN_IF_ERROR(host->Mount());
    } else {
      RETURN_IF_ERROR(rdbs_->Mount(s.recovery_database, s.target));
    }
    response.set_mounted(true);
  }
  logging::Get("mailstored.writer")
      ->info("[unit {}] restore complete: {}", s.unit, response.message());
  return response;
}

absl::Status Writers::CheckRecoveryDatabase(const Session& s,
                                            const std::vector<std::string>& db_paths,
                                            const dagvault::v1::RecoveryDatabaseChecks& checks,
                                            dagvault::v1::RestoreCompleteResponse* response) {
  // Tests slow the checks here, to ask for the removal meanwhile.
  DAGVAULT_CRASH_POINT("mailstored.restore.checks");
  std::vector<RecoveredFile> files;
  for (int i = 0; i < s.target.databases_size(); ++i) {
    files.push_back({s.target.databases(i).name(), db_paths[static_cast<size_t>(i)]});
  }
  std::vector<dagvault::v1::DatabaseCheck> checked = CheckRecoveredFiles(files);
  bool sound = true;
  for (const auto& c : checked) sound &= c.problems().empty();
  // A damaged database is not mounted: the engine would refuse it or,
  // worse, serve it; the verification has its answer already.
  if (sound) {
    RETURN_IF_ERROR(rdbs_->Mount(s.recovery_database, s.target));
    response->set_mounted(true);
    ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine,
                     rdbs_->FindRecoveryDatabase(s.recovery_database));
    for (size_t i = 0; i < checked.size(); ++i) {
      ReadMountedDatabase(*engine, static_cast<uint32_t>(i), checks, &checked[i]);
    }
  }
  for (auto& c : checked) *response->add_checked() = std::move(c);
  return absl::OkStatus();
}

absl::StatusOr<dagvault::v1::RestoreCompleteResponse> Writers::CompletePassiveRestore(
    const Session& s, const dagvault::v1::RestoreCompleteRequest& request, UnitHost* host) {
  if (host == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("unit ", s.unit, " is no longer configured on node ", config_.node()));
  }
  if (request.to_generation() != 0) {
    // The agent restores no log past the point in time; one there anyway
    // (a leftover) must not be replayed.
    absl::Status aside = MoveLaterLogsAside(
        s.target.log_dir(), s.target.log_prefix(), request.to_generation(),
        UnusedPath(absl::StrCat(s.target.log_dir(), ".after-",
                                GenerationHex(request.to_generation()), "-", Stamp(clock_))));
    if (!aside.ok()) {
      host->AbandonPassiveRestore(std::string(aside.message()));
      return aside;
    }
  }
  if (absl::Status aside =
          MoveDoubleWriteBufferAside(s.target.system_dir(), s.target.log_prefix(), Stamp(clock_));
      !aside.ok()) {
    host->AbandonPassiveRestore(std::string(aside.message()));
    return aside;
  }
  ASSIGN_OR_RETURN(Generation replayed, host->EndPassiveRestore(s.restore_id));
  dagvault::v1::RestoreCompleteResponse response;
  response.set_last_generation(replayed);
  response.set_message(absl::StrFormat(
      "the passive copy on %s replayed the restored logs through 0x%08X; it stays suspended",
      config_.node(), replayed));
  logging::Get("mailstored.writer")
      ->info("[unit {}] restore into the passive copy complete: {}", s.unit, response.message());
  return response;
}

}  // namespace dagvault::mailstore
