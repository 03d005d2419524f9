// Restore verifications at the coordinator (issue 20 §2): `dagvault restore
// verify` and the policies' verify_schedule. One job on one node: the
// restore point restored as a Recovery Database there, checked, mounted,
// read and removed by the agent (node-agent/jobs/restore_verification.h);
// the job records the three steps in its plan (RestorePlan.verification,
// .steps), and the result goes to the catalog per restore point.
//
// How a verification shares the unit with its backups: it takes no lease
// of the unit and no fencing token. It writes nothing the unit's copies
// use (only its own Recovery Database, under the verify node's data root,
// which mailstored accepts unfenced for exactly that), and it reads only
// the repository's immutable packs and manifests. So a backup of the unit
// starts and runs beside it, never waiting for it; one verification of a
// unit runs at a time.
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/events.h"
#include "common/evp.h"
#include "common/item_restore_name.h"
#include "common/status_macros.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/server/job_manager.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

namespace {

constexpr uint32_t kDefaultSampleItems = 32;

const char* const kVerifyStepNames[3] = {
    "restore the restore point as a Recovery Database",
    "check, mount and read the Recovery Database",
    "remove the Recovery Database",
};

}  // namespace

absl::StatusOr<v1::RestorePlan> JobManager::PrepareVerification(v1::StartRestoreRequest* request,
                                                                const std::string& requested_by) {
  const v1::VerifyRestore& verify = request->verify();
  const std::string& unit = request->unit();
  if (!request->recovery_database().empty() || !request->path().empty() ||
      request->roll_forward() || request->has_items() ||
      (!request->mode().empty() && request->mode() != "verify")) {
    return absl::InvalidArgumentError(
        "restore verify: the Recovery Database is the job's own; --rdb, --path, --roll-forward "
        "and --mode do not apply");
  }
  if (verify.random_point() && (request->to_generation() != 0 || request->to_time_us() != 0)) {
    return absl::InvalidArgumentError(
        "restore verify: give a restore point (--to-generation or --to-time) or --random, not "
        "both");
  }
  if (!topology_->UnitKnown(unit)) {
    return absl::NotFoundError(absl::StrCat("unit ", unit, ": no agent has reported a copy of it"));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, slot] : active_) {
      if (slot->a.verification && slot->a.shown.unit == unit) {
        return absl::FailedPreconditionError(absl::StrCat(
            "unit ", unit, " is being verified by job ", id, "; wait for it or cancel it"));
      }
    }
  }
  // Which nodes carry production: a mounted active copy, of any unit.
  std::map<std::string, std::vector<std::string>> serving;
  for (const auto& [u, copies] : topology_->AllCopies()) {
    for (const CopyView& c : copies) {
      if (c.status.role() == v1::ACTIVE && c.status.state() == v1::MOUNTED) {
        serving[c.status.node()].push_back(u);
      }
    }
  }
  auto serves = [&](const std::string& node) {
    auto it = serving.find(node);
    return it == serving.end() ? std::string()
                               : absl::StrCat("it carries the mounted active copy of ",
                                              absl::StrJoin(it->second, ", "));
  };
  const std::vector<CopyView> copies = topology_->CopiesOf(unit);
  if (!request->node().empty()) {
    // Its mailstored restores a unit's Recovery Database only where the
    // unit is configured: a node that holds a copy of it.
    bool holds = false;
    for (const CopyView& c : copies) holds |= c.status.node() == request->node();
    if (!holds) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", request->node(), " holds no copy of unit ", unit,
                       ": a verification runs on a node whose mailstored knows the unit"));
    }
    if (!topology_->Reporting(request->node())) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", request->node(), " does not report: its agent must run to verify"));
    }
    if (verify.off_production() && !serves(request->node()).empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", request->node(), " is not used for verification: ", serves(request->node()),
          ", and the policy keeps verifications off "
          "production nodes"));
    }
  } else {
    // A reporting node with a copy of the unit and no mounted active copy
    // first; then (unless kept off production) a passive copy's node, then
    // the active's.
    std::vector<std::string> refused;
    std::string fallback;
    for (const CopyView& c : copies) {
      const std::string& node = c.status.node();
      if (!c.node_reporting) {
        refused.push_back(absl::StrCat(node, ": it does not report"));
        continue;
      }
      const std::string why = serves(node);
      if (why.empty()) {
        request->set_node(node);
        break;
      }
      refused.push_back(absl::StrCat(node, ": ", why));
      if (fallback.empty() || c.status.role() != v1::ACTIVE) fallback = node;
    }
    if (request->node().empty() && !verify.off_production()) request->set_node(fallback);
    if (request->node().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", unit, ": no node can run its verification",
          verify.off_production() ? " off production" : "", " (", absl::StrJoin(refused, "; "),
          "); name one with --node or set the policy's verify_node"));
    }
  }
  if (verify.random_point()) {
    ASSIGN_OR_RETURN(std::vector<BackupRecord> backups, catalog_->Backups(unit));
    ASSIGN_OR_RETURN(std::vector<ChainBreakRecord> breaks, catalog_->ChainBreaks(unit));
    std::vector<uint32_t> points;
    const v1::ShowChainsResponse shown = ShowChains(unit, backups, breaks);
    for (const v1::ChainInfo& chain : shown.chains()) {
      for (const v1::RestorePoint& p : chain.restore_points()) points.push_back(p.generation());
    }
    if (points.empty()) {
      return absl::NotFoundError(absl::StrCat("unit ", unit, " has no restore point to verify"));
    }
    std::random_device seed;
    std::mt19937_64 random(seed());
    request->set_to_generation(points[random() % points.size()]);
  }
  request->set_recovery_database(JobDatabaseName(
      kVerificationMarker, unit,
      absl::FormatTime("%Y%m%dT%H%M%S", clock_->Now(), absl::UTCTimeZone()), RandomHexId(3)));
  request->set_mount(true);
  request->set_mode("rdb");
  v1::RestorePlan plan;
  plan.set_active_node(request->node());
  v1::RestoreVerification* v = plan.mutable_verification();
  v->set_unit(unit);
  v->set_node(request->node());
  v->set_random_point(verify.random_point());
  v->set_requested_by(requested_by);
  v->set_recovery_database(request->recovery_database());
  for (uint32_t i = 0; i < 3; ++i) {
    v1::RestoreStep* step = plan.add_steps();
    step->set_number(i + 1);
    step->set_name(kVerifyStepNames[i]);
    step->set_state(v1::STEP_PENDING);
    step->add_nodes(request->node());
  }
  return plan;
}

uint32_t JobManager::VerificationSampleItems(const v1::StartRestoreRequest& request) {
  return request.verify().sample_items() != 0 ? request.verify().sample_items()
                                              : kDefaultSampleItems;
}

void JobManager::RecordVerificationResult(Active& a, v1::RestorePlan& plan,
                                          const v1::RestoreJobResult& result, bool succeeded,
                                          const std::string& error, bool cancelled) {
  a.verification_recorded = true;
  v1::RestoreVerification& v = *plan.mutable_verification();
  const v1::VerificationOutcome& out = result.verification();
  v.set_job(a.record.id);
  v.set_started_us(absl::ToUnixMicros(a.record.created));
  v.set_ended_us(absl::ToUnixMicros(clock_->Now()));
  v.set_files(out.files());
  v.set_bytes(out.bytes());
  if (out.last_generation() != 0) v.set_generation(out.last_generation());
  *v.mutable_databases() = out.databases();
  v.set_restore_us(out.restore_us());
  v.set_check_us(out.check_us());
  v.set_recovery_database_removed(out.recovery_database_removed());
  v.clear_problems();
  for (const std::string& p : out.problems()) v.add_problems(p);
  const bool has_outcome = result.has_verification();
  if (succeeded && !has_outcome) {
    // An agent that does not know verifications restored and mounted it,
    // and checked nothing: not a pass.
    v.add_problems(
        "the agent reported no verification outcome (an agent older than restore "
        "verification?)");
  }
  v.set_passed(succeeded && has_outcome && out.passed() && v.problems_size() == 0);
  // Cancelled, lost with its agent, or stopped by something other than the
  // data: it proves nothing either way.
  v.set_inconclusive(!v.passed() &&
                     (cancelled || out.inconclusive() || (!succeeded && !has_outcome)));
  if (!v.passed() && v.problems_size() == 0) {
    v.add_problems(error.empty() ? std::string("it did not run") : error);
  }
  if (v.passed()) {
    auto earlier = catalog_->Verifications(v.unit(), 200);
    if (earlier.ok()) CompareWithEarlierVerifications(*earlier, &v);
  }
  // The steps, from what the outcome says ran.
  const bool restored = out.files() != 0;
  const bool checked = out.databases_size() != 0;
  for (int i = 0; i < plan.steps_size(); ++i) {
    v1::RestoreStep* step = plan.mutable_steps(i);
    const bool done = i == 0   ? restored
                      : i == 1 ? checked && v.passed()
                               : out.recovery_database_removed();
    const bool failed = i == 0   ? !restored && !succeeded
                        : i == 1 ? restored && !v.passed()
                                 : !out.removal_problem().empty();
    step->set_state(done ? v1::STEP_DONE : failed ? v1::STEP_FAILED : v1::STEP_PENDING);
    if (done) step->add_done_nodes(step->nodes(0));
    if (i == 0 && restored) {
      step->set_detail(
          absl::StrFormat("%u files, %u bytes, each matching the SHA-256 its backup "
                          "recorded; replayed through generation 0x%08X",
                          out.files(), out.bytes(), out.last_generation()));
    } else if (i == 1 && done) {
      std::vector<std::string> each;
      for (const auto& d : out.databases()) {
        each.push_back(absl::StrFormat(
            "%s: %u pages checked, %u items read (digest %s), %u read "
            "by key",
            d.database(), d.pages(), d.items(), d.sha256().substr(0, 16), d.sampled_items()));
      }
      step->set_detail(absl::StrJoin(each, "; "));
    } else if (failed && i < 2) {
      step->set_detail(v.problems(0));
    } else if (i == 2) {
      step->set_detail(out.recovery_database_removed()
                           ? absl::StrCat("removed recovery database ", v.recovery_database())
                           : out.removal_problem());
    }
  }
  if (absl::Status s = catalog_->PutVerification(v); !s.ok()) {
    CatalogFailed(s, absl::StrCat("recording the restore verification of job ", a.record.id));
  }
  if (options_.observer != nullptr) options_.observer->VerificationEnded(v);
  if (!v.passed() && !v.inconclusive()) {
    events::Emit("coordinator", spdlog::level::err, events::EventId::kVerificationFailed,
                 absl::StrCat("the restore verification of unit ", a.record.unit, " (job ",
                              a.record.id, ") failed: ", v.problems(0)),
                 {{"unit", a.record.unit},
                  {"job", a.record.id},
                  {"node", v.node()},
                  {"generation", absl::StrFormat("0x%08X", v.generation())}});
  }
}

void JobManager::CompareWithEarlierVerifications(
    const std::vector<v1::RestoreVerification>& earlier, v1::RestoreVerification* v) {
  // Restoring one restore point must give the same content every time: a
  // database whose digest differs from an earlier passed verification of
  // the same point (the same last piece, the same generation) means the
  // repository, the restore or the replay changed what comes back.
  if (v->manifests().empty()) return;
  const std::string& last = v->manifests(v->manifests_size() - 1);
  for (const v1::RestoreVerification& e : earlier) {
    if (!e.passed() || e.job() == v->job() || e.generation() != v->generation() ||
        e.manifests().empty() || e.manifests(e.manifests_size() - 1) != last) {
      continue;
    }
    for (const v1::DatabaseCheck& now : v->databases()) {
      for (const v1::DatabaseCheck& then : e.databases()) {
        if (then.database() != now.database() || then.sha256() == now.sha256()) continue;
        v->add_problems(absl::StrFormat(
            "database %s: content digest %s (%u items) differs from %s (%u items) found by "
            "verification %s of the same restore point at %s",
            now.database(), now.sha256(), now.items(), then.sha256(), then.items(), e.job(),
            FormatUtc(absl::FromUnixMicros(e.ended_us()))));
      }
    }
    break;  // the newest earlier one decides
  }
  if (v->problems_size() != 0) v->set_passed(false);
}

}  // namespace dagvault::coordinator
