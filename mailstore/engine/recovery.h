// Recovery: replaying the log into the databases.
//
// Soft recovery (after a crash) starts at the checkpoint in <prefix>.chk.
// Hard recovery (restored files, possibly from other servers) has no usable
// checkpoint and starts at the lowest generation the database headers
// require. Both replay committed transactions to the end of the logs, or to
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
  // Where <prefix>.chk lives. Empty, or no checkpoint there: hard recovery.
  std::string system_dir;
  std::string log_dir;
  std::string prefix;
  std::vector<std::string> db_paths;
  std::optional<Generation> to_generation;
  // Ignore the checkpoint even if present (recover --hard).
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
  uint64_t records_not_attached = 0;  // for databases not being recovered
  uint64_t records_discarded = 0;     // of transactions that never committed
  uint64_t log_bytes = 0;
  double seconds = 0;
  std::vector<std::string> notes;
};

absl::StatusOr<RecoveryReport> Recover(const RecoveryRequest& request);

}  // namespace dagvault::mailstore
