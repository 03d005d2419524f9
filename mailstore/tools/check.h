// `mailstore-util check`: verifies .edb files page by page, logs record by
// record, and checkpoint copies, naming every damaged page, record and
// copy. Like eseutil /k, it reads files as they are on disk and writes
// nothing.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dagvault::mailstore {

struct CheckOptions {
  // Also walk the B-tree and every long value of each .edb: structure,
  // reachability against the space map, item counts, value checksums.
  bool deep = false;
  // Errors listed per file before the rest are only counted.
  size_t max_errors_per_file = 20;
};

struct FileCheck {
  std::string path;
  std::string kind;  // "database", "log", "checkpoint"
  uint64_t bytes = 0;
  std::string summary;  // e.g. "262144 pages" or "generation 0x1A, 310 records, sealed"
  std::vector<std::string> errors;
  size_t errors_not_listed = 0;
  std::vector<std::string> warnings;
  bool clean() const { return errors.empty() && errors_not_listed == 0; }
};

struct CheckReport {
  std::vector<FileCheck> files;
  uint64_t bytes = 0;
  double seconds = 0;
  bool clean() const;
  double MegabytesPerSecond() const;
};

// Checks each path; a directory stands for every mailstore file in it.
// Fails only for usage problems (a path that does not exist); damage is
// reported in the result.
absl::StatusOr<CheckReport> CheckFiles(const std::vector<std::string>& paths,
                                       const CheckOptions& options);

// Damaged files and files with warnings are always listed; clean logs are
// summarised in one line unless `verbose`.
std::string FormatCheckReport(const CheckReport& report, bool verbose = false);

}  // namespace dagvault::mailstore
