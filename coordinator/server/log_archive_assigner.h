// Continuous log archiving at the coordinator (issue 19 §1): which node
// archives each unit's closed logs, and the segments agents report.
//
// For every unit whose policy sets archive_logs, one copy archives, chosen
// like a backup source (the policy's source mode, preferred servers and
// queue thresholds), keeping the current one while it still qualifies so
// that the archiver moves only when its copy stops qualifying. Each node
// is sent the whole set of its units when the set changes or its agent
// reconnects; the node of each unit's active copy is also sent the
// policy's archive_roll_seconds, to close the open generation that often.
// Two archivers for a moment (a move) write overlapping
// segments, which chains take in their stride (repository/chain.h).
//
// Segments come in node reports until acknowledged: each is catalogued
// (idempotently, by manifest id) once it is checked to be a log archive
// of a unit the reporting node holds a copy of.
//
// An archiver whose copy's log stream no longer follows the archive (a
// lossy activation diverged it) reports where: the break is recorded once
// like a backup's (ChainBreakRecord after that piece, event DV1004), so
// the chain's restore points end there, the next Incremental becomes a
// Full, and the archiver goes on after that Full.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "coordinator/catalog/catalog.h"
#include "coordinator/server/topology.h"
#include "dagvault/v1/agent.pb.h"

namespace dagvault::coordinator {

class LogArchiveAssigner {
 public:
  LogArchiveAssigner(Catalog* catalog, Topology* topology, PolicyReader policies);

  // Chooses the archivers and sends the changed sets (the leader's tick).
  void Tick();
  // Catalogues the report's archived segments and acknowledges them.
  void OnReport(const dagvault::v1::NodeReport& report);
  // The node archiving `unit` now, or "" (for status).
  std::string ArchiverOf(const std::string& unit);

 private:
  void CatalogueSegments(const dagvault::v1::NodeReport& report);
  void RecordBreak(const std::string& node, const dagvault::v1::ArchiveProgress& progress);

  Catalog* const catalog_;
  Topology* const topology_;
  const PolicyReader policies_;
  std::mutex mu_;
  std::map<std::string, std::string> archiver_;  // unit → node
  struct Sent {
    std::weak_ptr<AgentChannel> channel;
    std::set<std::string> units;
    std::map<std::string, uint32_t> rolls;  // unit → seconds
  };
  std::map<std::string, Sent> sent_;                               // node → what it was last sent
  std::set<std::pair<std::string, std::string>> recorded_breaks_;  // unit, after manifest
};

}  // namespace dagvault::coordinator
