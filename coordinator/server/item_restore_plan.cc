// Item-level restores at the coordinator (issue 20 §1): `dagvault restore
// items`. One job on one node, as Exchange does it: the chain restored as a
// Recovery Database there, the chosen items copied into production (the
// unit's mounted active copy, through mailstored's store) or exported to
// files on that node, then the Recovery Database removed. The agent runs
// the three steps (node-agent/jobs/item_restore.h); the job records them
// in its plan (RestorePlan.items, .item_result, .steps) with what each did.
//
// The job holds the unit's lease like any restore, so no backup of the
// unit starts while it runs. A re-run after a failure restores the
// Recovery Database again; copying is idempotent (an item already holding
// the same bytes is left alone), so nothing is copied twice.
#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/evp.h"
#include "common/item_restore_name.h"
#include "common/status_macros.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/server/job_manager.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

namespace {

const char* const kItemStepNames[3] = {
    "restore the chain as a Recovery Database",
    "copy the items into production",
    "remove the Recovery Database",
};

}  // namespace

absl::StatusOr<v1::RestorePlan> JobManager::PrepareItemRestore(v1::StartRestoreRequest* request) {
  const v1::ItemRestore& items = request->items();
  if (items.into_production() == !items.export_dir().empty()) {
    return absl::InvalidArgumentError(
        "restore items: give either --into-production or --export DIR");
  }
  if (!items.into_production() && (items.other_mailbox() || items.conflict() != 0)) {
    return absl::InvalidArgumentError(
        "restore items: --target-mailbox and --conflict belong to --into-production");
  }
  if (!items.export_dir().empty() && items.export_dir()[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "restore items: the export folder must be an absolute path on the restoring node, not \"",
        items.export_dir(), "\""));
  }
  if (!request->recovery_database().empty() || !request->path().empty() ||
      request->roll_forward() || (!request->mode().empty() && request->mode() != "items")) {
    return absl::InvalidArgumentError(
        "restore items: the Recovery Database is the job's own; --rdb, --path, --roll-forward and "
        "--mode do not apply");
  }
  if (!topology_->UnitKnown(request->unit())) {
    return absl::NotFoundError(
        absl::StrCat("unit ", request->unit(), ": no agent has reported a copy of it"));
  }
  const std::vector<CopyView> copies = topology_->CopiesOf(request->unit());
  std::string active;
  for (const CopyView& c : copies) {
    if (c.node_reporting && c.status.role() == v1::ACTIVE && c.status.state() == v1::MOUNTED) {
      active = c.status.node();
    }
  }
  if (items.into_production() && active.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", request->unit(),
        " has no mounted active copy: items are restored into a mounted active copy only; "
        "mount or activate one first, or --export them"));
  }
  if (request->node().empty()) {
    // A node with a copy of the unit (mailstored writes from there into the
    // active copy): a healthy passive copy's first, so the restore does not
    // weigh on the server that carries the mail; else the active's.
    for (const CopyView& c : copies) {
      if (c.node_reporting && c.status.role() != v1::ACTIVE && c.status.state() == v1::HEALTHY) {
        request->set_node(c.status.node());
        break;
      }
    }
    if (request->node().empty()) request->set_node(active);
    if (request->node().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", request->unit(), ": no node with a copy of it reports; name one with --node"));
    }
  } else {
    // Its mailstored restores the unit's chain only where the unit is
    // configured, and writes into production from there.
    bool holds = false;
    for (const CopyView& c : copies) holds |= c.status.node() == request->node();
    if (!holds) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", request->node(), " holds no copy of unit ", request->unit(),
                       ": an item restore runs on a node that holds one"));
    }
  }
  // Its own name: the agent removes exactly this Recovery Database.
  request->set_recovery_database(ItemRestoreDatabaseName(
      request->unit(), absl::FormatTime("%Y%m%dT%H%M%S", clock_->Now(), absl::UTCTimeZone()),
      RandomHexId(3)));
  request->set_mount(true);
  request->set_mode("rdb");
  v1::RestorePlan plan;
  plan.set_active_node(request->node());
  *plan.mutable_items() = request->items();
  for (uint32_t i = 0; i < 3; ++i) {
    v1::RestoreStep* step = plan.add_steps();
    step->set_number(i + 1);
    step->set_name(i == 1 && !items.into_production() ? std::string("export the items to files")
                                                      : std::string(kItemStepNames[i]));
    step->set_state(v1::STEP_PENDING);
    step->add_nodes(request->node());
  }
  return plan;
}

std::vector<v1::ItemProbe> JobManager::ItemProbesOf(const std::string& unit,
                                                    const std::vector<BackupRecord>& backups,
                                                    const std::vector<ChainBreakRecord>& breaks,
                                                    uint32_t chosen, int64_t chosen_us) {
  // The restore points the agent looks at when the mailbox or an item is
  // not at the one asked for, nearest in time first. Each look is a
  // restore of its own, so only a few: an item deleted last Tuesday is
  // usually in the point just before.
  constexpr size_t kProbes = 3;
  std::vector<v1::RestorePoint> points;
  const v1::ShowChainsResponse shown = ShowChains(unit, backups, breaks);
  for (const v1::ChainInfo& c : shown.chains()) {
    for (const v1::RestorePoint& p : c.restore_points()) {
      if (p.generation() != chosen) points.push_back(p);
    }
  }
  std::stable_sort(
      points.begin(), points.end(), [&](const v1::RestorePoint& a, const v1::RestorePoint& b) {
        return std::llabs(a.time_us() - chosen_us) < std::llabs(b.time_us() - chosen_us);
      });
  std::vector<v1::ItemProbe> out;
  for (const v1::RestorePoint& p : points) {
    if (out.size() == kProbes) break;
    uint32_t stop = 0;
    auto pieces = coordinator::RestorePlan(unit, backups, breaks, p.generation(),
                                           absl::InfinitePast(), &stop);
    if (!pieces.ok()) continue;
    v1::ItemProbe& probe = out.emplace_back();
    probe.set_generation(p.generation());
    probe.set_frozen_us(p.time_us());
    for (const auto& m : *pieces) probe.add_manifests(m.id());
    probe.set_recovery_database(ItemRestoreDatabaseName(
        unit, absl::FormatTime("%Y%m%dT%H%M%S", clock_->Now(), absl::UTCTimeZone()),
        RandomHexId(3)));
  }
  return out;
}

void JobManager::RecordItemRestoreResult(Active& a, const v1::RestoreJobResult& result,
                                         bool succeeded, const std::string& error, bool cancelled) {
  v1::RestorePlan plan;
  if (!plan.ParseFromString(a.record.plan)) return;
  if (plan.has_verification()) {
    RecordVerificationResult(a, plan, result, succeeded, error, cancelled);
    a.record.plan = plan.SerializeAsString();
    return;
  }
  if (!plan.has_items()) return;
  const v1::ItemRestoreResult& items = result.items();
  *plan.mutable_item_result() = items;
  for (int i = 0; i < plan.steps_size(); ++i) {
    v1::RestoreStep* step = plan.mutable_steps(i);
    if (i < items.step_started_us_size()) step->set_started_us(items.step_started_us(i));
    if (i < items.step_ended_us_size()) step->set_ended_us(items.step_ended_us(i));
    if (i < items.step_detail_size()) step->set_detail(items.step_detail(i));
    if (succeeded && i < items.step_ended_us_size() && items.step_ended_us(i) != 0) {
      step->set_state(i == 2 && !items.recovery_database_removed() ? v1::STEP_FAILED
                                                                   : v1::STEP_DONE);
      step->add_done_nodes(step->nodes(0));
    }
  }
  if (!succeeded) {
    // The agent's error names the step that failed ("step N: ..."); the
    // ones before it are done (the Recovery Database was removed after).
    int failed = 0;
    // (The error may carry a prefix, the lost lease's, say.)
    for (int i = 1; i <= 2; ++i) {
      if (absl::StrContains(error, absl::StrCat("step ", i, ": "))) failed = i;
    }
    for (int i = 0; i < plan.steps_size() && failed != 0; ++i) {
      v1::RestoreStep* step = plan.mutable_steps(i);
      const bool ran = i < items.step_ended_us_size() && items.step_ended_us(i) != 0;
      if (i + 1 == failed) {
        step->set_state(v1::STEP_FAILED);
        step->set_detail(error);
      } else if (i == 2) {
        // The Recovery Database is removed after a failure too.
        step->set_state(!ran                                ? v1::STEP_PENDING
                        : items.recovery_database_removed() ? v1::STEP_DONE
                                                            : v1::STEP_FAILED);
      } else {
        step->set_state(i + 1 < failed ? v1::STEP_DONE : v1::STEP_PENDING);
      }
    }
    plan.set_next_action(
        "run the same `dagvault restore items` again: it restores the Recovery Database afresh, "
        "and items already in production with the same bytes are left alone");
  }
  a.record.plan = plan.SerializeAsString();
}

}  // namespace dagvault::coordinator
