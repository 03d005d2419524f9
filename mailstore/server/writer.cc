#include "mailstore/server/writer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/backup_type.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/item_restore_name.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::mailstore {

Writers::Writers(const NodeConfig& config, std::function<UnitHost*(const std::string&)> find_unit,
                 Peers* peers, RecoveryDatabases* rdbs, FencingTokens* fencing_tokens, Clock* clock)
    : config_(config),
      find_unit_(std::move(find_unit)),
      peers_(peers),
      rdbs_(rdbs),
      fencing_tokens_(fencing_tokens),
      clock_(clock) {}

Writers::~Writers() { Stop(); }

void Writers::Start() {
  timer_ = std::thread([this] { TimerLoop(); });
}

void Writers::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    for (auto& [id, s] : sessions_) EndLocked(s, "mailstored is shutting down");
    sessions_.clear();
  }
  wake_.notify_all();
  if (timer_.joinable()) timer_.join();
}

absl::StatusOr<Writers::Session*> Writers::FindLocked(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "writer session ", id, " is unknown on node ", config_.node(),
        ": mailstored restarted since it began (or the session ended); the backup failed"));
  }
  return &it->second;
}

// Ends a backup session that did not complete: thaws, releases the
// backup-in-progress state. Called with mu_ held.
void Writers::EndLocked(Session& s, const std::string& why) {
  auto log = logging::Get("mailstored.writer");
  UnitHost* host = find_unit_(s.unit);
  if (s.restore) {
    if (s.passive_copy && host != nullptr) {
      host->AbandonPassiveRestore(why);
    } else if (s.recovery_database.empty() && host != nullptr) {
      host->EndRestore();
    } else if ((IsVerificationDatabaseName(s.recovery_database, s.unit) ||
                IsItemRestoreDatabaseName(s.recovery_database, s.unit)) &&
               !rdbs_->Has(s.recovery_database)) {
      // A job's Recovery Database lives only as long as its job: one given
      // up, or whose agent died, goes now rather than at the next start.
      std::error_code ec;
      const std::string dir =
          JoinPath(JoinPath(config_.proto.data_root(), "rdb"), s.recovery_database);
      std::filesystem::remove_all(dir, ec);
      if (ec) {
        log->warn("[unit {}] recovery database folder {} could not be removed: {}", s.unit, dir,
                  ec.message());
      }
    }
    log->warn("[unit {}] restore session {} ended without RestoreComplete: {}", s.unit, s.id, why);
    return;
  }
  if (s.frozen && host != nullptr) {
    if (s.passive) {
      host->ResumeReplication();
    } else if (auto engine = host->MountedEngine(); engine.ok()) {
      (void)(*engine)->Thaw();
    }
    s.frozen = false;
  }
  if (s.passive) {
    // Fail-fast, under the sessions' lock: an active that cannot be reached
    // now expires the surrogate state itself (or releases it when this
    // node's next run asks it to).
    (void)ReleaseSurrogate(s, false, 0, 0, /*patient=*/false);
  } else if (host != nullptr) {
    (void)host->backups().Release(s.id);
  }
  log->warn("[unit {}] backup session {} ended without success: {}", s.unit, s.id, why);
}

void Writers::TimerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    wake_.wait_for(lock, std::chrono::milliseconds(100));
    if (stop_) break;
    // Monotonic: a wall-clock step ends no session and extends none.
    const absl::Duration now = clock_->Monotonic();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      Session& s = it->second;
      if (!s.restore && s.frozen && now - s.frozen_at > config_.freeze_timeout) {
        // A freeze this long would make Exchange fail over; thaw and fail.
        s.failure = absl::StrFormat(
            "the unit stayed frozen longer than the freeze timeout (%d ms); "
            "the writer thawed it on its own and the backup failed",
            absl::ToInt64Milliseconds(config_.freeze_timeout));
        EndLocked(s, s.failure);
      }
      if (!s.restore && s.passive && s.failure.empty() &&
          now - s.last_renewed > config_.session_timeout / 4) {
        // Keep the surrogate backup-in-progress on the active alive.
        s.last_renewed = now;
        // Fail-fast: this runs under the sessions' lock, and a renewal
        // that cannot reach the active now is retried at the next tick.
        absl::Status renewed = RenewSurrogate(s, /*patient=*/false);
        if (!renewed.ok() && renewed.code() != absl::StatusCode::kUnavailable &&
            renewed.code() != absl::StatusCode::kDeadlineExceeded) {
          s.failure = absl::StrCat("the backup-in-progress state on the active copy (",
                                   s.active_node, ") was lost: ", renewed.message());
          EndLocked(s, s.failure);
        }
      }
      if (!s.restore && s.registry != nullptr && s.failure.empty() &&
          now - s.last_renewed > config_.session_timeout / 4) {
        // The active copy's own backup-in-progress lives as long as the
        // session does: without this, a backup of the active copy longer
        // than the session timeout lost it and BackupComplete was refused.
        s.last_renewed = now;
        if (absl::Status renewed = s.registry->Renew(s.id); !renewed.ok()) {
          s.failure = absl::StrCat("the backup-in-progress state of unit ", s.unit,
                                   " was lost: ", renewed.message());
          EndLocked(s, s.failure);
        }
      }
      if (now - s.last_heard > config_.session_timeout) {
        EndLocked(s, "the requestor was not heard from for the session timeout");
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

absl::StatusOr<dagvault::v1::WriterMetadata> Writers::GetMetadata() {
  dagvault::v1::WriterMetadata meta;
  meta.set_node(config_.node());
  dagvault::v1::WriterInstance store, replication;
  for (auto* w : {&store, &replication}) w->set_writer_id(kWriterId);
  store.set_instance_name(kStoreWriter);
  replication.set_instance_name(kReplicationWriter);
  for (const auto* def : config_.LocalUnits()) {
    UnitHost* host = find_unit_(def->name());
    if (host == nullptr) continue;
    dagvault::v1::UnitMetadata unit;
    unit.set_unit(def->name());
    unit.set_circular_logging(def->circular_logging());
    *unit.mutable_copy() = host->Status();
    const auto& ec = host->engine_config();
    unit.set_log_prefix(ec.log_prefix());
    unit.set_system_dir(ec.system_dir());
    unit.set_log_dir(ec.log_dir());
    for (const auto& db : ec.databases()) {
      auto* c = unit.add_components();
      c->set_type(dagvault::v1::Component::DATABASE);
      c->set_name(db.name());
      c->add_files(JoinPath(ec.system_dir(), db.name() + ".edb"));
    }
    auto* logs = unit.add_components();
    logs->set_type(dagvault::v1::Component::LOG);
    logs->set_name("log");
    if (const std::string chk = JoinPath(ec.system_dir(), CheckpointFileName(ec.log_prefix()));
        PathExists(chk)) {
      logs->add_files(chk);
    }
    if (auto listing = ListLogStream(ec.log_dir(), ec.log_prefix()); listing.ok()) {
      for (const auto& [gen, path] : listing->closed) logs->add_files(path);
    }
    (unit.copy().role() == dagvault::v1::ACTIVE ? store : replication).add_units()->Swap(&unit);
  }
  if (store.units_size() > 0) *meta.add_writers() = store;
  if (replication.units_size() > 0) *meta.add_writers() = replication;
  return meta;
}

absl::StatusOr<dagvault::v1::PrepareBackupResponse> Writers::PrepareBackup(
    const dagvault::v1::PrepareBackupRequest& request) {
  UnitHost* host = find_unit_(request.unit());
  if (host == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no copy of unit ", request.unit(), " on node ", config_.node()));
  }
  const auto type = request.type();
  if (type == dagvault::v1::BACKUP_TYPE_UNSPECIFIED) {
    return absl::InvalidArgumentError("PrepareBackup: the backup type is missing");
  }
  if (type == dagvault::v1::LOG_ARCHIVE) {
    return absl::InvalidArgumentError(
        "PrepareBackup: a log archive is no backup type (closed logs are archived without a "
        "backup session)");
  }
  if (host->definition().circular_logging() &&
      (type == dagvault::v1::INCREMENTAL || type == dagvault::v1::DIFFERENTIAL)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unit ", request.unit(),
                     " uses circular logging: its logs are deleted at every checkpoint, "
                     "so only Full and Copy backups are possible, not ",
                     BackupTypeToken(type)));
  }
  const dagvault::v1::CopyStatus copy = host->Status();
  Session s;
  s.id = RandomHexId();
  s.unit = request.unit();
  s.type = type;
  s.base_high = request.base_high_generation();
  s.last_heard = s.last_renewed = clock_->Monotonic();
  s.passive = copy.role() == dagvault::v1::PASSIVE;
  s.active_node = copy.active_node();
  dagvault::v1::BackupInProgress bip;
  bip.set_unit(s.unit);
  bip.set_session(s.id);
  bip.set_holder_node(config_.node());
  bip.set_holder_role(copy.role());
  bip.set_type(BackupTypeToken(type));
  bip.set_started_us(clock_->NowMicros());
  bip.set_holder_incarnation(config_.incarnation);
  bip.set_fencing_token(request.fencing_token());
  if (!s.passive) {
    RETURN_IF_ERROR(host->MountedEngine().status());
    if ((type == dagvault::v1::INCREMENTAL || type == dagvault::v1::DIFFERENTIAL) &&
        s.base_high == 0) {
      // Learn the base from the header's previous-backup fields.
      ASSIGN_OR_RETURN(auto engine, host->MountedEngine());
      const DbHeader h = engine->DatabaseHeader(0);
      s.base_high = type == dagvault::v1::INCREMENTAL
                        ? std::max(h.previous_full.high, h.previous_incremental.high)
                        : h.previous_full.high;
      if (s.base_high == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("unit ", s.unit, " has no previous Full backup: take a Full before an ",
                         BackupTypeToken(type)));
      }
    }
    RETURN_IF_ERROR(fencing_tokens_->Admit(s.unit, request.fencing_token(), "PrepareBackup"));
    RETURN_IF_ERROR(host->backups().Acquire(bip));
    s.registry = &host->backups();
  } else {
    if ((type == dagvault::v1::INCREMENTAL || type == dagvault::v1::DIFFERENTIAL) &&
        s.base_high == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unit ", s.unit, ": a ", BackupTypeToken(type),
                       " backup of a passive copy needs base_high_generation (the high generation "
                       "of the backup it follows)"));
    }
    if (copy.state() == dagvault::v1::FAILED_AND_SUSPENDED ||
        copy.state() == dagvault::v1::INITIALIZING || !host->PassivePositions().ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", s.unit, ": the passive copy on ", config_.node(), " cannot be backed up (",
          dagvault::v1::CopyState_Name(copy.state()), ": ", copy.message(), ")"));
    }
    // Fenced here and again on the active copy's node, the unit's single
    // point: it may have seen a newer assignment that this node has not.
    RETURN_IF_ERROR(fencing_tokens_->Admit(s.unit, request.fencing_token(), "PrepareBackup"));
    // A surrogate backup: the state is held on the active copy.
    ASSIGN_OR_RETURN(auto* stub, peers_->Replication(s.active_node));
    dagvault::v1::AcquireBackupRequest acquire;
    acquire.set_unit(s.unit);
    acquire.set_session(s.id);
    acquire.set_holder_node(config_.node());
    acquire.set_type(BackupTypeToken(type));
    acquire.set_holder_incarnation(config_.incarnation);
    acquire.set_fencing_token(request.fencing_token());
    dagvault::v1::AcquireBackupResponse acquired;
    auto context = Peers::PatientContext();
    RETURN_IF_ERROR(FromGrpcStatus(stub->AcquireBackup(context.get(), acquire, &acquired),
                                   absl::StrCat("active copy on ", s.active_node)));
  }
  dagvault::v1::PrepareBackupResponse response;
  response.set_session(s.id);
  response.set_writer_instance(s.passive ? kReplicationWriter : kStoreWriter);
  logging::Get("mailstored.writer")
      ->info("[unit {}] {} backup prepared through the {} writer (session {})", s.unit,
             BackupTypeToken(type), s.passive ? "Replication" : "Store", s.id);
  std::lock_guard<std::mutex> lock(mu_);
  sessions_[s.id] = std::move(s);
  return response;
}

absl::Status Writers::RenewSurrogate(const Session& s, bool patient) {
  ASSIGN_OR_RETURN(auto* stub, peers_->Replication(s.active_node));
  dagvault::v1::BackupSessionRequest request;
  request.set_unit(s.unit);
  request.set_session(s.id);
  dagvault::v1::BackupSessionResponse response;
  auto context = patient ? Peers::PatientContext() : Peers::Context();
  return FromGrpcStatus(stub->RenewBackup(context.get(), request, &response),
                        absl::StrCat("active copy on ", s.active_node));
}

absl::Status Writers::ReleaseSurrogate(const Session& s, bool success, Generation low,
                                       Generation high, bool patient) {
  ASSIGN_OR_RETURN(auto* stub, peers_->Replication(s.active_node));
  dagvault::v1::ReleaseBackupRequest request;
  request.set_unit(s.unit);
  request.set_session(s.id);
  request.set_success(success);
  request.set_type(BackupTypeToken(s.type));
  request.set_low_generation(low);
  request.set_high_generation(high);
  request.set_time_us(clock_->NowMicros());
  request.set_snapshot(true);
  dagvault::v1::BackupSessionResponse response;
  auto context = patient ? Peers::PatientContext(absl::Seconds(30)) : Peers::Context();
  return FromGrpcStatus(stub->ReleaseBackup(context.get(), request, &response),
                        absl::StrCat("active copy on ", s.active_node));
}

absl::StatusOr<dagvault::v1::FreezeResponse> Writers::Freeze(const std::string& id) {
  std::unique_lock<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Session * s, FindLocked(id));
  if (!s->failure.empty()) return absl::FailedPreconditionError(s->failure);
  if (s->frozen)
    return absl::FailedPreconditionError(absl::StrCat("session ", id, " is already frozen"));
  s->last_heard = clock_->Monotonic();
  if (s->passive) {
    // The surrogate backup-in-progress on the active copy must still be
    // ours (the active's mailstored may have restarted since Prepare).
    // Asked without the sessions' lock: it may wait for a reconnection.
    const Session asked = *s;
    lock.unlock();
    absl::Status renewed = RenewSurrogate(asked, /*patient=*/true);
    lock.lock();
    ASSIGN_OR_RETURN(s, FindLocked(id));
    if (!s->failure.empty()) return absl::FailedPreconditionError(s->failure);
    if (s->frozen)
      return absl::FailedPreconditionError(absl::StrCat("session ", id, " is already frozen"));
    if (!renewed.ok()) {
      s->failure = absl::StrCat("the backup-in-progress state on the active copy (", s->active_node,
                                ") was lost: ", renewed.message());
      EndLocked(*s, s->failure);
      return absl::FailedPreconditionError(s->failure);
    }
  }
  UnitHost* host = find_unit_(s->unit);
  if (host == nullptr) return absl::NotFoundError(absl::StrCat("unit ", s->unit, " is gone"));
  const auto& ec = host->engine_config();
  dagvault::v1::FreezeResponse response;
  Generation checkpoint_gen, last;
  std::vector<std::string> db_paths;
  std::shared_ptr<Engine> engine;
  if (!s->passive) {
    ASSIGN_OR_RETURN(engine, host->MountedEngine());
    ASSIGN_OR_RETURN(Engine::FreezeInfo info, engine->Freeze());
    checkpoint_gen = info.checkpoint.generation;
    last = info.closed_generation;
    for (uint32_t i = 0; i < engine->database_count(); ++i) {
      db_paths.push_back(engine->DatabasePath(i));
      response.add_database_signatures(engine->DatabaseHeader(i).db_signature.RandomHex());
    }
    response.set_log_signature(engine->DatabaseHeader(0).log_signature.RandomHex());
  } else {
    // The passive copy holds still: no logs copied or replayed until Thaw.
    RETURN_IF_ERROR(host->PauseReplication());
    auto view = host->PassivePositions();
    if (!view.ok()) {
      host->ResumeReplication();
      return view.status();
    }
    checkpoint_gen = view->position.generation;
    last = view->last_inspected;
    for (const auto& db : ec.databases()) {
      const std::string path = JoinPath(ec.system_dir(), db.name() + ".edb");
      db_paths.push_back(path);
      auto h = ReadDbHeaderFromPath(path);
      if (h.ok()) {
        response.add_database_signatures(h->header.db_signature.RandomHex());
        response.set_log_signature(h->header.log_signature.RandomHex());
      }
    }
  }
  s->frozen = true;
  s->frozen_at = clock_->Monotonic();
  auto thaw_on_error = [&](absl::Status e) {
    if (s->passive) {
      host->ResumeReplication();
    } else {
      (void)engine->Thaw();
    }
    s->frozen = false;
    return e;
  };
  // The files of the snapshot, per backup type (DESIGN.md §5).
  Generation low;
  const bool whole = s->type == dagvault::v1::FULL || s->type == dagvault::v1::COPY;
  if (whole) {
    low = checkpoint_gen;
    for (size_t i = 0; i < db_paths.size(); ++i) {
      auto* f = response.add_files();
      f->set_path(db_paths[i]);
      f->set_role("database");
      f->set_component(ec.databases(static_cast<int>(i)).name());
    }
  } else {
    low = s->base_high + 1;
  }
  if (low > last) low = last;  // nothing new: the freeze still closed one generation
  auto listing = ListLogStream(ec.log_dir(), ec.log_prefix());
  if (!listing.ok()) return thaw_on_error(listing.status());
  for (Generation g = low; g <= last; ++g) {
    const std::string path = JoinPath(ec.log_dir(), LogFileName(ec.log_prefix(), g));
    if (!PathExists(path)) {
      return thaw_on_error(
          absl::NotFoundError(absl::StrFormat("unit %s: log generation 0x%08X, needed by this %s "
                                              "backup, is not on node %s (truncated or "
                                              "not yet copied)%s",
                                              s->unit, g, BackupTypeToken(s->type), config_.node(),
                                              whole ? "" : "; take a Full backup")));
    }
    auto* f = response.add_files();
    f->set_path(path);
    f->set_role("log");
    f->set_component("log");
    f->set_generation(g);
  }
  // Listed only if present: recovery needs the databases' headers, not
  // this file, so a copy without one is still backed up whole.
  if (const std::string chk_path = JoinPath(ec.system_dir(), CheckpointFileName(ec.log_prefix()));
      PathExists(chk_path)) {
    auto* chk = response.add_files();
    chk->set_path(chk_path);
    chk->set_role("checkpoint");
    chk->set_component("log");
  }
  response.set_low_generation(low);
  response.set_high_generation(last);
  s->frozen_low = low;
  s->frozen_high = last;
  response.set_checkpoint_generation(checkpoint_gen);
  response.set_frozen_us(clock_->NowMicros());
  return response;
}

absl::StatusOr<dagvault::v1::ThawResponse> Writers::Thaw(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Session * s, FindLocked(id));
  s->last_heard = clock_->Monotonic();
  if (!s->failure.empty()) return absl::FailedPreconditionError(s->failure);
  if (!s->frozen)
    return absl::FailedPreconditionError(absl::StrCat("session ", id, " is not frozen"));
  UnitHost* host = find_unit_(s->unit);
  if (s->passive) {
    host->ResumeReplication();
  } else {
    ASSIGN_OR_RETURN(auto engine, host->MountedEngine());
    RETURN_IF_ERROR(engine->Thaw());
  }
  s->frozen = false;
  s->thawed = true;
  dagvault::v1::ThawResponse response;
  response.set_frozen_for_us(absl::ToInt64Microseconds(clock_->Monotonic() - s->frozen_at));
  return response;
}

absl::Status Writers::KeepAlive(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Session * s, FindLocked(id));
  s->last_heard = clock_->Monotonic();
  if (!s->failure.empty()) return absl::FailedPreconditionError(s->failure);
  return absl::OkStatus();
}

absl::StatusOr<dagvault::v1::BackupCompleteResponse> Writers::BackupComplete(
    const dagvault::v1::BackupCompleteRequest& request) {
  std::unique_lock<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Session * found, FindLocked(request.session()));
  Session s = *found;
  sessions_.erase(request.session());
  if (s.frozen) {
    EndLocked(s, "BackupComplete arrived while frozen");
    return absl::FailedPreconditionError(
        absl::StrCat("session ", s.id, ": BackupComplete before Thaw; the backup failed"));
  }
  // A session that already failed (freeze timeout, lost state) was ended
  // then: nothing more to release, nothing to record.
  if (!s.failure.empty()) return absl::FailedPreconditionError(s.failure);
  // Success is recorded only for what was frozen: a range the writer did
  // not hand out would let truncation delete logs no backup holds.
  if (request.success()) {
    std::string refused;
    if (!s.thawed) {
      refused = "a successful BackupComplete needs a Freeze and a Thaw first";
    } else if (request.low_generation() != s.frozen_low ||
               request.high_generation() != s.frozen_high) {
      refused = absl::StrFormat(
          "the reported generations 0x%08X-0x%08X are not the frozen ones 0x%08X-0x%08X",
          request.low_generation(), request.high_generation(), s.frozen_low, s.frozen_high);
    }
    if (!refused.empty()) {
      refused = absl::StrCat("session ", s.id, ": ", refused, "; nothing is recorded");
      EndLocked(s, refused);
      return absl::InvalidArgumentError(refused);
    }
  }
  lock.unlock();
  UnitHost* host = find_unit_(s.unit);
  const bool success = request.success();
  for (const auto& c : request.components()) {
    if (!c.success()) {
      logging::Get("mailstored.writer")
          ->warn("[unit {}] component {} failed: {}", s.unit, c.name(), c.message());
    }
  }
  dagvault::v1::BackupCompleteResponse response;
  if (s.passive) {
    RETURN_IF_ERROR(ReleaseSurrogate(s, success, request.low_generation(),
                                     request.high_generation(),
                                     /*patient=*/true));
  } else {
    RETURN_IF_ERROR(host->backups().Release(s.id));
    if (success) {
      ASSIGN_OR_RETURN(
          std::vector<Generation> truncated,
          host->RecordBackup(BackupTypeToken(s.type), request.low_generation(),
                             request.high_generation(), clock_->NowMicros(), /*snapshot=*/true));
      for (Generation g : truncated) response.add_truncated(g);
    }
  }
  logging::Get("mailstored.writer")
      ->info("[unit {}] backup session {} completed: {}", s.unit, s.id,
             success ? "success" : "failure, nothing recorded");
  return response;
}

}  // namespace dagvault::mailstore
