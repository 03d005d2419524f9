// UnitHost: the background worker (replication of a passive copy, the
// truncation rules on the active one), seeding, and serving the other
// copies.
#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "mailstore/server/unit_host.h"

namespace dagvault::mailstore {
namespace {

namespace fs = std::filesystem;
constexpr size_t kChunk = 1 << 20;

// Streams a file in chunks; the first names it.
//
// The first chunk, which holds a database's header, is read before the
// size is taken. A database copied while it changes (a seed) is made
// consistent by replay from the checkpoint in that header: every page
// flushed before the header recorded the checkpoint must be in the copy,
// and a page the lazy writer appended between a size taken first and the
// header read would be cut off, with nothing left in the logs to rebuild
// it.
absl::Status StreamFile(const std::string& path, const std::string& name,
                        const UnitHost::ChunkWriter& write) {
  ASSIGN_OR_RETURN(File f, File::OpenReadOnly(path));
  std::string buf(kChunk, '\0');
  ASSIGN_OR_RETURN(size_t first, f.ReadAtMost(0, buf.data(), kChunk));
  ASSIGN_OR_RETURN(uint64_t size, f.Size());
  size = std::max<uint64_t>(size, first);
  uint64_t offset = 0;
  do {
    size_t n = first;
    if (offset > 0) {
      ASSIGN_OR_RETURN(n,
                       f.ReadAtMost(offset, buf.data(), std::min<uint64_t>(kChunk, size - offset)));
    }
    dagvault::v1::FileChunk chunk;
    chunk.set_name(name);
    chunk.set_size(size);
    chunk.set_offset(offset);
    chunk.set_data(buf.data(), n);
    if (!write(chunk)) return absl::CancelledError("the receiver went away");
    offset += n;
    if (n == 0) break;
  } while (offset < size);
  return absl::OkStatus();
}

}  // namespace

void UnitHost::StartWorker() {
  worker_ = std::thread([this] { WorkerLoop(); });
}

void UnitHost::PauseLocked(std::unique_lock<std::mutex>& lock) {
  ++pauses_;
  // The running pass stops at its next generation rather than finishing
  // its batch (a backup's Freeze waits on this).
  ++pause_waiting_;
  idle_.wait(lock, [&] { return !busy_; });
  --pause_waiting_;
}

void UnitHost::UnpauseLocked() {
  if (pauses_ > 0) --pauses_;
  wake_.notify_all();
  idle_.notify_all();  // BeginPassiveRestore waits for the other holders
}

absl::Status UnitHost::PauseReplication() {
  std::unique_lock<std::mutex> lock(mu_);
  RETURN_IF_ERROR(RefuseIfRestoringLocked("back it up"));
  PauseLocked(lock);
  ++frozen_backups_;
  return absl::OkStatus();
}

void UnitHost::ResumeReplication() {
  std::lock_guard<std::mutex> lock(mu_);
  if (frozen_backups_ > 0) --frozen_backups_;
  UnpauseLocked();
}

absl::Status UnitHost::RefuseIfFrozenLocked(const std::string& what) const {
  if (frozen_backups_ == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("unit ", name(), ": a backup of the copy on ", config_.node(),
                   " is frozen (its files are being copied); ", what, " after it thaws"));
}

absl::Status UnitHost::RefuseIfRestoringLocked(const std::string& what) const {
  if (!restoring_) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("unit ", name(), ": the copy on ", config_.node(),
                   " is being restored from the repository; ", what, " when that ends"));
}

absl::StatusOr<UnitHost::PassiveView> UnitHost::PassivePositions() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!replica_)
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": this copy is not seeded"));
  return PassiveView{replica_->replay_position(), replica_->last_inspected(),
                     replica_->last_replayed()};
}

void UnitHost::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  bool more = false;
  while (!stop_) {
    if (!more) wake_.wait_for(lock, absl::ToChronoMilliseconds(config_.poll_interval));
    more = false;
    if (stop_) break;
    if (pauses_ > 0) continue;
    if (state_.role() == dagvault::v1::ACTIVE && awaiting_confirmation_) {
      lock.unlock();
      absl::Status confirmed = ConfirmActive();
      if (!confirmed.ok()) log_->error("[unit {}] {}", name(), confirmed);
      lock.lock();
      continue;
    }
    if (state_.role() == dagvault::v1::ACTIVE) {
      // An engine that failed with no client to notice (the lazy writer's
      // flush) is dismounted all the same.
      TakeFailedEngineLocked();
      lock.unlock();
      CloseFailedEngine();
      auto truncated = TruncateByRules();
      if (!truncated.ok() && truncated.status().code() != absl::StatusCode::kFailedPrecondition) {
        log_->warn("[unit {}] truncation: {}", name(), truncated.status());
      }
      lock.lock();
      continue;
    }
    if (!state_.failure().empty() || state_.suspended()) continue;
    if (needs_divergence_check_) {
      // Busy like a replication pass: a pause (a suspend, a restore into
      // the copy) waits for it.
      busy_ = true;
      lock.unlock();
      RunDivergenceCheck();
      lock.lock();
      busy_ = false;
      idle_.notify_all();
      continue;
    }
    busy_ = true;
    lock.unlock();
    absl::Status s = ReplicateOnce(&more);
    lock.lock();
    busy_ = false;
    idle_.notify_all();
    if (replica_) {
      passive_view_ = {replica_->replay_position(), replica_->last_inspected(),
                       replica_->last_replayed()};
    }
    if (s.ok()) {
      if (replica_) {
        copy_state_ = dagvault::v1::HEALTHY;
        message_.clear();
      }
    } else if (auto g = DivergedAt(s)) {
      SetFailure(absl::StrCat(s.message(), "; this copy needs a reseed"), /*suspend=*/true);
    } else if (state_.failure().empty()) {
      if (copy_state_ != dagvault::v1::FAILED || message_ != s.message()) {
        log_->warn("[unit {}] replication: {}", name(), s);
      }
      copy_state_ = dagvault::v1::FAILED;
      message_ = std::string(s.message());
    }
  }
}

void UnitHost::RunDivergenceCheck() {
  std::string active;
  {
    std::lock_guard<std::mutex> lock(mu_);
    active = state_.active_node();
  }
  absl::Status checked = CheckDivergence(active);
  std::lock_guard<std::mutex> lock(mu_);
  if (checked.code() == absl::StatusCode::kDataLoss) {
    needs_divergence_check_ = false;
    SetFailure(std::string(checked.message()), /*suspend=*/true);
  } else if (!checked.ok()) {
    // The new active copy cannot be asked now; try again later, and
    // replicate nothing meanwhile.
    copy_state_ = dagvault::v1::FAILED;
    message_ = absl::StrCat("cannot yet compare this copy's logs with the active copy's: ",
                            checked.message());
  } else {
    needs_divergence_check_ = false;
    log_->info("[unit {}] this copy's logs are all in the stream of the active copy on {}", name(),
               active);
    if (!restoring_) (void)OpenPassiveLocked();
  }
}

absl::StatusOr<std::string> UnitHost::FindActiveNode() {
  std::string believed;
  uint64_t epoch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    believed = state_.active_node();
    epoch = state_.epoch();
  }
  auto adopt = [&](const dagvault::v1::CopyStatus& s) -> std::string {
    std::lock_guard<std::mutex> lock(mu_);
    active_newest_closed_ = s.last_log_generation();
    if (s.node() != state_.active_node() || s.epoch() > state_.epoch()) {
      state_.set_active_node(s.node());
      state_.set_epoch(std::max(state_.epoch(), s.epoch()));
      (void)SaveStateLocked();
    }
    return s.node();
  };
  auto st = peers_->CopyStatus(believed, name());
  if (st.ok() && st->role() == dagvault::v1::ACTIVE && st->epoch() >= epoch) return adopt(*st);
  if (st.ok() && st->role() == dagvault::v1::PASSIVE && !st->active_node().empty() &&
      st->active_node() != believed && st->active_node() != config_.node()) {
    auto next = peers_->CopyStatus(st->active_node(), name());
    if (next.ok() && next->role() == dagvault::v1::ACTIVE && next->epoch() >= epoch) {
      return adopt(*next);
    }
  }
  // Ask every copy: the active one with the highest epoch wins.
  std::optional<dagvault::v1::CopyStatus> best;
  for (const auto& c : definition_.copies()) {
    if (c.node() == config_.node()) continue;
    auto s = peers_->CopyStatus(c.node(), name());
    if (s.ok() && s->role() == dagvault::v1::ACTIVE && s->epoch() >= epoch &&
        (!best || s->epoch() > best->epoch())) {
      best = *s;
    }
  }
  if (best) return adopt(*best);
  return absl::UnavailableError(
      absl::StrCat("no reachable active copy of unit ", name(), " (last known on ", believed, ")",
                   st.ok() ? "" : absl::StrCat(": ", st.status().message())));
}

absl::Status UnitHost::FetchGeneration(const std::string& from, Generation g, bool* found) {
  *found = false;
  ASSIGN_OR_RETURN(auto* stub, peers_->Replication(from));
  dagvault::v1::FetchLogRequest request;
  request.set_unit(name());
  request.set_generation(g);
  request.set_from_node(config_.node());
  {
    std::lock_guard<std::mutex> lock(mu_);
    request.set_epoch(state_.epoch());
    request.set_inspected_generation(passive_view_.last_inspected);
    request.set_replayed_generation(passive_view_.last_replayed);
    request.set_lagged(copy_.replay_lag_seconds() > 0);
  }
  const std::string incoming =
      JoinPath(engine_config_.log_dir(), absl::StrCat(engine_config_.log_prefix(), "incoming.tmp"));
  RETURN_IF_ERROR(CreateDirectories(engine_config_.log_dir()));
  {
    // A leftover of ours goes first (unlink does not follow a link); the
    // new file must not exist, and a link planted in its place is refused.
    RETURN_IF_ERROR(RemoveDurably(incoming));
    ASSIGN_OR_RETURN(File out, CreateNewFile(incoming, 0644));
    auto context = Peers::Context(absl::Seconds(60));
    auto reader = stub->FetchLog(context.get(), request);
    dagvault::v1::FileChunk chunk;
    uint64_t written = 0, size = 0;
    while (reader->Read(&chunk)) {
      RETURN_IF_ERROR(out.WriteAt(chunk.offset(), chunk.data().data(), chunk.data().size()));
      written += chunk.data().size();
      size = chunk.size();
    }
    grpc::Status s = reader->Finish();
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return absl::OkStatus();  // not closed yet
    if (!s.ok()) return FromGrpcStatus(s, absl::StrCat(from, " FetchLog(", name(), ", ", g, ")"));
    if (written != size) {
      return absl::DataLossError(
          absl::StrFormat("log generation 0x%08X from %s arrived cut short (%u of %u bytes)", g,
                          from, written, size));
    }
    RETURN_IF_ERROR(out.Sync());
  }
  *found = true;
  return replica_->Accept(incoming);
}

absl::Status UnitHost::ReplicateOnce(bool* more) {
  *more = false;
  if (!replica_) {
    bool seeded = true;
    for (const auto& db : engine_config_.databases()) {
      seeded = seeded && PathExists(JoinPath(engine_config_.system_dir(), db.name() + ".edb"));
    }
    // Only a copy without databases is seeded: one with databases (an old
    // active copy, say) is opened as it is, or fails and waits for an
    // operator's reseed.
    if (!seeded) RETURN_IF_ERROR(SeedFromActive());
    std::unique_lock<std::mutex> lock(mu_);
    RETURN_IF_ERROR(OpenPassiveLocked());
    if (!replica_) return absl::FailedPreconditionError(message_);
  }
  // Copy what the active has closed, a batch at a time. Even when there is
  // nothing new, the first request reports this copy's progress to the
  // active (it decides truncation on it). An active that cannot be reached
  // does not stop the replay of what is here (a lagged copy's due logs).
  absl::Status copied = CopyFromActive(more);
  if (pause_waiting_ > 0) {
    *more = true;  // replay when the pause ends
    return copied;
  }
  ASSIGN_OR_RETURN(int replayed, replica_->Replay(/*ignore_lag=*/false, /*max_batches=*/1));
  if (replayed >= static_cast<int>(Replica::kReplayBatch)) *more = true;  // perhaps more due
  // The logs the active let go, as far as this copy has replayed them (a
  // lagged copy, later): after a replay, or when the active allowed more.
  Generation allowed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    allowed = truncation_allowed_;
  }
  if (allowed > 0 && (replayed > 0 || allowed > truncation_applied_)) {
    auto deleted = replica_->Truncate(allowed);
    if (deleted.ok()) {
      truncation_applied_ = allowed;
      if (!deleted->empty()) {
        log_->debug("[unit {}] logs 0x{:08X}-0x{:08X} truncated", name(), deleted->front(),
                    deleted->back());
      }
    } else {
      log_->warn("[unit {}] truncation: {}", name(), deleted.status());
    }
  }
  return copied;
}

absl::Status UnitHost::CopyFromActive(bool* more) {
  ASSIGN_OR_RETURN(std::string active, FindActiveNode());
  ReleaseStaleBackups(active);
  Generation newest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    newest = active_newest_closed_;
  }
  constexpr int kCopyBatch = 16;
  Generation next = replica_->last_inspected() + 1;
  bool found = false;
  for (int copied = 0; copied < kCopyBatch && !interrupt_ && pause_waiting_ == 0; ++copied) {
    RETURN_IF_ERROR(FetchGeneration(active, next, &found));
    if (!found) break;
    {
      std::lock_guard<std::mutex> lock(mu_);
      passive_view_.last_inspected = replica_->last_inspected();
    }
    if (++next > newest) break;
  }
  *more = found && next <= newest;
  return absl::OkStatus();
}

void UnitHost::ReleaseStaleBackups(const std::string& active) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stale_backups_released_) return;
  }
  auto stub = peers_->Replication(active);
  if (!stub.ok()) return;
  dagvault::v1::ReleaseStaleBackupsRequest request;
  request.set_unit(name());
  request.set_holder_node(config_.node());
  request.set_current_incarnation(config_.incarnation);
  dagvault::v1::BackupSessionResponse response;
  auto context = Peers::Context();
  if ((*stub)->ReleaseStaleBackups(context.get(), request, &response).ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    stale_backups_released_ = true;
  }
}

absl::Status UnitHost::SeedFromActive() {
  ASSIGN_OR_RETURN(std::string active, FindActiveNode());
  ASSIGN_OR_RETURN(auto* stub, peers_->Replication(active));
  const std::string staging = JoinPath(config_.UnitDir(name()), "seed.tmp");
  std::error_code ec;
  fs::remove_all(staging, ec);
  RETURN_IF_ERROR(CreateDirectories(staging));
  log_->debug("[unit {}] seeding this copy from {}", name(), active);
  dagvault::v1::SeedRequest request;
  request.set_unit(name());
  request.set_from_node(config_.node());
  auto context = Peers::Context(absl::Hours(2));
  auto reader = stub->Seed(context.get(), request);
  dagvault::v1::FileChunk chunk;
  std::map<std::string, uint64_t> files;  // name -> size
  File out;
  std::string current;
  while (reader->Read(&chunk)) {
    if (interrupt_) {
      context->TryCancel();
      return absl::CancelledError(absl::StrCat(
          "unit ", name(), ": seeding interrupted (replication suspended, or shutting down)"));
    }
    if (chunk.name() != current) {
      current = chunk.name();
      // A peer's name, from the network: it must stay inside the staging
      // folder ("/etc/x" joined to it would be /etc/x).
      if (!IsSafeRelativePath(current)) {
        return absl::InvalidArgumentError(absl::StrCat("seed from ", active,
                                                       " names a file outside the copy: \"",
                                                       absl::CEscape(current), "\""));
      }
      const std::string path = JoinPath(staging, current);
      RETURN_IF_ERROR(CreateDirectories(DirName(path)));
      RETURN_IF_ERROR(RemoveDurably(path));
      ASSIGN_OR_RETURN(out, CreateNewFile(path, 0644));
      files[current] = chunk.size();
    }
    RETURN_IF_ERROR(out.WriteAt(chunk.offset(), chunk.data().data(), chunk.data().size()));
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpcStatus(s, absl::StrCat(active, " Seed(", name(), ")"));
  for (const auto& [file, size] : files) {
    const std::string path = JoinPath(staging, file);
    ASSIGN_OR_RETURN(File f, File::Open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    ASSIGN_OR_RETURN(uint64_t got, f.Size());
    if (got != size) {
      return absl::DataLossError(
          absl::StrFormat("seed file %s arrived cut short (%u of %u bytes)", file, got, size));
    }
    RETURN_IF_ERROR(f.Sync());
  }
  // Into place: databases first, then the logs.
  RETURN_IF_ERROR(CreateDirectories(engine_config_.log_dir()));
  for (const auto& [file, size] : files) {
    RETURN_IF_ERROR(
        RenameDurably(JoinPath(staging, file), JoinPath(config_.UnitDir(name()), file)));
  }
  fs::remove_all(staging, ec);
  log_->info("[unit {}] seeded from {}: {} file(s)", name(), active, files.size());
  return absl::OkStatus();
}

absl::Status UnitHost::Suspend() {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_.role() != dagvault::v1::PASSIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": the copy on ", config_.node(),
                     " is active; only passive copies are suspended"));
  }
  state_.set_suspended(true);
  RETURN_IF_ERROR(SaveStateLocked());
  // A pass already running finishes first (a seed gives up), so nothing
  // moves once the operator has been told the copy is suspended.
  interrupt_ = true;
  idle_.wait(lock, [&] { return !busy_; });
  interrupt_ = false;
  log_->info("[unit {}] replication suspended", name());
  return absl::OkStatus();
}

absl::Status UnitHost::Resume() {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.role() != dagvault::v1::PASSIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": the copy on ", config_.node(), " is active"));
  }
  RETURN_IF_ERROR(RefuseIfRestoringLocked("resume it"));
  if (!state_.failure().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": the copy failed (", state_.failure(), "); reseed it"));
  }
  state_.set_suspended(false);
  RETURN_IF_ERROR(SaveStateLocked());
  copy_state_ = replica_ ? dagvault::v1::HEALTHY : dagvault::v1::INITIALIZING;
  wake_.notify_all();
  log_->info("[unit {}] replication resumed", name());
  return absl::OkStatus();
}

absl::Status UnitHost::Reseed() {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_.role() != dagvault::v1::PASSIVE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", name(), ": the copy on ", config_.node(), " is active; reseed a passive copy"));
  }
  RETURN_IF_ERROR(RefuseIfFrozenLocked("reseed it"));
  RETURN_IF_ERROR(RefuseIfRestoringLocked("reseed it"));
  PauseLocked(lock);
  if (replica_) {
    (void)replica_->Close();
    replica_.reset();
  }
  // Everything of the copy but its state file goes.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(config_.UnitDir(name()), ec)) {
    if (entry.path().filename() == "copy.state") continue;
    fs::remove_all(entry.path(), ec);
  }
  state_.clear_failure();
  state_.set_suspended(false);
  absl::Status saved = SaveStateLocked();
  copy_state_ = dagvault::v1::INITIALIZING;
  message_ = "reseeding from the active copy";
  passive_view_ = {};
  UnpauseLocked();
  log_->info("[unit {}] copy discarded; reseeding", name());
  return saved;
}

absl::Status UnitHost::BeginPassiveRestore() {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_.role() != dagvault::v1::PASSIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": the copy on ", config_.node(),
                     " is active; a restore into a passive copy needs a passive one"));
  }
  if (!state_.suspended() && state_.failure().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": replication to the copy on ", config_.node(),
                     " is not suspended; suspend it before restoring into it"));
  }
  if (restoring_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", name(), ": another restore is under way into the copy on ", config_.node()));
  }
  RETURN_IF_ERROR(RefuseIfFrozenLocked("restore into it"));
  // From here nothing new pauses the copy (a frozen backup is refused),
  // and the holders already there (a digest reading the files) finish
  // before the files go.
  restoring_ = true;
  PauseLocked(lock);
  idle_.wait(lock, [&] { return pauses_ == 1 && !busy_; });
  // A holder that was there first may have changed the copy meanwhile (an
  // activation made it active, a backup froze it).
  absl::Status still;
  if (state_.role() != dagvault::v1::PASSIVE) {
    still = absl::FailedPreconditionError(absl::StrCat("unit ", name(), ": the copy on ",
                                                       config_.node(), " was activated meanwhile"));
  } else if (!state_.suspended() && state_.failure().empty()) {
    still = absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": replication to the copy on ", config_.node(),
                     " was resumed meanwhile; suspend it before restoring into it"));
  } else {
    still = RefuseIfFrozenLocked("restore into it");
  }
  if (!still.ok()) {
    restoring_ = false;
    UnpauseLocked();
    return still;
  }
  if (replica_) {
    (void)replica_->Close();
    replica_.reset();
  }
  // Persisted first: a copy found half restored after a crash is failed,
  // never replayed or activated. A failed copy is suspended (not failed)
  // while restored, so that the active copy's restore sees every passive
  // copy suspended; it stays suspended after it too, until resumed.
  state_.set_restoring(true);
  state_.set_suspended(true);
  state_.clear_failure();
  // What the old copy was told or owed belongs to its stream, not the
  // restored one: no truncation carried over, no divergence check.
  truncation_allowed_ = truncation_applied_ = 0;
  needs_divergence_check_ = false;
  absl::Status saved = SaveStateLocked();
  if (saved.ok()) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(config_.UnitDir(name()), ec)) {
      if (entry.path().filename() == "copy.state") continue;
      fs::remove_all(entry.path(), ec);
      if (ec) {
        saved = absl::InternalError(absl::StrCat("unit ", name(), ": removing ",
                                                 entry.path().string(), ": ", ec.message()));
        break;
      }
    }
  }
  if (!saved.ok()) {
    // The replica is closed and its files may be partly gone: failed.
    restoring_ = false;
    state_.set_restoring(false);
    SetFailure(absl::StrCat("a restore from the repository into this copy could not begin (",
                            saved.message(), "); restore again or reseed"),
               /*suspend=*/true);
    UnpauseLocked();
    return saved;
  }
  copy_state_ = dagvault::v1::INITIALIZING;  // shown as Suspended
  message_ = "being restored from the repository";
  passive_view_ = {};
  UnpauseLocked();  // suspended: the worker leaves it alone
  log_->info("[unit {}] copy discarded; restoring it from the repository", name());
  return absl::OkStatus();
}

absl::StatusOr<Generation> UnitHost::EndPassiveRestore(const std::string& restore_id) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!restoring_ || state_.role() != dagvault::v1::PASSIVE) {
    return absl::FailedPreconditionError(absl::StrCat("unit ", name(),
                                                      ": no restore into the passive copy on ",
                                                      config_.node(), " is under way"));
  }
  ReplicaOptions options;
  options.replay_lag = absl::Seconds(copy_.replay_lag_seconds());
  options.clock = clock_;
  // The replay may take minutes: Status and the other calls do not wait
  // for it (restoring_ keeps resume, reseed and activation away).
  lock.unlock();
  std::unique_ptr<Replica> replica;
  absl::StatusOr<Generation> replayed = [&]() -> absl::StatusOr<Generation> {
    ASSIGN_OR_RETURN(replica, Replica::Open(engine_config_, options));
    // The restore point is replayed whole, lag or not: it is what the
    // active copy replays too. A lag applies to what replication brings.
    RETURN_IF_ERROR(replica->Replay(/*ignore_lag=*/true).status());
    return replica->last_replayed();
  }();
  lock.lock();
  if (replayed.ok()) replica_ = std::move(replica);
  restoring_ = false;
  state_.set_restoring(false);
  if (!replayed.ok()) {
    if (replica) (void)replica->Close();
    SetFailure(absl::StrCat("the restore from the repository could not be replayed: ",
                            replayed.status().message(), "; restore again or reseed"),
               /*suspend=*/true);
    return replayed.status();
  }
  state_.clear_failure();
  state_.set_restored_by(restore_id);
  RETURN_IF_ERROR(SaveStateLocked());
  passive_view_ = {replica_->replay_position(), replica_->last_inspected(),
                   replica_->last_replayed()};
  copy_state_ = dagvault::v1::HEALTHY;  // shown as Suspended until resumed
  message_ = absl::StrFormat("restored from the repository through generation 0x%08X", *replayed);
  log_->info("[unit {}] {}", name(), message_);
  return replayed;
}

void UnitHost::AbandonPassiveRestore(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!restoring_) return;
  restoring_ = false;
  state_.set_restoring(false);
  SetFailure(absl::StrCat("a restore from the repository into this copy stopped part-way (", why,
                          "); restore again or reseed"),
             /*suspend=*/true);
}

absl::Status UnitHost::ServeLog(const dagvault::v1::FetchLogRequest& request,
                                const ChunkWriter& write) {
  const Generation g = request.generation();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_.role() == dagvault::v1::ACTIVE && !request.from_node().empty()) {
      progress_[request.from_node()] = {request.inspected_generation(),
                                        request.replayed_generation(), clock_->Now()};
    }
    if (!PathExists(ClosedLogPath(g))) {
      if (state_.role() != dagvault::v1::ACTIVE) {
        return absl::FailedPreconditionError(
            absl::StrCat("unit ", name(), " is not active on ", config_.node(),
                         "; the active copy is on ", state_.active_node()));
      }
      return absl::NotFoundError(absl::StrFormat(
          "unit %s: generation 0x%08X is not closed yet (or was truncated)", name(), g));
    }
  }
  return StreamFile(ClosedLogPath(g), LogFileName(engine_config_.log_prefix(), g),
                    CountingSent(&log_bytes_sent_, request.from_node(), write));
}

UnitHost::ChunkWriter UnitHost::CountingSent(std::map<std::string, uint64_t>* sent,
                                             const std::string& node, const ChunkWriter& write) {
  return [this, sent, node, &write](const dagvault::v1::FileChunk& chunk) {
    if (!write(chunk)) return false;
    std::lock_guard<std::mutex> lock(mu_);
    (*sent)[node.empty() ? std::string("(unnamed)") : node] += chunk.data().size();
    return true;
  };
}

absl::StatusOr<dagvault::v1::StreamSummaryResponse> UnitHost::Summary(Generation from,
                                                                      Generation through) {
  dagvault::v1::StreamSummaryResponse response;
  {
    std::lock_guard<std::mutex> lock(mu_);
    response.set_epoch(state_.epoch());
  }
  ASSIGN_OR_RETURN(LogStreamListing listing,
                   ListLogStream(engine_config_.log_dir(), engine_config_.log_prefix()));
  for (const auto& [gen, path] : listing.closed) {
    if (gen < from || (through != 0 && gen > through)) continue;
    ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
    auto* e = response.add_generations();
    e->set_generation(gen);
    e->set_sha256(DigestToHex(Sha256::Of(data)));
    auto header = DecodeLogHeader(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    if (header.ok() && header->has_prev_link) e->set_link_sha256(DigestToHex(header->prev_link));
  }
  response.set_newest_closed(listing.HighestClosed());
  return response;
}

absl::Status UnitHost::ServeSeed(const std::string& to_node, const ChunkWriter& plain_write) {
  ASSIGN_OR_RETURN(auto engine, MountedEngine());
  const ChunkWriter write = CountingSent(&seed_bytes_sent_, to_node, plain_write);
  // The logs needed start at the lowest checkpoint the headers hold before
  // the files are read; the headers read with the files can only be later.
  Generation low = kMaxGeneration;
  for (uint32_t i = 0; i < engine->database_count(); ++i) {
    low = std::min(low, engine->DatabaseHeader(i).checkpoint.generation);
  }
  for (uint32_t i = 0; i < engine->database_count(); ++i) {
    const std::string& path = engine->DatabasePath(i);
    RETURN_IF_ERROR(StreamFile(path, BaseName(path), write));
  }
  // Close the generation the reads overlapped, so the copy can replay
  // through it.
  RETURN_IF_ERROR(engine->RollLog());
  const Generation newest = engine->current_generation() - 1;
  for (Generation g = low; g <= newest; ++g) {
    if (!PathExists(ClosedLogPath(g))) {
      return absl::NotFoundError(
          absl::StrFormat("unit %s: generation 0x%08X, needed to seed, is gone", name(), g));
    }
    RETURN_IF_ERROR(StreamFile(
        ClosedLogPath(g), JoinPath("logs", LogFileName(engine_config_.log_prefix(), g)), write));
  }
  log_->info("[unit {}] seed sent: generations 0x{:08X}-0x{:08X}", name(), low, newest);
  return absl::OkStatus();
}

void UnitHost::AllowTruncation(Generation through) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.role() != dagvault::v1::PASSIVE || through <= truncation_allowed_) return;
  // The worker deletes at its next pass, never under a frozen backup and
  // never what this copy has not replayed: the active's request does not
  // wait for a replay pass (it holds the active's truncation lock).
  truncation_allowed_ = through;
  wake_.notify_all();
}

}  // namespace dagvault::mailstore
