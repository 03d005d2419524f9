// The highest fencing token (DESIGN.md §8) this node has admitted per unit.
//
// The coordinator hands every backup and restore assignment the unit's
// backup-in-progress lease generation, which only grows. An agent still
// acting on an assignment the coordinator has since superseded (it was
// partitioned, paused, or the coordinator failed over) carries a lower
// token than the newer assignment's, and is refused here before any writer
// session starts. The table is kept on disk, so a restart of mailstored
// does not let an old token back in.
//
// Token 0 means "no coordinator": an operator's local `dagvault-agent
// backup|restore`, run while the coordinator is down. It is admitted and
// not recorded, and it is not fenced: the operator is the authority then,
// and the coordinator's tokens are compared with what they were before.
// The rule that one backup session holds a unit at a time is separate
// (BackupRegistry): an admitted token never supersedes a running session.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dagvault/v1/mailstored.pb.h"

namespace dagvault::mailstore {

// Where a node keeps the table: <data_root>/<this>. Not under a unit's
// folder, because a reseed empties that.
inline constexpr char kFencingTokensFile[] = "fencing-tokens.state";

class FencingTokens {
 public:
  // Loads the table from `path`; a missing file is an empty table. A file
  // that cannot be read or parsed (or is empty, which a write never leaves)
  // is a DataLoss error naming it: starting without it would let a
  // superseded assignment in. `node` names this node in messages.
  static absl::StatusOr<std::unique_ptr<FencingTokens>> Open(std::string path, std::string node);

  // Admits `token` for `unit` or refuses it (FailedPrecondition) when it
  // is lower than the highest admitted so far. A higher token is written
  // to disk before this returns. `what` names the call in messages
  // ("PrepareBackup", "surrogate AcquireBackup from node2", ...).
  // Thread-safe.
  absl::Status Admit(const std::string& unit, uint64_t token, absl::string_view what);

  // The highest token admitted for `unit` (0: none).
  uint64_t Highest(const std::string& unit);

  const std::string& path() const { return path_; }

 private:
  FencingTokens(std::string path, std::string node)
      : path_(std::move(path)), node_(std::move(node)) {}

  const std::string path_;
  const std::string node_;
  std::mutex mu_;  // guards table_ and the file
  dagvault::v1::FencingTokensFile table_;
};

}  // namespace dagvault::mailstore
