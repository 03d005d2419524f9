// The results an agent keeps on disk until the coordinator acknowledges
// them (issue 15; AgentConfig.state_dir, file undelivered-<node>.pb), as a
// restarted agent reads them back.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/agent.pb.h"

namespace dagvault::agent {

struct KeptResults {
  // Final updates not acknowledged yet: reported again.
  std::vector<dagvault::v1::JobUpdate> updates;
  // Backups that were committing when the agent stopped and whose manifest
  // is in the repository: reported as verified backups whose completion was
  // never delivered, so that they are catalogued.
  std::vector<dagvault::v1::JobUpdate> committed;
  // Ones it could not tell (the repository did not open): kept as pending,
  // to be looked at again at the next start.
  std::vector<dagvault::v1::JobUpdate> unsure;
};

// Reads `path` (creating its folder, 0700); nothing there is no results. A
// file that does not parse is a DataLoss error that says what to do.
absl::StatusOr<KeptResults> LoadKeptResults(const std::string& path, const std::string& repository,
                                            const std::string& passphrase_file,
                                            const std::string& key_file);

}  // namespace dagvault::agent
