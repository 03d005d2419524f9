// The item step of an item-level restore (issue 20), once the chain is
// restored and mounted as a Recovery Database on this node: the chosen
// items copied into production through mailstored (Writer.RestoreItems,
// a page at a time, each page one transaction on the active copy), or
// exported to files here:
//
//   DIR/<database>/<mailbox>/<item>.item   the item's bytes, exactly
//   DIR/index.json                         what was exported: each item's
//                                          key, size, SHA-256 and file,
//                                          and the restore point
//
// Each file is written whole (temporary file, fsync, rename), index.json
// last; a re-run writes the same files again.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/item_restore_name.h"
#include "dagvault/v1/agent.pb.h"
#include "dagvault/v1/store.grpc.pb.h"
#include "dagvault/v1/writer.grpc.pb.h"
#include "node-agent/jobs/restore_job.h"

namespace dagvault::agent {

struct ItemRestoreTarget {
  std::string unit;
  std::string recovery_database;  // mounted on this node
  uint32_t restore_point_generation = 0;
  std::string node;
  // Recovery Databases of earlier item restores of the unit still mounted
  // here (their agent died mid-job): removed first. The unit's lease keeps
  // any other item restore of it from running meanwhile.
  std::vector<std::string> leftovers;
};

// What the step did: the counts, and for an export the index's path.
struct ItemStepResult {
  dagvault::v1::ItemCounts counts;
  std::string export_index;
  std::string active_node;
  std::string detail;  // in words, for the job's record
};

absl::StatusOr<ItemStepResult> RunItemStep(
    dagvault::v1::Writer::StubInterface& writer, const ItemRestoreTarget& target,
    const dagvault::v1::ItemRestore& spec, const std::atomic<bool>& cancel,
    const std::function<void(const dagvault::v1::ItemCounts&)>& progress);

// The whole item-level restore on this node: `restore_chain` restores the
// chain as the Recovery Database target.recovery_database and mounts it
// (step 1), RunItemStep (step 2), then the Recovery Database is removed
// (step 3), also after a failure of step 1 or 2, so nothing is left
// behind. `result` says what each step did, after a failure too (the
// counts of the pages already written); a failure names its step ("step
// N: ..."). `restored` receives step 1's result. A Recovery Database that
// cannot be removed does not fail a restore whose items are in place: the
// result says so.
// When step 2 finds the mailbox or an item missing, `restore_probe`
// restores each of spec.probes in turn as its Recovery Database (mounted);
// the error then names the nearest restore point that holds them, or says
// none of those looked at does.
absl::Status RunItemRestore(
    dagvault::v1::Writer::StubInterface& writer, const ItemRestoreTarget& target,
    const dagvault::v1::ItemRestore& spec,
    const std::function<absl::StatusOr<RestoreJobResult>()>& restore_chain,
    const std::function<absl::StatusOr<RestoreJobResult>(const dagvault::v1::ItemProbe&)>&
        restore_probe,
    const std::atomic<bool>& cancel,
    const std::function<void(const dagvault::v1::ItemCounts&)>& progress,
    dagvault::v1::ItemRestoreResult* result, RestoreJobResult* restored);

// The Recovery Databases of earlier jobs of `unit` still mounted on this
// node (ItemRestoreTarget.leftovers), other than `own`: those whose names
// carry `marker` (common/item_restore_name.h).
std::vector<std::string> JobDatabaseLeftovers(dagvault::v1::Admin::StubInterface& admin,
                                              const std::string& unit, const std::string& own,
                                              absl::string_view marker);
// Removes each, saying in the log that an earlier `left_by` left it.
void RemoveLeftoverRecoveryDatabases(dagvault::v1::Writer::StubInterface& writer,
                                     const std::string& unit,
                                     const std::vector<std::string>& leftovers,
                                     const std::string& left_by);
// The writer's RemoveRecoveryDatabase: the folder it deleted.
absl::StatusOr<std::string> RemoveJobRecoveryDatabase(dagvault::v1::Writer::StubInterface& writer,
                                                      const std::string& name);

// "12 found, 10 copied, 2 skipped (they exist), 1.2 MiB": for messages.
std::string DescribeItemCounts(const dagvault::v1::ItemCounts& counts, bool exported);

}  // namespace dagvault::agent
