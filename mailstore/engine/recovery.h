// Recovery: replaying the log into the databases.
//
// Soft recovery (after a crash) starts each database at the checkpoint its
// header records (the same position <prefix>.chk holds, written first).
// Hard recovery (--hard) starts at the beginning of the lowest generation
// the header requires. Both replay committed transactions to the end of the logs, or to
// the end of generation G, and leave the databases CleanShutdown.
//
// Replay is idempotent: a page record is applied only if the page's dbtime
// shows it has not seen the change (see docs/formats.md). Before anything is
// written, the whole stream is checked: log and database signatures, no
// missing generation, and link hashes that join.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "mailstore/format/types.h"

namespace dagvault::mailstore {

struct RecoveryRequest {
  // Where <prefix>.chk and the unit's lock file live (may be empty).
  std::string system_dir;
  std::string log_dir;
  std::string prefix;
  std::vector<std::string> db_paths;
  std::optional<Generation> to_generation;
  // Start at the headers' lowest required generation rather than their
  // checkpoints (recover --hard).
  bool force_hard = false;
  // Take the unit's lock (<system_dir>/<prefix>.lck) for the duration, so
  // that a running unit is not recovered under its feet. The engine, which
  // holds the lock already, turns this off.
  bool lock_unit = true;
  Clock* clock = RealClock();
};

struct RecoveryReport {
  bool soft = false;
  bool nothing_to_do = false;
  Lsn start;
  Lsn end;
  Generation first_generation = 0;
  Generation last_generation = 0;
  uint64_t transactions = 0;
  uint64_t records_applied = 0;
  uint64_t records_skipped = 0;       // already in the page (by dbtime)
  uint64_t records_superseded = 0;    // changes to a torn page, rebuilt by a later image
  uint64_t records_not_attached = 0;  // for databases not being recovered
  uint64_t records_discarded = 0;     // of transactions that never committed
  uint64_t log_bytes = 0;
  double seconds = 0;
  std::vector<std::string> notes;
};

absl::StatusOr<RecoveryReport> Recover(const RecoveryRequest& request);

}  // namespace dagvault::mailstore
