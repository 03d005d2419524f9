// A passive copy of a unit, kept current by replaying the closed logs that
// the active copy ships to it (DAG, CCR and LCR style).
//
//   Accept(file)  inspects a shipped log: it must be the next generation,
//                 carry the unit's signature, list the same databases, be
//                 sealed and whole, and its link hash must join the last
//                 generation accepted. A link that does not join means the
//                 two copies' streams diverged (a lossy failover): the
//                 error carries the generation (DivergedAt()).
//   Replay()      applies accepted generations to the databases, holding
//                 back those younger than the replay lag (a lagged copy).
//
// Page writes go through a double-write buffer, and the replay position is
// each database header's checkpoint, so a copy killed mid-replay resumes
// correctly. One process owns the copy's files at a time (<prefix>.lck).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "dagvault/v1/mailstore.pb.h"
#include "mailstore/engine/database_file.h"
#include "mailstore/engine/double_write.h"
#include "mailstore/engine/redo.h"
#include "mailstore/engine/unit_config.h"
#include "mailstore/format/log_format.h"

namespace dagvault::mailstore {

struct ReplicaOptions {
  // A lagged copy replays a generation only this long after accepting it.
  absl::Duration replay_lag = absl::ZeroDuration();
  Clock* clock = RealClock();
  size_t max_cached_pages = 16384;
};

// The generation at which a status says two streams diverged, if it does.
std::optional<Generation> DivergedAt(const absl::Status& status);

class Replica {
 public:
  // Opens a passive copy whose databases (and any logs) are in place, e.g.
  // after seeding, or an old active copy after a switchover.
  static absl::StatusOr<std::unique_ptr<Replica>> Open(const dagvault::v1::UnitConfig& config,
                                                       const ReplicaOptions& options = {});
  ~Replica();

  // Inspects a closed log written to `incoming_path` (in the log folder,
  // under a temporary name) and moves it into place. Nothing is changed if
  // it is refused.
  absl::Status Accept(const std::string& incoming_path);

  // Replays the accepted generations that are due (all of them with
  // ignore_lag). Returns how many generations it replayed.
  // max_batches > 0 stops after that many batches of kReplayBatch
  // generations (so a caller can yield between them).
  absl::StatusOr<int> Replay(bool ignore_lag = false, int max_batches = 0);
  // Generations replayed with one flush and one header update.
  static constexpr Generation kReplayBatch = 16;

  // Deletes closed logs up to `through` that this copy has replayed.
  absl::StatusOr<std::vector<Generation>> Truncate(Generation through);

  Generation last_inspected() const { return state_.last_inspected_generation(); }
  Generation last_replayed() const { return state_.last_replayed_generation(); }
  // The first log position not yet in the databases.
  Lsn replay_position() const { return position_; }
  const Signature& log_signature() const { return log_signature_; }
  const ResolvedUnit& unit() const { return unit_; }
  // When a generation not yet replayed was accepted.
  std::optional<absl::Time> AcceptedAt(Generation generation) const;

  // Releases the files, e.g. before a reseed.
  absl::Status Close();

  // Ends this copy's life as a replica so that an Engine can open it as the
  // active copy, continuing the stream after the last replayed generation:
  // the databases are marked consistent (CleanShutdown) at the end of what
  // was replayed, and the replica state is removed. A transaction whose
  // commit never arrived is dropped: it never committed. Accepted
  // generations not yet replayed are refused: replay them first (with
  // ignore_lag) or remove them.
  absl::Status CloseForActivation();

 private:
  struct Pending {
    RecordType type;
    uint8_t db_index;
    Lsn lsn;
    std::string body;
  };

  Replica(ResolvedUnit unit, const ReplicaOptions& options)
      : unit_(std::move(unit)), options_(options) {}
  absl::Status Load();
  // Replays generations from..to with one applier: pages are flushed when
  // its cache fills and at the end, and the headers are written once. A
  // crash before the headers replays the whole batch again (idempotent:
  // each page's dbtime says what it holds).
  absl::Status ReplayGenerations(Generation from, Generation to);
  // The records of generation g, from the batch's start; `position`
  // advances past each committed transaction.
  absl::Status ApplyGeneration(Generation g, const LogFileScan& scan, RedoApplier& applier,
                               Lsn* position);
  absl::Status SaveState();
  // <prefix>.chk at `position` (where the databases' headers are).
  absl::Status WriteCheckpoint(Lsn position);
  std::string LogPath(Generation g) const;

  const ResolvedUnit unit_;
  const ReplicaOptions options_;
  File lock_file_;
  std::vector<std::unique_ptr<DatabaseFile>> dbs_;
  std::vector<Signature> db_signatures_;
  Signature log_signature_;
  std::unique_ptr<DoubleWriteBuffer> dwb_;
  dagvault::v1::ReplicaState state_;
  Lsn position_;
  // Records of a transaction whose commit is in a later generation.
  std::vector<Pending> pending_;
  bool closed_ = false;
};

}  // namespace dagvault::mailstore
