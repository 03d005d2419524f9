// UnitHost: lifecycle, status, the active copy's operations and the log
// truncation rules. Replication is in unit_host_replication.cc, activation
// in unit_host_activation.cc.
#include "mailstore/server/unit_host.h"

#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text_config.h"
#include "mailstore/engine/digest.h"
#include "mailstore/engine/memory_page_access.h"
#include "mailstore/format/log_format.h"
#include "mailstore/server/truncation.h"

namespace dagvault::mailstore {

using dagvault::v1::CopyState;
using dagvault::v1::Role;

UnitHost::UnitHost(const NodeConfig& config, const dagvault::v1::UnitDefinition& definition,
                   Peers* peers, Clock* clock)
    : config_(config),
      definition_(definition),
      copy_(*config.LocalCopy(definition)),
      engine_config_(config.EngineConfig(definition)),
      peers_(peers),
      clock_(clock),
      log_(logging::Get("mailstored.unit")),
      backups_(definition.name(), config.session_timeout, clock) {}

UnitHost::~UnitHost() { Stop(); }

std::string UnitHost::ClosedLogPath(Generation g) const {
  return JoinPath(engine_config_.log_dir(), LogFileName(engine_config_.log_prefix(), g));
}

absl::Status UnitHost::SaveStateLocked() {
  return WriteFileAtomically(JoinPath(config_.UnitDir(name()), "copy.state"), ToTextConfig(state_));
}

absl::Status UnitHost::Start() {
  std::unique_lock<std::mutex> lock(mu_);
  RETURN_IF_ERROR(CreateDirectories(config_.UnitDir(name())));
  const std::string state_path = JoinPath(config_.UnitDir(name()), "copy.state");
  if (PathExists(state_path)) {
    RETURN_IF_ERROR(LoadTextConfig(state_path, &state_));
  } else {
    // A new copy: the preferred copy creates the unit; the others are
    // seeded from it.
    const auto& initial = config_.InitialActive(definition_);
    state_.set_role(initial.node() == config_.node() ? dagvault::v1::ACTIVE
                                                     : dagvault::v1::PASSIVE);
    state_.set_epoch(initial.node() == config_.node() ? 1 : 0);
    state_.set_active_node(initial.node());
    RETURN_IF_ERROR(SaveStateLocked());
  }
  absl::Status opened;
  if (state_.role() == dagvault::v1::ACTIVE && (state_.dismounted() || state_.restoring())) {
    copy_state_ = dagvault::v1::DISMOUNTED;
    message_ = state_.restoring()
                   ? "a restore was replacing its files when mailstored stopped; they may be half "
                     "restored: run the restore again (do not mount it)"
                   : "dismounted by an operator; `mailstore-util mount` mounts it";
    log_->warn("[unit {}] not mounted at start: {}", name(), message_);
    lock.unlock();
  } else if (state_.role() == dagvault::v1::ACTIVE) {
    // Until another copy confirms (or an operator mounts), the worker asks.
    awaiting_confirmation_ = true;
    lock.unlock();
    opened = ConfirmActive();
  } else if (state_.restoring()) {
    // A restore from the repository into this passive copy was under way:
    // its files may be half written.
    state_.set_restoring(false);
    state_.set_failure(
        "a restore from the repository into this copy was under way when mailstored stopped; "
        "restore again or reseed");
    RETURN_IF_ERROR(SaveStateLocked());
    copy_state_ = dagvault::v1::FAILED_AND_SUSPENDED;
    message_ = state_.failure();
    log_->warn("[unit {}] {}", name(), message_);
    lock.unlock();
  } else if (!state_.failure().empty()) {
    copy_state_ = dagvault::v1::FAILED_AND_SUSPENDED;
    message_ = state_.failure();
    lock.unlock();
  } else {
    opened = OpenPassiveLocked();
    lock.unlock();
  }
  // The worker starts even when opening failed: the status says why, and
  // the worker retries what can be retried.
  StartWorker();
  return opened;
}

void UnitHost::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  interrupt_ = true;  // a seed in progress gives up
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
  CloseFailedEngine();
  std::lock_guard<std::mutex> lock(mu_);
  if (engine_) {
    absl::Status s = engine_->Close();
    if (!s.ok()) log_->error("[unit {}] clean shutdown failed: {}", name(), s);
    engine_.reset();
  }
  if (replica_) {
    (void)replica_->Close();
    replica_.reset();
  }
}

absl::Status UnitHost::OpenActiveLocked(bool allow_create) {
  EngineOptions options;
  options.clock = clock_;
  options.flush_interval = config_.flush_interval;
  // With other copies, circular logging deletes through the truncation
  // rules (TruncateByRulesLocked), never past a copy that still needs a log.
  options.circular_deletes = definition_.copies_size() <= 1;
  bool exists = true;
  for (const auto& db : engine_config_.databases()) {
    exists = exists && PathExists(JoinPath(engine_config_.system_dir(), db.name() + ".edb"));
  }
  if (!exists && !allow_create && state_.ever_mounted()) {
    // Files lost (a disk, an operator's mistake): creating new empty ones
    // would hide the loss and stand in the way of the restore.
    copy_state_ = dagvault::v1::DISMOUNTED;
    message_ = absl::StrCat("its database files are missing from ", engine_config_.system_dir(),
                            ": restore it (dagvault restore start --unit ", name(),
                            "), or mount it to create a new, empty database");
    log_->error("[unit {}] {}", name(), message_);
    return absl::FailedPreconditionError(absl::StrCat("unit ", name(), ": ", message_));
  }
  auto engine =
      exists ? Engine::Open(engine_config_, options) : Engine::Create(engine_config_, options);
  if (!engine.ok()) {
    copy_state_ = dagvault::v1::FAILED;
    message_ = std::string(engine.status().message());
    return Annotate(engine.status(), absl::StrCat("unit ", name(), ": cannot mount"));
  }
  engine_ = std::move(*engine);
  copy_state_ = dagvault::v1::MOUNTED;
  message_.clear();
  if (!state_.ever_mounted() || state_.dismounted()) {
    state_.set_ever_mounted(true);
    state_.set_dismounted(false);
    if (absl::Status saved = SaveStateLocked(); !saved.ok()) {
      log_->error("[unit {}] its state could not be saved: {}", name(), saved);
    }
  }
  log_->info("[unit {}] active copy mounted (epoch {})", name(), state_.epoch());
  return absl::OkStatus();
}

absl::Status UnitHost::OpenPassiveLocked() {
  bool seeded = true;
  for (const auto& db : engine_config_.databases()) {
    seeded = seeded && PathExists(JoinPath(engine_config_.system_dir(), db.name() + ".edb"));
  }
  copy_state_ = dagvault::v1::INITIALIZING;
  truncation_allowed_ = truncation_applied_ = 0;  // a (re)opened copy waits for the active
  if (!seeded) {
    message_ = "waiting to be seeded from the active copy";
    return absl::OkStatus();  // the worker seeds it
  }
  ReplicaOptions options;
  options.replay_lag = absl::Seconds(copy_.replay_lag_seconds());
  options.clock = clock_;
  auto replica = Replica::Open(engine_config_, options);
  if (!replica.ok()) {
    SetFailure(std::string(replica.status().message()), /*suspend=*/true);
    return absl::OkStatus();  // reported in the status; the daemon keeps running
  }
  replica_ = std::move(*replica);
  passive_view_ = {replica_->replay_position(), replica_->last_inspected(),
                   replica_->last_replayed()};
  message_.clear();
  return absl::OkStatus();
}

void UnitHost::SetFailure(const std::string& message, bool suspend) {
  copy_state_ = suspend ? dagvault::v1::FAILED_AND_SUSPENDED : dagvault::v1::FAILED;
  message_ = message;
  if (suspend) {
    state_.set_failure(message);
    (void)SaveStateLocked();
  }
  log_->error("[unit {}] {}", name(), message);
}

void UnitHost::TakeFailedEngineLocked() {
  if (!engine_) return;
  const absl::Status health = engine_->health();
  if (health.ok()) return;
  failed_engine_ = std::move(engine_);
  copy_state_ = dagvault::v1::DISMOUNTED;
  message_ = absl::StrCat("dismounted by a failure: ", health.message(),
                          "; fix its cause (a full volume: free space) and mount the unit: it "
                          "recovers from its logs");
  log_->error("[unit {}] {}", name(), message_);
  wake_.notify_all();  // the worker closes it
}

void UnitHost::CloseFailedEngine() {
  std::shared_ptr<Engine> failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    failed = std::move(failed_engine_);
  }
  // Without a clean shutdown: the databases stay DirtyShutdown and the next
  // mount replays the logs. It may wait for I/O on the failing volume,
  // which is why no client call does it.
  if (failed) (void)failed->Close();
}

absl::StatusOr<std::shared_ptr<Engine>> UnitHost::MountedEngine() {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.role() != dagvault::v1::ACTIVE) {
    return absl::FailedPreconditionError(absl::StrCat("unit ", name(), " is not active on node ",
                                                      config_.node(), "; the active copy is on ",
                                                      state_.active_node()));
  }
  TakeFailedEngineLocked();
  if (!engine_) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), " is dismounted on node ", config_.node(),
                     message_.empty() ? "" : absl::StrCat(" (", message_, ")")));
  }
  return engine_;
}

absl::Status UnitHost::Mount() {
  {
    // A failed engine is closed first: the new one recovers its files.
    std::lock_guard<std::mutex> lock(mu_);
    TakeFailedEngineLocked();
  }
  CloseFailedEngine();
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.role() != dagvault::v1::ACTIVE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", name(), ": only the active copy mounts; it is on ", state_.active_node()));
  }
  if (engine_) return absl::OkStatus();
  if (restoring_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", name(), ": a restore is replacing its files; it mounts at RestoreComplete"));
  }
  if (state_.restoring()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(),
                     ": a restore was replacing its files when mailstored stopped; they may be "
                     "half restored: run the restore again"));
  }
  RETURN_IF_ERROR(OpenActiveLocked(/*allow_create=*/true));
  if (awaiting_confirmation_) {
    log_->warn("[unit {}] mounted by an operator without another copy's confirmation", name());
    awaiting_confirmation_ = false;
  }
  return absl::OkStatus();
}

absl::Status UnitHost::BeginRestore() {
  std::lock_guard<std::mutex> lock(mu_);
  if (engine_) {
    return absl::FailedPreconditionError(absl::StrCat("unit ", name(), " is mounted"));
  }
  if (restoring_) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": another restore is under way"));
  }
  restoring_ = true;
  awaiting_confirmation_ = false;  // the restore mounts it, or an operator does
  message_ = "a restore is replacing the files";
  state_.set_restoring(true);
  return SaveStateLocked();
}

absl::Status UnitHost::RecordRestoredBy(const std::string& restore_id) {
  std::lock_guard<std::mutex> lock(mu_);
  state_.set_restored_by(restore_id);
  return SaveStateLocked();
}

void UnitHost::EndRestore() {
  std::lock_guard<std::mutex> lock(mu_);
  restoring_ = false;
  if (!engine_) message_ = "dismounted";
  state_.set_restoring(false);
  if (absl::Status saved = SaveStateLocked(); !saved.ok()) {
    log_->error("[unit {}] its state could not be saved: {}", name(), saved);
  }
}

absl::Status UnitHost::Dismount() {
  std::shared_ptr<Engine> engine;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_.role() != dagvault::v1::ACTIVE) {
      return absl::FailedPreconditionError(absl::StrCat("unit ", name(), " is not active here"));
    }
    engine = std::move(engine_);
    // An operator's dismount stands, across restarts too: neither the
    // worker nor a restarted daemon mounts it.
    awaiting_confirmation_ = false;
    copy_state_ = dagvault::v1::DISMOUNTED;
    message_ = "dismounted by an operator";
    state_.set_dismounted(true);
    if (absl::Status saved = SaveStateLocked(); !saved.ok()) {
      log_->error("[unit {}] the dismount is not kept across a restart: {}", name(), saved);
    }
  }
  if (engine) RETURN_IF_ERROR(engine->Close());
  log_->info("[unit {}] dismounted", name());
  return absl::OkStatus();
}

absl::Status UnitHost::RollLog() {
  ASSIGN_OR_RETURN(auto engine, MountedEngine());
  return engine->RollLog();
}

std::optional<dagvault::v1::BackupInProgress> UnitHost::BackupInProgress() {
  return backups_.Current();
}

absl::StatusOr<std::vector<Generation>> UnitHost::RecordBackup(const std::string& type,
                                                               Generation low, Generation high,
                                                               int64_t time_us, bool snapshot) {
  std::lock_guard<std::mutex> truncating(truncation_mu_);
  ASSIGN_OR_RETURN(auto engine, MountedEngine());
  Engine::BackupType t;
  if (type == "full") {
    t = Engine::BackupType::kFull;
  } else if (type == "incremental") {
    t = Engine::BackupType::kIncremental;
  } else if (type == "differential") {
    t = Engine::BackupType::kDifferential;
  } else if (type == "copy") {
    t = Engine::BackupType::kCopy;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown backup type \"", type, "\""));
  }
  RETURN_IF_ERROR(engine->RecordBackup(t, low, high, time_us, snapshot));
  log_->info("[unit {}] {} backup of generations 0x{:08X}-0x{:08X} recorded", name(), type, low,
             high);
  // Differential and Copy backups truncate nothing.
  if (t != Engine::BackupType::kFull && t != Engine::BackupType::kIncremental) {
    return std::vector<Generation>{};
  }
  return TruncateByRulesLocked();
}

absl::StatusOr<std::vector<Generation>> UnitHost::TruncateByRules() {
  std::lock_guard<std::mutex> truncating(truncation_mu_);
  return TruncateByRulesLocked();
}

absl::StatusOr<std::vector<Generation>> UnitHost::TruncateByRulesLocked() {
  // A unit alone deletes its circular logs in the engine, at each checkpoint.
  if (definition_.circular_logging() && definition_.copies_size() <= 1) {
    return std::vector<Generation>{};
  }
  ASSIGN_OR_RETURN(auto engine, MountedEngine());
  TruncationInputs in;
  const DbHeader h = engine->DatabaseHeader(0);
  // Circular logging waives rule 1 (no backup is needed for a log to go),
  // as Exchange's continuous replication circular logging does; rules 2 to
  // 4 hold, so no copy loses a log it has not replayed.
  in.backup_high = definition_.circular_logging()
                       ? std::numeric_limits<Generation>::max()
                       : std::max(h.previous_full.high, h.previous_incremental.high);
  in.checkpoint = engine->checkpoint().generation;
  in.checkpoint_depth = config_.checkpoint_depth;
  std::vector<std::string> others;
  TruncationDecision decision;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& c : definition_.copies()) {
      if (c.node() == config_.node()) continue;
      others.push_back(c.node());
      auto it = progress_.find(c.node());
      TruncationInputs::Copy copy{c.node(), c.replay_lag_seconds() > 0, it != progress_.end()};
      if (copy.heard) {
        copy.inspected = it->second.inspected;
        copy.replayed = it->second.replayed;
      }
      in.copies.push_back(copy);
    }
    decision = DecideTruncation(in);
    truncation_ = decision;
    if (decision.through <= truncated_through_) return std::vector<Generation>{};
  }
  const Generation point = decision.through;
  ASSIGN_OR_RETURN(std::vector<Generation> deleted, engine->TruncateLogs(point));
  if (!deleted.empty()) {
    log_->info("[unit {}] logs 0x{:08X}-0x{:08X} truncated; the rest is held by {}", name(),
               deleted.front(), deleted.back(), decision.held_by);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    truncated_through_ = std::max(truncated_through_, point);
  }
  for (const auto& node : others) {
    auto stub = peers_->Replication(node);
    if (!stub.ok()) continue;
    dagvault::v1::TruncateRequest request;
    request.set_unit(name());
    request.set_through_generation(point);
    dagvault::v1::TruncateResponse response;
    auto context = Peers::Context();
    grpc::Status s = (*stub)->Truncate(context.get(), request, &response);
    if (!s.ok()) {
      log_->warn("[unit {}] truncation on {} will be retried: {}", name(), node, s.error_message());
      std::lock_guard<std::mutex> lock(mu_);
      truncated_through_ = std::min(truncated_through_, point - 1);
    }
  }
  return deleted;
}

dagvault::v1::CopyStatus UnitHost::Status() {
  std::lock_guard<std::mutex> lock(mu_);
  TakeFailedEngineLocked();  // a failed engine is reported Dismounted at once
  dagvault::v1::CopyStatus s;
  s.set_unit(name());
  s.set_node(config_.node());
  s.set_role(state_.role());
  s.set_state(state_.suspended() && state_.failure().empty() &&
                      state_.role() == dagvault::v1::PASSIVE
                  ? dagvault::v1::SUSPENDED
                  : copy_state_);
  s.set_epoch(state_.epoch());
  s.set_replay_lag_seconds(copy_.replay_lag_seconds());
  s.set_activation_preference(copy_.activation_preference());
  s.set_message(message_);
  s.set_active_node(state_.active_node());
  s.set_restored_by(state_.restored_by());
  for (const auto& [node, bytes] : log_bytes_sent_) (*s.mutable_log_bytes_sent())[node] = bytes;
  for (const auto& [node, bytes] : seed_bytes_sent_) (*s.mutable_seed_bytes_sent())[node] = bytes;
  if (state_.role() == dagvault::v1::ACTIVE && engine_) {
    const Generation closed = engine_->current_generation() - 1;
    s.set_last_log_generation(closed);
    s.set_open_generation_since_us(engine_->open_generation_since_us());
    s.set_last_inspected_generation(closed);
    s.set_last_replayed_generation(closed);
    s.set_checkpoint_generation(engine_->checkpoint().generation);
    s.set_truncatable_through(truncation_.through);
    s.set_truncation_held_by(truncation_.held_by);
  } else if (state_.role() == dagvault::v1::PASSIVE) {
    s.set_last_log_generation(active_newest_closed_);
    s.set_last_inspected_generation(passive_view_.last_inspected);
    s.set_last_replayed_generation(passive_view_.last_replayed);
    s.set_checkpoint_generation(passive_view_.position.generation);
    s.set_copy_queue(active_newest_closed_ > passive_view_.last_inspected
                         ? active_newest_closed_ - passive_view_.last_inspected
                         : 0);
    s.set_replay_queue(passive_view_.last_inspected - passive_view_.last_replayed);
  }
  if (auto listing = ListLogStream(engine_config_.log_dir(), engine_config_.log_prefix());
      listing.ok()) {
    s.set_lowest_log_generation(listing->LowestClosed());
  }
  return s;
}

absl::StatusOr<dagvault::v1::DigestResponse> UnitHost::Digest(const std::string& database) {
  std::unique_lock<std::mutex> lock(mu_);
  int index = 0;
  if (!database.empty()) {
    index = -1;
    for (int i = 0; i < engine_config_.databases_size(); ++i) {
      if (engine_config_.databases(i).name() == database) index = i;
    }
    if (index < 0) {
      return absl::NotFoundError(absl::StrCat("unit ", name(), " has no database ", database));
    }
  }
  dagvault::v1::DigestResponse response;
  if (state_.role() == dagvault::v1::ACTIVE) {
    if (!engine_)
      return absl::FailedPreconditionError(absl::StrCat("unit ", name(), " is dismounted"));
    auto engine = engine_;
    lock.unlock();
    Lsn appended;
    ASSIGN_OR_RETURN(Sha256Digest digest, engine->Digest(static_cast<uint32_t>(index), &appended));
    response.set_sha256(DigestToHex(digest));
    ASSIGN_OR_RETURN(MetaInfo meta, engine->Meta(static_cast<uint32_t>(index)));
    response.set_items(meta.item_count);
    response.set_value_bytes(meta.value_bytes);
    response.set_generation(engine->current_generation());
    // Nothing logged in the current generation yet: the digest is exactly
    // the data through the closed one before it, which a passive copy
    // replayed through that generation must hold too.
    if (appended.offset == kLogHeaderSize && appended.generation > 1) {
      response.set_through_generation(appended.generation - 1);
    }
    return response;
  }
  if (!replica_)
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": this copy is not seeded"));
  // A passive copy: its databases hold everything before the replay
  // position; read them while replication is held still.
  PauseLocked(lock);
  const std::string path =
      JoinPath(engine_config_.system_dir(), engine_config_.databases(index).name() + ".edb");
  const Generation replayed = replica_->last_replayed();
  lock.unlock();
  absl::StatusOr<DigestResult> result = [&]() -> absl::StatusOr<DigestResult> {
    ASSIGN_OR_RETURN(auto db, DatabaseFile::Open(path, false));
    FilePageReader reader(*db);
    ItemTable table(reader, nullptr);
    return DigestItems(table);
  }();
  lock.lock();
  UnpauseLocked();
  if (!result.ok()) return result.status();
  response.set_sha256(DigestToHex(result->digest));
  response.set_items(result->items);
  response.set_value_bytes(result->value_bytes);
  response.set_generation(replayed);
  response.set_through_generation(replayed);
  return response;
}

}  // namespace dagvault::mailstore
