#include "mailstore/engine/replica.h"

#include <sys/file.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fault_injection.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text_config.h"
#include "mailstore/engine/redo.h"
#include "mailstore/format/checkpoint.h"

namespace dagvault::mailstore {
namespace {

constexpr char kDivergedPayload[] = "dagvault.mailstore/diverged-at";

absl::Status DivergedError(Generation g, const std::string& message) {
  absl::Status s = absl::DataLossError(message);
  s.SetPayload(kDivergedPayload, absl::Cord(absl::StrCat(g)));
  return s;
}

}  // namespace

std::optional<Generation> DivergedAt(const absl::Status& status) {
  auto payload = status.GetPayload(kDivergedPayload);
  if (!payload) return std::nullopt;
  Generation g = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &g)) return std::nullopt;
  return g;
}

Replica::~Replica() = default;

std::string Replica::LogPath(Generation g) const {
  return JoinPath(unit_.log_dir, LogFileName(unit_.log_prefix, g));
}

absl::StatusOr<std::unique_ptr<Replica>> Replica::Open(const dagvault::v1::UnitConfig& config,
                                                       const ReplicaOptions& options) {
  ASSIGN_OR_RETURN(ResolvedUnit unit, ResolveUnitConfig(config));
  std::unique_ptr<Replica> replica(new Replica(std::move(unit), options));
  RETURN_IF_ERROR(replica->Load());
  return replica;
}

absl::Status Replica::Load() {
  ASSIGN_OR_RETURN(lock_file_, File::Open(unit_.LockPath(), O_RDWR | O_CREAT, 0600));
  if (::flock(lock_file_.fd(), LOCK_EX | LOCK_NB) != 0) {
    return absl::UnavailableError(absl::StrCat("unit ", unit_.name,
                                               " is in use by another process (lock held on ",
                                               unit_.LockPath(), ")"));
  }
  ASSIGN_OR_RETURN(LogStreamListing listing, ListLogStream(unit_.log_dir, unit_.log_prefix));
  if (listing.current) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", unit_.name, ": ", *listing.current,
        " is an open log: this copy was active and was not dismounted; it cannot replay another "
        "copy's logs without a reseed"));
  }
  for (size_t i = 0; i < unit_.databases.size(); ++i) {
    const std::string& path = unit_.databases[i].path;
    ASSIGN_OR_RETURN(DbHeaderRead read, ReadDbHeaderFromPath(path));
    ASSIGN_OR_RETURN(auto file, DatabaseFile::Open(path, /*writable=*/true,
                                                   read.header.state == DbState::kDirtyShutdown));
    const DbHeader h = file->header();
    if (h.db_index != i || h.db_name != unit_.databases[i].name) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s holds database \"%s\" (index %u), but is configured as databases[%u] \"%s\"", path,
          h.db_name, h.db_index, i, unit_.databases[i].name));
    }
    if (i == 0) {
      log_signature_ = h.log_signature;
    } else if (h.log_signature != log_signature_) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " belongs to another log stream than ", dbs_[0]->path()));
    }
    db_signatures_.push_back(h.db_signature);
    dbs_.push_back(std::move(file));
  }
  // Complete a flush that a crash interrupted.
  dwb_ = std::make_unique<DoubleWriteBuffer>(
      JoinPath(unit_.system_dir, absl::StrCat(unit_.log_prefix, ".dwb")));
  std::vector<DatabaseFile*> by_index;
  for (auto& db : dbs_) by_index.push_back(db.get());
  ASSIGN_OR_RETURN(int repaired, dwb_->Repair(by_index));
  if (repaired > 0) {
    logging::Get("mailstore.replica")
        ->warn("[unit {}] restored {} page(s) torn by an interrupted flush", unit_.name, repaired);
  }

  // The replay position: every change before it is in every database.
  position_ = Lsn{kMaxGeneration, 0};
  for (const auto& db : dbs_) {
    const DbHeader h = db->header();
    position_ = std::min(position_, h.checkpoint.IsZero() ? h.consistent_lsn : h.checkpoint);
  }

  const std::string state_path =
      JoinPath(unit_.system_dir, absl::StrCat(unit_.log_prefix, ".replica"));
  if (PathExists(state_path)) {
    RETURN_IF_ERROR(LoadTextConfig(state_path, &state_));
  } else {
    // A copy just seeded, or an old active copy: its logs say how far it is.
    if (auto gap = listing.FirstGap()) {
      return absl::NotFoundError(absl::StrFormat("unit %s: generation 0x%08X is missing from %s",
                                                 unit_.name, *gap, unit_.log_dir));
    }
    const Generation highest = listing.HighestClosed();
    if (highest > 0) {
      ASSIGN_OR_RETURN(std::string data, ReadFileToString(listing.closed.back().second));
      state_.set_last_inspected_generation(highest);
      state_.set_last_inspected_sha256(DigestToHex(Sha256::Of(data)));
    } else {
      state_.set_last_inspected_generation(position_.generation > 0 ? position_.generation - 1 : 0);
    }
  }
  // Generations wholly before the position are replayed, whatever the
  // state file (written after the headers) says.
  const Generation before_position = position_.generation > 0 ? position_.generation - 1 : 0;
  if (state_.last_replayed_generation() < before_position) {
    state_.set_last_replayed_generation(before_position);
  }
  if (state_.last_replayed_generation() > state_.last_inspected_generation()) {
    state_.set_last_replayed_generation(state_.last_inspected_generation());
  }

  // A transaction begun at the position and not yet committed: gather its
  // records from the generations already replayed.
  for (Generation g = position_.generation; g <= state_.last_replayed_generation(); ++g) {
    ASSIGN_OR_RETURN(LogFileScan scan, ScanLogFile(LogPath(g)));
    for (const auto& r : scan.records) {
      if (r.lsn < position_) continue;
      if (IsPageRecord(r.type)) {
        pending_.push_back({r.type, r.db_index, r.lsn,
                            std::string(reinterpret_cast<const char*>(r.body), r.body_size)});
      } else if (r.type == RecordType::kCommit) {
        return absl::DataLossError(absl::StrFormat(
            "unit %s: a commit at %s lies after the replay position %s in a generation marked "
            "replayed",
            unit_.name, r.lsn.ToString(), position_.ToString()));
      }
    }
  }
  RETURN_IF_ERROR(WriteCheckpoint(position_));
  return SaveState();
}

absl::Status Replica::WriteCheckpoint(Lsn position) {
  // The checkpoint file follows the databases' headers (written after
  // them, never ahead), as on an active copy, so a backup of this copy
  // holds one too.
  Checkpoint checkpoint;
  checkpoint.log_signature = log_signature_;
  checkpoint.position = position;
  checkpoint.time_us = options_.clock->NowMicros();
  for (size_t i = 0; i < db_signatures_.size(); ++i) {
    checkpoint.databases.push_back({static_cast<uint32_t>(i), db_signatures_[i]});
  }
  const std::string path = JoinPath(unit_.system_dir, CheckpointFileName(unit_.log_prefix));
  if (auto old = ReadCheckpointFile(path); old.ok()) {
    checkpoint.update_count = old->checkpoint.update_count;
  }
  return WriteCheckpointFile(path, checkpoint);
}

absl::Status Replica::SaveState() {
  return WriteFileAtomically(JoinPath(unit_.system_dir, absl::StrCat(unit_.log_prefix, ".replica")),
                             ToTextConfig(state_));
}

absl::Status Replica::Accept(const std::string& incoming_path) {
  if (closed_) return absl::FailedPreconditionError("replica is closed");
  ASSIGN_OR_RETURN(LogFileScan scan, ScanLogFile(incoming_path));
  const Generation g = scan.header.generation;
  const Generation expected = last_inspected() + 1;
  const std::string name = LogFileName(unit_.log_prefix, g);
  if (g < expected) {
    // Already here: the same file again is harmless, a different one is not.
    if (PathExists(LogPath(g))) {
      ASSIGN_OR_RETURN(std::string ours, ReadFileToString(LogPath(g)));
      if (Sha256::Of(ours) == scan.file_hash) {
        return RemoveDurably(incoming_path);
      }
    }
    return DivergedError(g, absl::StrFormat("unit %s: the shipped %s differs from this copy's "
                                            "generation 0x%08X: the streams diverged",
                                            unit_.name, name, g));
  }
  if (g > expected) {
    return absl::NotFoundError(absl::StrFormat(
        "unit %s: received %s but generation 0x%08X comes first", unit_.name, name, expected));
  }
  if (scan.header.log_signature != log_signature_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", unit_.name, ": ", name, " belongs to log stream ",
        scan.header.log_signature.ToString(), ", this copy to ", log_signature_.ToString(),
        " (the log signatures differ): a log from another stream is refused"));
  }
  for (size_t i = 0; i < dbs_.size(); ++i) {
    const AttachedDatabase* attached = scan.header.FindDatabase(static_cast<uint32_t>(i));
    if (attached == nullptr || attached->signature != db_signatures_[i]) {
      return absl::FailedPreconditionError(
          absl::StrCat("unit ", unit_.name, ": ", name, " does not write to database ",
                       dbs_[i]->path(), " (another database signature)"));
    }
  }
  if (!state_.last_inspected_sha256().empty()) {
    const std::string link =
        scan.header.has_prev_link ? DigestToHex(scan.header.prev_link) : std::string("none");
    if (link != state_.last_inspected_sha256()) {
      return DivergedError(
          g, absl::StrFormat("unit %s: %s does not continue this copy's stream (its link hash does "
                             "not match generation 0x%08X): the streams diverged at generation "
                             "0x%08X",
                             unit_.name, name, g - 1, g));
    }
  }
  RETURN_IF_ERROR(CheckClosedLog(scan));
  RETURN_IF_ERROR(RenameDurably(incoming_path, LogPath(g)));
  state_.set_last_inspected_generation(g);
  state_.set_last_inspected_sha256(DigestToHex(scan.file_hash));
  (*state_.mutable_accepted_us())[g] = options_.clock->NowMicros();
  return SaveState();
}

std::optional<absl::Time> Replica::AcceptedAt(Generation generation) const {
  auto it = state_.accepted_us().find(generation);
  if (it == state_.accepted_us().end()) return std::nullopt;
  return absl::FromUnixMicros(it->second);
}

absl::StatusOr<int> Replica::Replay(bool ignore_lag, int max_batches) {
  if (closed_) return absl::FailedPreconditionError("replica is closed");
  // The generations due now (a lagged copy holds the newer ones back).
  Generation last = last_replayed();
  while (last < last_inspected()) {
    if (!ignore_lag && options_.replay_lag > absl::ZeroDuration()) {
      // A generation with no acceptance time (seeded) is due at once.
      const std::optional<absl::Time> accepted = AcceptedAt(last + 1);
      if (accepted && options_.clock->Now() - *accepted < options_.replay_lag) break;
    }
    ++last;
  }
  int replayed = 0;
  int batches = 0;
  for (Generation from = last_replayed() + 1;
       from <= last && (max_batches == 0 || batches < max_batches); ++batches) {
    // A batch at a time: one flush of the pages and one header update per
    // batch rather than per generation.
    const Generation to = std::min<Generation>(last, from + kReplayBatch - 1);
    RETURN_IF_ERROR(ReplayGenerations(from, to));
    replayed += static_cast<int>(to - from + 1);
    from = to + 1;
  }
  return replayed;
}

absl::Status Replica::ReplayGenerations(Generation from, Generation to) {
  // A failure part-way leaves the in-memory state as it was at the batch's
  // start, so a retry replays the whole batch again (the files may hold
  // part of it: replaying again is idempotent by page dbtime).
  bool done = false;
  auto restore = absl::MakeCleanup([this, &done, pending_at_start = pending_]() mutable {
    if (!done) pending_ = std::move(pending_at_start);
  });
  std::vector<RedoApplier::Database> starts;
  for (auto& db : dbs_) starts.push_back({db.get(), position_});
  RedoApplier applier(starts, position_.generation, RedoApplier::Mode::kApply, dwb_.get(),
                      options_.max_cached_pages);
  Lsn position = position_;
  for (Generation g = from; g <= to; ++g) {
    ASSIGN_OR_RETURN(LogFileScan scan, ScanLogFile(LogPath(g)));
    RETURN_IF_ERROR(CheckClosedLog(scan));
    RETURN_IF_ERROR(ApplyGeneration(g, scan, applier, &position));
  }
  RETURN_IF_ERROR(applier.Flush(to));
  // Pages written, headers not yet: a restart must replay the batch again.
  DAGVAULT_CRASH_POINT("replica.replay.before_header");
  // The databases now hold everything before `position`.
  for (size_t i = 0; i < dbs_.size(); ++i) {
    RETURN_IF_ERROR(dbs_[i]->UpdateHeader([&](DbHeader& h) {
      h.state = DbState::kDirtyShutdown;
      h.checkpoint = position;
      h.log_required_min = std::max(h.log_required_min, position.generation);
      h.log_required_max = std::max(h.log_required_max, to);
      h.log_committed = std::max(h.log_committed, to);
      h.dbtime = std::max(h.dbtime, applier.max_dbtime(static_cast<uint32_t>(i)));
    }));
  }
  position_ = position;
  state_.set_last_replayed_generation(to);
  for (Generation g = from; g <= to; ++g) state_.mutable_accepted_us()->erase(g);
  done = true;
  // The checkpoint file is advisory (recovery starts from the headers and
  // checks only its signature): a failure to write it is reported, not
  // fatal.
  if (absl::Status written = WriteCheckpoint(position_); !written.ok()) {
    logging::Get("mailstore.replica")->warn("[unit {}] {}", unit_.name, written);
  }
  return SaveState();
}

absl::Status Replica::ApplyGeneration(Generation g, const LogFileScan& scan, RedoApplier& applier,
                                      Lsn* position_out) {
  Lsn& position = *position_out;
  for (const auto& r : scan.records) {
    if (r.lsn < position_) continue;
    const Lsn after{g, r.lsn.offset + r.space};
    switch (r.type) {
      case RecordType::kPageImage:
      case RecordType::kPageDelta:
      case RecordType::kPageImageSparse:
        if (pending_.empty()) position = r.lsn;
        pending_.push_back({r.type, r.db_index, r.lsn,
                            std::string(reinterpret_cast<const char*>(r.body), r.body_size)});
        break;
      case RecordType::kCommit: {
        ASSIGN_OR_RETURN(CommitBody commit, DecodeCommit(r));
        if (pending_.size() != commit.record_count) {
          return absl::DataLossError(
              absl::StrFormat("unit %s: commit at %s closes %u records, but %u precede it",
                              unit_.name, r.lsn.ToString(), commit.record_count, pending_.size()));
        }
        for (const Pending& p : pending_) {
          RETURN_IF_ERROR(applier.Apply(p.type, p.db_index, p.lsn,
                                        reinterpret_cast<const uint8_t*>(p.body.data()),
                                        static_cast<uint32_t>(p.body.size())));
        }
        pending_.clear();
        position = after;
        if (applier.ShouldFlush()) RETURN_IF_ERROR(applier.Flush(g));
        break;
      }
      case RecordType::kSeal:
        if (pending_.empty()) position = Lsn{g + 1, kLogHeaderSize};
        break;
      case RecordType::kTerm:
      case RecordType::kStart:
        pending_.clear();  // an unfinished transaction before it never committed
        position = after;
        break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Generation>> Replica::Truncate(Generation through) {
  if (closed_) return absl::FailedPreconditionError("replica is closed");
  // The generation before the replay position stays too: activation reads
  // it to find where the databases are consistent, and a backup of this
  // copy lists it when nothing newer has arrived.
  const Generation limit =
      std::min({through, last_replayed(), position_.generation > 1 ? position_.generation - 2 : 0});
  ASSIGN_OR_RETURN(LogStreamListing listing, ListLogStream(unit_.log_dir, unit_.log_prefix));
  std::vector<Generation> deleted;
  for (const auto& [gen, path] : listing.closed) {
    if (gen > limit) break;
    RETURN_IF_ERROR(RemoveDurably(path));
    deleted.push_back(gen);
  }
  return deleted;
}

absl::Status Replica::CloseForActivation() {
  if (closed_) return absl::FailedPreconditionError("replica is closed");
  const Generation last = last_replayed();
  if (last_inspected() > last) {
    return absl::FailedPreconditionError(
        absl::StrFormat("unit %s: generations 0x%08X-0x%08X are accepted but not replayed",
                        unit_.name, last + 1, last_inspected()));
  }
  // The databases hold everything before position_. When that is the start
  // of the next generation (the usual case), the consistent point is the
  // end of the last replayed one, so the engine continues the stream from
  // it, linked to it.
  Lsn consistent = position_;
  if (position_.generation > last && last > 0) {
    ASSIGN_OR_RETURN(LogFileScan scan, ScanLogFile(LogPath(last)));
    consistent = Lsn{last, kLogHeaderSize};
    for (const auto& r : scan.records)
      consistent = std::max(consistent, Lsn{last, r.lsn.offset + r.space});
  }
  if (!pending_.empty()) {
    logging::Get("mailstore.replica")
        ->warn(
            "[unit {}] a transaction begun at {} never committed in the replayed logs; it is "
            "dropped",
            unit_.name, pending_.front().lsn.ToString());
    pending_.clear();
  }
  const int64_t now = options_.clock->NowMicros();
  for (auto& db : dbs_) {
    RETURN_IF_ERROR(db->Sync());
    RETURN_IF_ERROR(db->UpdateHeader([&](DbHeader& h) {
      MarkConsistent(h, consistent, now);
      h.log_committed = std::max(h.log_committed, last);
    }));
  }
  RETURN_IF_ERROR(WriteCheckpoint(consistent));
  RETURN_IF_ERROR(
      RemoveDurably(JoinPath(unit_.system_dir, absl::StrCat(unit_.log_prefix, ".replica"))));
  logging::Get("mailstore.replica")
      ->info("[unit {}] consistent at {} for activation", unit_.name, consistent.ToString());
  return Close();
}

absl::Status Replica::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  dbs_.clear();
  return lock_file_.Close();
}

}  // namespace dagvault::mailstore
