// A unit's configuration, validated and with defaults and paths resolved.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/mailstore.pb.h"

namespace dagvault::mailstore {

struct ResolvedUnit {
  struct Database {
    std::string name;
    std::string path;
  };
  std::string name;
  dagvault::v1::UnitConfig::Mode mode;
  std::string log_prefix;
  std::string system_dir;
  std::string log_dir;
  std::vector<Database> databases;
  uint32_t page_size;
  uint32_t log_file_size;
  bool circular_logging;

  std::string CheckpointPath() const;
  std::string LockPath() const;
  // Index of the database with this name, or -1.
  int DatabaseIndex(const std::string& name) const;
};

// Validates a unit configuration. Each problem is named by its field, e.g.
// "unit sg1: field 'page_size': 6000 is not 4096, 8192, 16384 or 32768".
absl::StatusOr<ResolvedUnit> ResolveUnitConfig(const dagvault::v1::UnitConfig& config);

}  // namespace dagvault::mailstore
