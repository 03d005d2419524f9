// UnitHost: activation (switchover and lossy), handing over, and an old
// active copy stepping down when it finds a newer one.
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "mailstore/server/unit_host.h"

namespace dagvault::mailstore {

absl::Status UnitHost::ConfirmActive() {
  uint64_t epoch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_.role() != dagvault::v1::ACTIVE || engine_) return absl::OkStatus();
    epoch = state_.epoch();
  }
  // An active copy coming back (after a crash, say) first asks the others:
  // if any copy saw a later activation (a higher epoch), this copy is no
  // longer active.
  std::optional<dagvault::v1::CopyStatus> newest;
  int others = 0, answered = 0;
  for (const auto& c : definition_.copies()) {
    if (c.node() == config_.node()) continue;
    ++others;
    auto s = peers_->CopyStatus(c.node(), name());
    if (!s.ok()) continue;
    ++answered;
    if (s->epoch() > epoch && (!newest || s->epoch() > newest->epoch())) newest = *s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Mounted, dismounted by an operator, or being restored meanwhile: not
  // this pass's business any more.
  if (state_.role() != dagvault::v1::ACTIVE || engine_ || !awaiting_confirmation_ || restoring_) {
    return absl::OkStatus();
  }
  if (newest) {
    const std::string active =
        newest->role() == dagvault::v1::ACTIVE ? newest->node() : newest->active_node();
    log_->warn(
        "[unit {}] the copy on {} was activated since this copy was (epoch {}, this copy "
        "{}); stepping down to a passive copy",
        name(), active, newest->epoch(), epoch);
    state_.set_role(dagvault::v1::PASSIVE);
    state_.set_epoch(newest->epoch());
    state_.set_active_node(active);
    awaiting_confirmation_ = false;
    needs_divergence_check_ = true;
    // Exchange's Resynchronizing: the copy compares its logs with the
    // active's stream before it replicates again.
    copy_state_ = dagvault::v1::RESYNCHRONIZING;
    message_ = "stepped down; comparing this copy's logs with the active copy's stream";
    wake_.notify_all();
    return SaveStateLocked();
  }
  if (others > 0 && answered == 0) {
    // Like Exchange's Datacenter Activation Coordination: a copy that can
    // reach no other copy cannot know whether one was activated while it
    // was down, so it does not mount on its own.
    if (copy_state_ != dagvault::v1::DISMOUNTED) {
      log_->warn(
          "[unit {}] no other copy answers; not mounting until one confirms that no other "
          "copy was activated (mount forces it)",
          name());
    }
    copy_state_ = dagvault::v1::DISMOUNTED;
    message_ =
        "waiting for another copy to confirm that no other copy was activated meanwhile; "
        "`mailstore-util mount` forces the mount";
    return absl::OkStatus();
  }
  awaiting_confirmation_ = false;
  return OpenActiveLocked(/*allow_create=*/false);
}

absl::Status UnitHost::CheckJoinsActiveStream(Generation g, const std::string& sha256) {
  ASSIGN_OR_RETURN(std::string active, FindActiveNode());
  auto refuse = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "unit %s: the chain from the repository ends at generation 0x%08X, and the active copy "
        "on %s %s: no chain joins the active copy's current log stream, so replication could "
        "not continue from a restore into the copy on %s; take a Full backup of the active "
        "copy's stream first, or reseed from the active copy",
        name(), g, active, why, config_.node()));
  };
  if (active == config_.node()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": the copy on ", config_.node(), " is the active one"));
  }
  ASSIGN_OR_RETURN(auto* stub, peers_->Replication(active));
  // The generation after the chain's end must link to it (its header holds
  // the SHA-256 of generation g); when that one is not closed yet, the
  // active copy's generation g itself must be the backup's. (The active
  // copy may have truncated g after a backup through it, never g + 1.)
  dagvault::v1::StreamSummaryRequest request;
  request.set_unit(name());
  request.set_from(g);
  request.set_through(g + 1);
  dagvault::v1::StreamSummaryResponse theirs;
  auto context = Peers::Context(absl::Seconds(30));
  grpc::Status s = stub->StreamSummary(context.get(), request, &theirs);
  if (!s.ok()) return FromGrpcStatus(s, absl::StrCat(active, " StreamSummary"));
  std::map<Generation, const dagvault::v1::StreamSummaryResponse::Entry*> held;
  for (const auto& e : theirs.generations()) held[e.generation()] = &e;
  auto next = held.find(g + 1);
  if (next != held.end() && !next->second->link_sha256().empty()) {
    if (next->second->link_sha256() == sha256) return absl::OkStatus();
    return refuse(absl::StrFormat(
        "holds a generation 0x%08X that follows another 0x%08X (its link is SHA-256 %s, the "
        "backup's generation is %s): the streams diverged at generation 0x%08X",
        g + 1, g, next->second->link_sha256(), sha256, g + 1));
  }
  if (auto same = held.find(g); same != held.end()) {
    if (same->second->sha256() == sha256) return absl::OkStatus();
    return refuse(absl::StrFormat(
        "holds another generation 0x%08X (SHA-256 %s, the backup's %s): the streams diverged", g,
        same->second->sha256(), sha256));
  }
  if (next != held.end()) {
    // No link reported for G+1 (a mailstored older than this check) and G
    // gone: nothing to compare with.
    return refuse(absl::StrFormat(
        "reports no link hash for generation 0x%08X and no longer holds 0x%08X, so the join "
        "cannot be checked (is its mailstored older than this node's?)",
        g + 1, g));
  }
  if (theirs.newest_closed() < g) {
    return refuse(absl::StrFormat(
        "has closed generations only through 0x%08X: its stream is not the backup's (a lossy "
        "failover after the backup?)",
        theirs.newest_closed()));
  }
  return refuse(absl::StrFormat("no longer holds generation 0x%08X (truncated)", g + 1));
}

absl::Status UnitHost::CheckDivergence(const std::string& active_node) {
  ASSIGN_OR_RETURN(LogStreamListing local,
                   ListLogStream(engine_config_.log_dir(), engine_config_.log_prefix()));
  ASSIGN_OR_RETURN(auto* stub, peers_->Replication(active_node));
  dagvault::v1::StreamSummaryRequest request;
  request.set_unit(name());
  request.set_from(local.LowestClosed());
  dagvault::v1::StreamSummaryResponse theirs;
  auto context = Peers::Context(absl::Seconds(30));
  grpc::Status s = stub->StreamSummary(context.get(), request, &theirs);
  if (!s.ok()) return FromGrpcStatus(s, absl::StrCat(active_node, " StreamSummary"));
  std::map<Generation, std::string> hashes;
  for (const auto& e : theirs.generations()) hashes[e.generation()] = e.sha256();
  // Every generation this copy holds must be, byte for byte, in the active
  // copy's stream: a generation it lacks or holds differently was lost in
  // the failover, and this copy's databases may hold its changes.
  std::vector<std::pair<Generation, std::string>> mine = local.closed;
  if (local.current) {
    ASSIGN_OR_RETURN(LogFileScan scan, ScanLogFile(*local.current));
    mine.emplace_back(scan.header.generation, *local.current);
  }
  for (const auto& [gen, path] : mine) {
    ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
    auto it = hashes.find(gen);
    if (it == hashes.end() || it->second != DigestToHex(Sha256::Of(data))) {
      return absl::DataLossError(absl::StrFormat(
          "unit %s: this copy's log generation 0x%08X (%s) is not in the stream of the active "
          "copy on %s: the streams diverged at generation 0x%08X (a lossy failover lost it); this "
          "copy needs a reseed",
          name(), gen, BaseName(path), active_node, gen));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<dagvault::v1::HandOverResponse> UnitHost::HandOver(const std::string& target) {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_.role() != dagvault::v1::ACTIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), " is not active on ", config_.node()));
  }
  if (!engine_)
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), " is dismounted on ", config_.node()));
  if (auto backup = backups_.Current()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": a backup is in progress (session ", backup->session(),
                     "); switch over when it ends"));
  }
  // Dismount, sealing the last generation: the target replays it and
  // continues the stream.
  RETURN_IF_ERROR(engine_->Close(/*seal_log=*/true));
  engine_.reset();
  ASSIGN_OR_RETURN(LogStreamListing listing,
                   ListLogStream(engine_config_.log_dir(), engine_config_.log_prefix()));
  state_.set_role(dagvault::v1::PASSIVE);
  state_.set_epoch(state_.epoch() + 1);
  state_.set_active_node(target);
  RETURN_IF_ERROR(SaveStateLocked());
  RETURN_IF_ERROR(OpenPassiveLocked());
  dagvault::v1::HandOverResponse response;
  response.set_sealed_generation(listing.HighestClosed());
  response.set_epoch(state_.epoch());
  log_->info("[unit {}] handed over to {} after generation 0x{:08X} (epoch {})", name(), target,
             response.sealed_generation(), response.epoch());
  wake_.notify_all();
  return response;
}

absl::Status UnitHost::Activate(bool lossy) {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_.role() == dagvault::v1::ACTIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), " is already active on ", config_.node()));
  }
  if (!state_.failure().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", name(), ": this copy failed (", state_.failure(), "); it cannot be activated"));
  }
  RETURN_IF_ERROR(RefuseIfRestoringLocked("activate it"));
  if (!replica_) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", name(), ": this copy is not seeded; it cannot be activated"));
  }
  RETURN_IF_ERROR(RefuseIfFrozenLocked("activate it"));
  PauseLocked(lock);
  auto unpause = [&] { UnpauseLocked(); };
  uint64_t epoch = state_.epoch() + 1;
  if (!lossy) {
    // Switchover: the active copy dismounts and seals its log; this copy
    // takes every generation up to the sealed one, then takes over.
    const std::string old = state_.active_node();
    auto stub = peers_->Replication(old);
    if (!stub.ok()) {
      unpause();
      return stub.status();
    }
    dagvault::v1::HandOverRequest request;
    request.set_unit(name());
    request.set_target_node(config_.node());
    dagvault::v1::HandOverResponse handed;
    lock.unlock();
    auto context = Peers::Context(absl::Seconds(120));
    grpc::Status s = (*stub)->HandOver(context.get(), request, &handed);
    absl::Status fetched = FromGrpcStatus(s, absl::StrCat(old, " HandOver(", name(), ")"));
    for (Generation g = replica_->last_inspected() + 1;
         fetched.ok() && g <= handed.sealed_generation(); ++g) {
      bool found = false;
      fetched = FetchGeneration(old, g, &found);
      if (fetched.ok() && !found) {
        fetched =
            absl::NotFoundError(absl::StrFormat("generation 0x%08X is missing on %s", g, old));
      }
    }
    if (fetched.ok()) fetched = replica_->Replay(/*ignore_lag=*/true).status();
    lock.lock();
    if (fetched.ok() && replica_->last_replayed() < handed.sealed_generation()) {
      fetched = absl::InternalError(
          absl::StrFormat("replayed to 0x%08X, the handover sealed 0x%08X",
                          replica_->last_replayed(), handed.sealed_generation()));
    }
    if (!fetched.ok()) {
      unpause();
      return Annotate(fetched, absl::StrCat("unit ", name(), ": switchover to ", config_.node(),
                                            " failed (the old active copy on ", old,
                                            " is dismounted; retry, or activate with --lossy)"));
    }
    epoch = handed.epoch();
  } else {
    // Lossy: the active node is gone; take what this copy has.
    lock.unlock();
    absl::Status replayed = replica_->Replay(/*ignore_lag=*/true).status();
    for (const auto& c : definition_.copies()) {
      if (c.node() == config_.node()) continue;
      auto s = peers_->CopyStatus(c.node(), name());
      if (s.ok()) epoch = std::max<uint64_t>(epoch, s->epoch() + 1);
    }
    lock.lock();
    if (!replayed.ok()) {
      unpause();
      return replayed;
    }
  }
  const Generation last = replica_->last_replayed();
  absl::Status closed = replica_->CloseForActivation();
  if (!closed.ok()) {
    unpause();
    return Annotate(closed, absl::StrCat("unit ", name(), ": cannot activate"));
  }
  replica_.reset();
  state_.set_role(dagvault::v1::ACTIVE);
  state_.set_epoch(epoch);
  state_.set_active_node(config_.node());
  state_.set_suspended(false);
  absl::Status saved = SaveStateLocked();
  absl::Status opened = saved.ok() ? OpenActiveLocked(/*allow_create=*/false) : saved;
  unpause();
  if (!opened.ok()) return opened;
  log_->warn("[unit {}] activated on {} ({}, epoch {}), after generation 0x{:08X}", name(),
             config_.node(), lossy ? "lossy" : "switchover", epoch, last);
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
