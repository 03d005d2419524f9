// What the catalog says of each unit that its protection is judged by: what
// its chains say (rpo.h ChainFacts: the newest restore point and Full, not
// every point), its newest backup job, and where its recent attempts ran
// (for source selection). `status`, a metrics scrape and the
// RPO round judge every unit; at 100,000 units, reading three catalog
// queries per unit per call does not scale (issue 18 §5). The cache keeps
// each unit's answer and reads the catalog again only for the units whose
// change counter (InstrumentedCatalog::UnitVersion) has moved since.
//
// Only the catalog's one writer may keep answers: a standby's catalog is
// written by the leader, whose writes this process does not see, so it
// reads afresh every time (`keep` false).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coordinator/catalog/catalog.h"
#include "coordinator/catalog/instrumented_catalog.h"
#include "coordinator/rpo/rpo.h"
#include "coordinator/selection/source_selection.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

struct UnitHistory {
  ChainFacts chains;  // what its protection is judged by
  // Null when it has none. Held apart, as a JobRecord takes ~350 bytes
  // even empty: a unit with no backup job yet (a new deployment's units,
  // the benchmark's 100,000) pays 8.
  std::unique_ptr<const JobRecord> last_backup_job;
  SourceHistory sources;
};

// The source-selection history of a unit from its newest jobs, newest
// first: the node of the last successful backup, and each node whose
// newest attempt failed.
SourceHistory SourceHistoryOf(const std::vector<JobRecord>& newest_first);

// How many of a unit's newest jobs SourceHistoryOf is given.
inline constexpr size_t kSourceHistoryJobs = 20;

class UnitHistoryCache {
 public:
  explicit UnitHistoryCache(InstrumentedCatalog* catalog) : catalog_(catalog) {}

  // The unit's history as the catalog has it now. `keep`: this process is
  // the catalog's one writer, so the answer is kept until the unit's
  // version moves.
  absl::StatusOr<std::shared_ptr<const UnitHistory>> Of(const std::string& unit, bool keep);

  // How many catalog reads (one unit's three queries each) the cache has
  // made, for tests and the benchmark.
  uint64_t reads() const;

 private:
  struct Entry {
    uint64_t version = 0;
    std::shared_ptr<const UnitHistory> history;
  };

  InstrumentedCatalog* const catalog_;
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_;  // guarded by mu_: hashed, as every
                                                     // `status` looks up every unit
  uint64_t reads_ = 0;                               // guarded by mu_
};

}  // namespace dagvault::coordinator
