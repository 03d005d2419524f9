// Running an all-copies restore's plan (restore_plan.cc starts it): the
// operations each step sends to the nodes' agents, what their updates do
// to the plan, and how it stops.
//
// Operations run on several nodes at once, each node one at a time: the
// passive copies are suspended together; once the active copy is
// dismounted, the chain is restored from the repository into the active
// copy (steps 3 and 4, through the Store writer, then replayed and
// mounted) and, as soon as its writer has accepted that restore, into
// every passive copy (step 5, through the Replication writer, replayed,
// still suspended); replication resumes on every passive copy from the
// common restore point (6); the active copy then closes a generation and
// every copy's digests are taken at once (7). A passive copy whose restore
// from the repository fails or goes quiet (its node cannot read the
// repository, say) is reseeded from the restored active copy instead once
// it is mounted, as before issue 19, and the plan says so.
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "coordinator/server/job_manager.h"
#include "coordinator/server/restore_plan_steps.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

constexpr const char* kStepNames[] = {
    "suspend replication on every passive copy",
    "dismount the active copy",
    "restore the chain through the Store writer",
    "replay the logs and mount",
    "restore every passive copy from the repository (or reseed it from the restored data)",
    "resume replication",
    "confirm every copy is Healthy and the digests agree",
};

constexpr const char* kReseedStepNames[] = {
    "suspend replication on the copy",
    "dismount the active copy",
    "restore the chain through the Store writer",
    "replay the logs and mount",
    "restore the copy from the repository (the newest chain, which the active copy's stream "
    "continues)",
    "resume replication (the active copy ships the generations after the chain's end)",
    "confirm the copy is Healthy, replays the active copy's stream, and the digests agree",
};

// How many times step 7 checks at most when mail written on the active
// copy during a check keeps its digests from being compared.
constexpr uint32_t kCheckTries = 3;

template <typename List>
bool Contains(const List& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool Done(v1::RestorePlan& plan, uint32_t number) { return StepSettled(*StepOf(plan, number)); }

v1::RestoreNodeProgress* ProgressOf(v1::RestorePlan& plan, const std::string& node) {
  for (auto& p : *plan.mutable_progress()) {
    if (p.node() == node) return &p;
  }
  v1::RestoreNodeProgress* p = plan.add_progress();
  p->set_node(node);
  return p;
}

void DropProgress(v1::RestorePlan& plan, const std::string& node) {
  auto* list = plan.mutable_progress();
  for (int i = 0; i < list->size(); ++i) {
    if (list->Get(i).node() == node) {
      list->DeleteSubrange(i, 1);
      return;
    }
  }
}

// Whether step 7's digests are of the same point of the stream: every copy's
// is exactly at the end of the generation the active copy closed for the
// check (mail written on the active copy meanwhile moves its digest past
// it, and the passive copies replay on).
bool DigestsComparable(const v1::RestorePlan& plan) {
  for (const auto& d : plan.digests()) {
    if (d.through_generation() != plan.check_generation()) return false;
  }
  return plan.check_generation() != 0 && plan.digests_size() > 0;
}

// Whether step 7's digests differ only as mail written on the active copy
// during the check makes them: every copy has the active copy's databases,
// each with a digest; the active copy's are past the check's generation
// (through_generation 0) or at it, and each passive copy's at or past it.
// (A structural difference, or a mailstored that does not say where its
// digest is, is no such case.)
bool OnlyWrittenMeanwhile(const v1::RestorePlan& plan, const v1::RestoreStep& step) {
  if (plan.check_generation() == 0) return false;
  std::map<std::string, std::set<std::string>> databases;  // node → those with a digest
  for (const auto& d : plan.digests()) {
    if (d.sha256().empty()) return false;
    if (d.node() == plan.active_node()) {
      if (d.through_generation() != 0 && d.through_generation() != plan.check_generation()) {
        return false;
      }
    } else if (d.through_generation() < plan.check_generation()) {
      return false;
    }
    databases[d.node()].insert(d.database());
  }
  const std::set<std::string> expected = databases[plan.active_node()];
  if (expected.empty()) return false;
  for (const auto& node : step.nodes()) {
    if (databases[node] != expected) return false;
  }
  return true;
}

// Step 7's check: each copy has every database the active copy has, each
// with the active copy's digest. Empty when they agree.
std::vector<std::string> DigestDifferences(const v1::RestorePlan& plan,
                                           const v1::RestoreStep& step) {
  std::map<std::string, std::map<std::string, std::string>> by_node;  // node → db → digest
  for (const auto& d : plan.digests()) by_node[d.node()][d.database()] = d.sha256();
  const auto expected = by_node[plan.active_node()];
  std::vector<std::string> differ;
  if (expected.empty()) differ.push_back("the active copy reported no database digest");
  for (const auto& copy_node : step.nodes()) {
    const auto& got = by_node[copy_node];
    for (const auto& [db, digest] : expected) {
      auto it = got.find(db);
      if (it == got.end() || it->second.empty()) {
        differ.push_back(absl::StrCat(db, " on ", copy_node, " has no digest"));
      } else if (it->second != digest) {
        differ.push_back(absl::StrCat(db, " on ", copy_node, " is ", it->second, ", not ", digest));
      }
    }
    if (got.size() != expected.size()) {
      differ.push_back(absl::StrCat(copy_node, " has ", got.size(),
                                    " database(s), the active copy ", expected.size()));
    }
  }
  return differ;
}

// Whether every step `number` waits for is done. Steps 1 and 2 run in
// order; the active copy's restore (3, then 4) and the passive copies'
// restores from the repository (5) run at once after 2 (5 once the active
// copy's writer accepted its restore); 6 waits for 4 and 5, 7 for 6.
bool StepCanRun(v1::RestorePlan& plan, uint32_t number) {
  switch (number) {
    case 1:
      return true;
    case 2:
      return Done(plan, 1);
    case 3:
      return Done(plan, 2);
    case 5:
      // The passive copies' files are replaced only once the active copy's
      // writer has accepted its restore (it refuses for the whole unit).
      return Done(plan, 2) && (plan.active_prepared() || Done(plan, 3));
    case 4:
      return Done(plan, 3);
    case 6:
      return Done(plan, 4) && Done(plan, 5);
    default:
      return Done(plan, 6);
  }
}

// Whether `node`'s restore from the repository failed and step 5 reseeds it
// from the active copy instead.
bool ReseededFromActive(const v1::RestorePlan& plan, const std::string& node) {
  for (const auto& f : plan.reseeded_from_active()) {
    if (f.node() == node) return true;
  }
  return false;
}

// What is safe to do when a reseed from the repository stopped at `step`.
std::string NextSafeReseedAction(const v1::RestorePlan& plan, const std::string& unit,
                                 uint32_t step) {
  const std::string node = plan.passive_nodes().empty() ? "?" : plan.passive_nodes(0);
  const std::string rerun =
      absl::StrCat("run `dagvault reseed --unit ", unit, " --node ", node,
                   "` again (it starts at step 1 and restores the copy from the repository anew)");
  switch (step) {
    case 1:
      return absl::StrCat("nothing was restored; the copy on ", node, " may be suspended. ", rerun,
                          ", or resume it (mailstore-util resume) to leave it as it was");
    case 5:
      return absl::StrCat("the copy on ", node,
                          " is suspended, and failed if its files were already replaced; the "
                          "active copy on ",
                          plan.active_node(), " is untouched. ", rerun,
                          ", or reseed it from the active copy (mailstore-util reseed on ", node,
                          ")");
    default:
      return absl::StrCat("the copy on ", node,
                          " holds the restored data and follows the active copy's stream once "
                          "resumed; ",
                          rerun,
                          ", or resume it (mailstore-util resume) and watch it become Healthy");
  }
}

// What is safe to do when the plan stopped at `step`.
std::string NextSafeAction(const v1::RestorePlan& plan, const std::string& unit, uint32_t step) {
  if (plan.reseed()) return NextSafeReseedAction(plan, unit, step);
  const std::string command = absl::StrCat(
      "dagvault restore start --unit ", unit,
      plan.to_generation() != 0
          ? absl::StrCat(" --to-generation ", GenerationHex(plan.to_generation()))
          : std::string(),
      plan.roll_forward() ? " --roll-forward" : "",
      plan.force_overwrite_different_database() ? " --force-overwrite-different-database" : "");
  const std::string rerun = absl::StrCat("run `", command, "` again to resume at step ", step);
  const std::string passives = plan.passive_nodes().empty()
                                   ? std::string("(none)")
                                   : absl::StrJoin(plan.passive_nodes(), ", ");
  switch (step) {
    case 1:
    case 2:
      return absl::StrCat("nothing has been restored yet; the passive copies on ", passives,
                          " may be suspended and the active copy on ", plan.active_node(),
                          " dismounted. ", rerun,
                          ", or resume replication and mount the active copy to abandon it");
    case 3:
    case 5:
      if (step == 5 && plan.steps_size() >= 4 && plan.steps(3).state() == v1::STEP_DONE) {
        return absl::StrCat(
            "the active copy on ", plan.active_node(),
            " is mounted with the restored data (through generation ",
            GenerationHex(plan.restored_generation()), "). The passive copies on ", passives,
            " are suspended; each holds the restored data, is half restored (then failed), or "
            "holds the old data. ",
            rerun, " (the passive copies not done are reseeded from the active copy)");
      }
      return absl::StrCat(
          "the unit is dismounted on ", plan.active_node(),
          " and its files may be half restored: do not mount it. The passive copies on ", passives,
          " are suspended; they may hold the restored data, be half restored (then failed), or be "
          "untouched. ",
          rerun, " (the chain is restored again)");
    case 4:
      // The replay may have finished and mounted the unit without the
      // coordinator hearing of it: the re-run then sees (restored_by) that
      // this restore mounted it and goes on.
      return absl::StrCat("the unit on ", plan.active_node(),
                          " is dismounted with its files half replayed, or was replayed and "
                          "mounted by this restore without the coordinator hearing of it; do "
                          "not mount it by hand. The passive copies on ",
                          passives, " are suspended. ", rerun,
                          " (the chain is restored again unless this restore already mounted it)");
    case 6:
      return absl::StrCat("the active copy on ", plan.active_node(),
                          " is mounted with the restored data (through generation ",
                          GenerationHex(plan.restored_generation()),
                          "); every passive copy holds it too, and those not yet resumed are "
                          "suspended. ",
                          rerun);
    default:
      return absl::StrCat("every copy holds the restored data; ", rerun, " to check them again");
  }
}

}  // namespace

const char* RestoreStepName(uint32_t number) {
  return number >= 1 && number <= 7 ? kStepNames[number - 1] : "?";
}

const char* ReseedStepName(uint32_t number) {
  return number >= 1 && number <= 7 ? kReseedStepNames[number - 1] : "?";
}

std::string GenerationHex(uint32_t generation) { return absl::StrFormat("0x%08X", generation); }

v1::RestoreStep* FirstStepNotDone(v1::RestorePlan& plan) {
  for (auto& step : *plan.mutable_steps()) {
    if (!StepSettled(step)) return &step;
  }
  return nullptr;
}

uint32_t NextStepOfNode(v1::RestorePlan& plan, const std::string& node) {
  for (uint32_t n = 1; n <= 7; ++n) {
    v1::RestoreStep* step = StepOf(plan, n);
    if (StepSettled(*step) || !StepCanRun(plan, n)) continue;
    if (Contains(step->nodes(), node) && !Contains(step->done_nodes(), node)) return n;
  }
  return 0;
}

// The plan step an operation's outcome belongs to: the active copy's
// restore is step 3 until its files are in place, then step 4.
v1::RestoreStep* StepOfOperation(v1::RestorePlan& plan, uint32_t op_step) {
  if (op_step == 3 || op_step == 4) return StepOf(plan, Done(plan, 3) ? 4 : 3);
  return StepOf(plan, op_step);
}

bool JobManager::RunsAttempt(const Active& a, const std::string& node, int number) {
  if (a.all_copies) {
    auto it = a.operations.find(node);
    return it != a.operations.end() && it->second.attempt == number;
  }
  return !a.record.attempts.empty() && a.record.attempts.back().number == number &&
         a.record.attempts.back().node == node;
}

JobAttempt* JobManager::AttemptOf(Active& a, int number) {
  for (auto& attempt : a.record.attempts) {
    if (attempt.number == number) return &attempt;
  }
  return nullptr;
}

void JobManager::SendOperation(Active& a, const std::string& node, uint32_t step,
                               v1::JobAssignment assignment, const std::string& what,
                               bool repository_restore, Outbox* outbox) {
  JobAttempt attempt;
  attempt.number = static_cast<int>(a.record.attempts.size()) + 1;
  attempt.node = node;
  attempt.state = JobState::kAssigned;
  attempt.started = clock_->Now();
  a.record.attempts.push_back(attempt);
  const absl::Duration now = clock_->Monotonic();
  a.assigned_at = now;
  // (The plan's lease deadline moves only with renewals: an operation sent
  // does not prove the lease is still held.)
  assignment.set_job(a.record.id);
  if (assignment.wait_for_writer_seconds() == 0) {
    // How long a step may wait for an earlier attempt's writer session to
    // end (a reseed after a restore into the copy was given up).
    assignment.set_wait_for_writer_seconds(
        static_cast<uint32_t>(absl::ToInt64Seconds(options_.writer_session_timeout) + 15));
  }
  assignment.set_fencing_token(a.fencing_token);
  assignment.set_attempt(static_cast<uint32_t>(attempt.number));
  assignment.set_unit(a.record.unit);
  v1::CoordinatorMessage m;
  *m.mutable_assignment() = std::move(assignment);
  auto channel = topology_->ChannelOf(node);
  if (channel) outbox->emplace_back(channel, m);
  Active::Operation& op = a.operations[node];
  op = Active::Operation{};
  op.attempt = attempt.number;
  op.step = step;
  op.assigned_at = now;
  op.deadline = now + options_.lease_ttl;
  // An agent that is not connected (it is reconnecting, say to a new
  // leader) gets the operation again once it reports without it; one that
  // stays away is found by the deadline: the step fails.
  op.undelivered = channel == nullptr;
  op.repository_restore = repository_restore;
  v1::RestoreNodeProgress* progress = ProgressOf(a.restore_plan, node);
  progress->Clear();
  progress->set_node(node);
  progress->set_step(step);
  progress->set_operation(what);
  progress->set_state(v1::JOB_ASSIGNED);
  progress->set_repository_restore(repository_restore);
  Record(a, JobState::kAssigned, absl::StrCat("step ", step, ": ", what, " on ", node));
}

void JobManager::AdvancePlan(Active& a, Outbox* outbox) {
  v1::RestorePlan& plan = a.restore_plan;
  const int64_t now_us = clock_->NowMicros();
  // Steps whose every node has finished are done, in order (one done lets
  // the next run; a step without nodes, such as step 5 of a unit without
  // passive copies, is done as soon as it can run).
  for (uint32_t n = 1; n <= 7; ++n) {
    v1::RestoreStep* step = StepOf(plan, n);
    if (StepSettled(*step) || !StepCanRun(plan, n)) continue;
    bool all = true;
    for (const auto& node : step->nodes()) all = all && Contains(step->done_nodes(), node);
    if (!all) continue;
    if (step->state() != v1::STEP_RUNNING) step->set_started_us(now_us);
    if (n == 7) {
      std::vector<std::string> differ = DigestDifferences(plan, *step);
      const bool comparable = DigestsComparable(plan);
      const bool written = !comparable && OnlyWrittenMeanwhile(plan, *step);
      if (!differ.empty() && written && plan.check_tries() + 1 < kCheckTries) {
        // Mail written on the active copy during the check: not a
        // difference of the data restored. The check is taken again (the
        // step is reset before the event records it, so that a coordinator
        // taking the plan over does not count this check twice).
        const uint32_t past = plan.check_generation();
        plan.set_check_tries(plan.check_tries() + 1);
        step->set_state(v1::STEP_PENDING);
        step->clear_done_nodes();
        plan.clear_digests();
        plan.clear_check_generation();
        Record(a, a.record.state,
               absl::StrCat("step 7: the digests were taken at different points of the stream "
                            "(mail was written on the active copy during the check, past "
                            "generation ",
                            GenerationHex(past), "); checking again (", plan.check_tries() + 1,
                            " of ", kCheckTries, ")"));
        continue;
      }
      if (!differ.empty() && written && plan.reseed()) {
        // The copy replays the active copy's stream (each generation's link
        // hash checked as it arrived) and is Healthy; the data could not be
        // compared on a unit that never stopped writing.
        step->set_detail(absl::StrCat(
            "the copy is Healthy and replayed the active copy's stream through generation ",
            GenerationHex(plan.check_generation()),
            "; its digests were not compared: mail was written on the active copy during each of ",
            kCheckTries, " checks"));
      } else if (!differ.empty()) {
        FailPlan(
            a, JobState::kFailed,
            absl::StrCat("the copies' digests differ at generation ",
                         GenerationHex(plan.check_generation()), ": ", absl::StrJoin(differ, "; "),
                         comparable ? std::string(" (no mail was written during the check)")
                         : written  ? absl::StrCat(" (mail was written on the active copy "
                                                    "during each of ",
                                                   kCheckTries,
                                                   " checks, which also makes "
                                                    "them differ)")
                                    : std::string()),
            outbox, step);
        return;
      } else {
        std::vector<std::string> summary;
        for (const auto& d : plan.digests()) {
          if (d.node() == plan.active_node())
            summary.push_back(absl::StrCat(d.database(), " ", d.sha256()));
        }
        step->set_detail(
            absl::StrCat("every copy holds the same data: ", absl::StrJoin(summary, ", ")));
      }
    }
    step->set_state(v1::STEP_DONE);
    step->set_ended_us(now_us);
    Record(a, a.record.state,
           absl::StrCat("step ", n, " done: ", step->name(),
                        step->detail().empty() ? "" : absl::StrCat(" (", step->detail(), ")")));
  }
  if (FirstStepNotDone(plan) == nullptr) {
    plan.clear_progress();
    Finish(a, JobState::kSucceeded, "");
    return;
  }
  // Every node without an operation in flight gets its next one.
  std::vector<std::string> nodes = {plan.active_node()};
  nodes.insert(nodes.end(), plan.passive_nodes().begin(), plan.passive_nodes().end());
  for (const std::string& node : nodes) {
    if (a.operations.count(node) != 0) continue;
    const uint32_t n = NextStepOfNode(plan, node);
    if (n == 0) continue;
    // The passive copies' digests wait for the generation the active copy
    // closes for the check (they replay through it); then all the digests,
    // the active copy's too, are taken at once.
    if (n == 7 && node != plan.active_node() && plan.check_generation() == 0) continue;
    // A reseed from the active copy (a passive node that could not restore
    // from the repository) needs it restored and mounted.
    const bool reseed = n == 5 && ReseededFromActive(plan, node);
    if (reseed && !Done(plan, 4)) continue;
    uint32_t sent_step = n;
    if (n == 3 || n == 4) {
      // Restored files with a failed replay are restored again: the
      // operation is one, and steps 3 and 4 are its two halves.
      sent_step = 3;
      StepOf(plan, 4)->set_state(v1::STEP_PENDING);
    }
    v1::RestoreStep* step = StepOf(plan, sent_step);
    if (step->state() != v1::STEP_RUNNING) {
      step->set_state(v1::STEP_RUNNING);
      step->set_started_us(now_us);
      step->clear_done_nodes();
      step->clear_detail();
      if (sent_step == 7) {
        plan.clear_digests();
        plan.clear_check_generation();
      }
    }
    v1::JobAssignment job;
    job.set_kind(v1::JOB_COPY_OPERATION);
    std::string what;
    switch (sent_step) {
      case 1:
        job.mutable_copy_op()->set_op(v1::COPY_SUSPEND);
        what = "suspend replication";
        break;
      case 2:
        job.mutable_copy_op()->set_op(v1::COPY_DISMOUNT);
        what = "dismount";
        break;
      case 3:
      case 5: {
        if (reseed) {
          job.mutable_copy_op()->set_op(v1::COPY_RESEED);
          what = "reseed from the restored active copy";
          break;
        }
        v1::StartRestoreRequest request;
        const bool active = sent_step == 3;
        // A passive copy replays the chain only: what the active copy
        // rolls forward past it reaches the passive copies by replication.
        request.set_roll_forward(active && plan.roll_forward());
        request.set_mount(active);
        request.set_force_overwrite_different_database(plan.force_overwrite_different_database());
        std::vector<std::string> chain(plan.manifests().begin(), plan.manifests().end());
        job = RestoreAssignmentOf(a.record, chain, plan.to_generation(), request);
        if (active) {
          job.mutable_restore()->set_refuse_if_mounted(true);  // never a recovery database here
          what = absl::StrCat("restore ", absl::StrJoin(chain, ", "), " and mount");
        } else {
          job.mutable_restore()->set_passive_copy(true);
          // A reseed: the active copy runs on, and its stream must continue
          // the chain's (its writer checks before the copy's files go).
          job.mutable_restore()->set_join_active_stream(plan.reseed());
          what = absl::StrCat("restore ", absl::StrJoin(chain, ", "),
                              " into the passive copy from the repository");
        }
        break;
      }
      case 6:
        job.mutable_copy_op()->set_op(v1::COPY_RESUME);
        what = "resume replication";
        break;
      default:
        job.mutable_copy_op()->set_op(v1::COPY_DIGEST);
        job.mutable_copy_op()->set_wait_for_generation(
            node == plan.active_node() ? 0 : plan.check_generation());
        what = "digest every database";
        break;
    }
    SendOperation(a, node, sent_step, job, what, /*repository_restore=*/sent_step == 5 && !reseed,
                  outbox);
  }
}

bool JobManager::OnPlanUpdate(Active& a, const std::string& node, const v1::JobUpdate& u,
                              Outbox* outbox) {
  v1::RestorePlan& plan = a.restore_plan;
  const Active::Operation op = a.operations.at(node);  // RunsAttempt said it is there
  JobAttempt* attempt = AttemptOf(a, op.attempt);
  const bool active_restore = op.step == 3 || op.step == 4;
  const bool final = IsFinalJobState(u.phase());
  if (!final) {
    v1::RestoreNodeProgress* progress = ProgressOf(plan, node);
    if (u.phase() != v1::JOB_STATE_UNSPECIFIED) progress->set_state(u.phase());
    if (u.bytes_total() > 0) {
      progress->set_bytes_done(u.bytes_done());
      progress->set_bytes_total(u.bytes_total());
      progress->set_bytes_per_second(u.bytes_per_second());
      // The job's own figures are the sum over the nodes: the restores
      // running now and those already finished in this run of the plan.
      uint64_t done = a.finished_bytes, total = a.finished_bytes;
      double rate = 0;
      for (const auto& p : plan.progress()) {
        done += p.bytes_done();
        total += p.bytes_total();
        rate += p.bytes_per_second();
      }
      a.record.bytes_done = done;
      a.record.bytes_total = total;
      a.bytes_per_second = rate;
    }
    if (op.step == 7 && node == plan.active_node() && plan.check_generation() == 0 &&
        u.has_copy_result() && u.copy_result().generation() != 0) {
      // The active copy closed the check's generation: the passive copies'
      // digests start while it takes its own.
      plan.set_check_generation(u.copy_result().generation());
      Record(a, a.record.state,
             absl::StrCat("step 7: ", node, " closed generation ",
                          GenerationHex(plan.check_generation()),
                          " for the check; the passive copies replay through it"),
             op.attempt);
      AdvancePlan(a, outbox);
      attempt = AttemptOf(a, op.attempt);  // the attempts grew
    }
    v1::RestoreStep* restore = StepOf(plan, 3);
    if (active_restore && !plan.active_prepared() &&
        (u.phase() == v1::JOB_TRANSFERRING || u.phase() == v1::JOB_COMPLETING)) {
      // The writer accepted the active copy's restore: the passive copies'
      // restores start now.
      plan.set_active_prepared(true);
      AdvancePlan(a, outbox);
      attempt = AttemptOf(a, op.attempt);  // the attempts grew
    }
    if (active_restore && u.phase() == v1::JOB_COMPLETING && restore->state() != v1::STEP_DONE) {
      // The chain is in place; the writer replays and mounts.
      restore->set_state(v1::STEP_DONE);
      restore->set_ended_us(clock_->NowMicros());
      restore->add_done_nodes(node);
      v1::RestoreStep* replay = StepOf(plan, 4);
      replay->set_state(v1::STEP_RUNNING);
      replay->set_started_us(clock_->NowMicros());
      if (attempt != nullptr) attempt->state = JobState::kCompleting;
      Record(a, JobState::kCompleting,
             absl::StrCat("step 3 done: the chain is restored on ", node,
                          "; step 4: replaying and mounting"),
             op.attempt);
    } else if ((active_restore || op.repository_restore) && u.phase() == v1::JOB_TRANSFERRING &&
               attempt != nullptr && attempt->state != JobState::kTransferring) {
      attempt->state = JobState::kTransferring;
      Record(a, JobState::kTransferring,
             absl::StrCat("step ", op.step, ": restoring from the repository on ", node),
             op.attempt);
    } else {
      a.record.plan = plan.SerializeAsString();  // the nodes' progress, for watchers
      Changed(&a);
    }
    return false;
  }
  Ack(node, u.job(), u.attempt(), outbox);
  a.operations.erase(node);
  if (u.phase() == v1::JOB_SUCCEEDED && (active_restore || op.repository_restore)) {
    for (const auto& p : plan.progress()) {
      if (p.node() == node) a.finished_bytes += p.bytes_total();
    }
  }
  DropProgress(plan, node);
  if (attempt != nullptr) {
    attempt->state = u.phase() == v1::JOB_SUCCEEDED   ? JobState::kSucceeded
                     : u.phase() == v1::JOB_CANCELLED ? JobState::kCancelled
                                                      : JobState::kFailed;
    attempt->ended = clock_->Now();
    if (u.phase() != v1::JOB_SUCCEEDED) attempt->reason = u.error();
  }
  v1::RestoreStep* step = StepOfOperation(plan, op.step);
  if (u.phase() != v1::JOB_SUCCEEDED) {
    // A passive copy's restore from the repository that fails (or that its
    // agent gave up, shutting down) falls back to today's reseed; one
    // refused as superseded (its fencing token) does not: this plan no
    // longer holds the unit.
    const bool superseded = absl::StrContains(u.error(), "fencing token");
    if (op.repository_restore && !a.cancel_requested && !superseded && !plan.reseed()) {
      FallBackToReseed(a, node, op.attempt, u.error(), outbox);
      return IsFinal(a.record.state);
    }
    FailPlan(a, u.phase() == v1::JOB_CANCELLED ? JobState::kCancelled : JobState::kFailed,
             absl::StrCat(node, ": ", u.error()), outbox, step);
    return true;
  }
  if (a.cancel_requested) {
    // The operation finished before the cancel reached it: the plan stops here.
    step->add_done_nodes(node);
    FailPlan(a, JobState::kCancelled,
             absl::StrCat("cancelled by the operator (", node, " had finished its part of step ",
                          step->number(), ")"),
             outbox, step);
    return true;
  }
  if (active_restore) {
    plan.set_active_prepared(true);
    // Restored, replayed and mounted: both steps are done, whether or not
    // the "completing" progress update arrived (progress may be lost).
    const auto& r = u.restore_result();
    const int64_t now_us = clock_->NowMicros();
    for (uint32_t n : {3u, 4u}) {
      v1::RestoreStep* s = StepOf(plan, n);
      if (s->started_us() == 0) s->set_started_us(now_us);
      if (s->state() != v1::STEP_DONE) s->set_ended_us(now_us);
      s->set_state(v1::STEP_DONE);
      if (!Contains(s->done_nodes(), node)) s->add_done_nodes(node);
    }
    step = StepOf(plan, 4);
    plan.set_restored_generation(r.last_generation());
    step->set_detail(absl::StrCat("replayed through generation ",
                                  GenerationHex(r.last_generation()),
                                  r.message().empty() ? "" : absl::StrCat("; ", r.message())));
    Record(a, a.record.state, absl::StrCat("step 4 done on ", node, ": ", step->detail()),
           op.attempt);
    AdvancePlan(a, outbox);
    return IsFinal(a.record.state);
  }
  std::string said = u.has_copy_result() ? u.copy_result().message() : step->detail();
  if (op.repository_restore) {
    said = absl::StrCat("restored from the repository and replayed through generation ",
                        GenerationHex(u.restore_result().last_generation()), "; still suspended");
  }
  if (op.step == 7) {
    if (node == plan.active_node()) plan.set_check_generation(u.copy_result().generation());
    for (const auto& d : u.copy_result().digests()) {
      v1::CopyDigest* digest = plan.add_digests();
      digest->set_node(node);
      digest->set_database(d.database());
      digest->set_sha256(d.sha256());
      digest->set_generation(node == plan.active_node() ? u.copy_result().generation()
                                                        : d.generation());
      digest->set_items(d.items());
      digest->set_through_generation(d.through_generation());
    }
  }
  step->add_done_nodes(node);
  if (op.step == 5) {
    // How each passive copy got the restored data, for `job show`.
    step->set_detail(absl::StrCat(step->detail(), step->detail().empty() ? "" : "; ", node, ": ",
                                  op.repository_restore ? said : "reseeded from the active copy"));
  }
  Record(a, a.record.state, absl::StrCat("step ", step->number(), " on ", node, ": ", said),
         op.attempt);
  AdvancePlan(a, outbox);
  return IsFinal(a.record.state);
}

void JobManager::FallBackToReseed(Active& a, const std::string& node, int attempt,
                                  const std::string& why, Outbox* outbox) {
  // Today's way instead: from the active copy, once it is restored.
  v1::RestoreFallback* fallback = a.restore_plan.add_reseeded_from_active();
  fallback->set_node(node);
  fallback->set_reason(why);
  Record(a, a.record.state,
         absl::StrCat("step 5: the restore from the repository on ", node, " failed (", why, "); ",
                      node, " is reseeded from the restored active copy once it is mounted"),
         attempt);
  AdvancePlan(a, outbox);
}

void JobManager::LoseOperation(Active& a, const std::string& node, const std::string& reason,
                               Outbox* outbox, bool not_running) {
  auto it = a.operations.find(node);
  if (it == a.operations.end()) return;
  const Active::Operation op = it->second;
  a.operations.erase(it);
  DropProgress(a.restore_plan, node);
  JobAttempt* attempt = AttemptOf(a, op.attempt);
  if (attempt != nullptr) {
    attempt->state = JobState::kFailed;
    attempt->ended = clock_->Now();
    attempt->reason = reason;
  }
  const std::string lost = absl::StrCat("attempt ", op.attempt, " on ", node, " lost: ", reason);
  logging::Get("coordinator")->warn("job {} (unit {}): {}", a.record.id, a.record.unit, lost);
  if ((op.resend_if_lost || op.undelivered) && not_running && !a.cancel_requested) {
    // The operation in flight at a takeover, or one sent while its node
    // was not connected: the plan keeps its lease on the unit and sends the
    // step again. The agent has said it does not run the operation, so the
    // two cannot run at once. (One that went silent for a lease period
    // stops the plan: the agent may still run it.)
    a.restore_plan.set_resumed(a.restore_plan.resumed() + 1);
    Record(a, a.record.state,
           absl::StrCat(lost, op.undelivered
                                  ? "; it was sent while the node was not connected, so the "
                                    "step is sent again"
                                  : "; the coordinator took the plan over, so the step is "
                                    "sent again"),
           op.attempt);
    AdvancePlan(a, outbox);
    return;
  }
  if (op.repository_restore && !a.cancel_requested) {
    // A passive node gone quiet does not hold up the active copy's
    // restore: it is reseeded from the active copy once that is mounted
    // (and if the node is still away then, that stops the plan). The lost
    // attempt is told to stop, should its agent still run it; the reseed
    // waits for its writer session to end.
    if (auto channel = topology_->ChannelOf(node); channel && outbox != nullptr) {
      v1::CoordinatorMessage m;
      m.mutable_cancel()->set_job(a.record.id);
      m.mutable_cancel()->set_attempt(static_cast<uint32_t>(op.attempt));
      m.mutable_cancel()->set_reason(a.restore_plan.reseed()
                                         ? "the coordinator gave this attempt up; the reseed stops"
                                         : "the coordinator gave this attempt up; the copy is "
                                           "reseeded");
      outbox->emplace_back(channel, m);
    }
    // A reseed from the repository has nothing to fall back on: reading
    // the active copy instead is what its operator chose to avoid.
    if (a.restore_plan.reseed()) {
      FailPlan(a, JobState::kFailed, lost, outbox, StepOfOperation(a.restore_plan, op.step));
      return;
    }
    FallBackToReseed(a, node, op.attempt, lost, outbox);
    return;
  }
  FailPlan(a, a.cancel_requested ? JobState::kCancelled : JobState::kFailed, lost, outbox,
           StepOfOperation(a.restore_plan, op.step));
}

void JobManager::FailPlan(Active& a, JobState state, const std::string& reason, Outbox* outbox,
                          v1::RestoreStep* step) {
  v1::RestorePlan& plan = a.restore_plan;
  if (step == nullptr) step = FirstStepNotDone(plan);
  const uint32_t n = step == nullptr ? 7 : step->number();
  const int64_t now_us = clock_->NowMicros();
  if (step != nullptr) {
    step->set_state(v1::STEP_FAILED);
    step->set_ended_us(now_us);
    step->set_detail(reason);
  }
  // Operations still running elsewhere stop with the plan (a re-run does
  // them again).
  for (const auto& [node, op] : a.operations) {
    if (JobAttempt* attempt = AttemptOf(a, op.attempt);
        attempt != nullptr && !IsFinal(attempt->state)) {
      attempt->state = JobState::kCancelled;
      attempt->ended = clock_->Now();
      attempt->reason = absl::StrCat("the plan stopped at step ", n);
    }
    v1::RestoreStep* other = StepOfOperation(plan, op.step);
    if (other != step && !StepSettled(*other)) {
      other->set_state(v1::STEP_FAILED);
      other->set_ended_us(now_us);
      other->set_detail(absl::StrCat("stopped on ", node, " when step ", n, " failed"));
    }
    auto channel = outbox != nullptr ? topology_->ChannelOf(node) : nullptr;
    if (channel) {
      v1::CoordinatorMessage m;
      m.mutable_cancel()->set_job(a.record.id);
      m.mutable_cancel()->set_attempt(static_cast<uint32_t>(op.attempt));
      m.mutable_cancel()->set_reason(absl::StrCat("the restore plan stopped at step ", n));
      outbox->emplace_back(channel, m);
    }
  }
  a.operations.clear();
  plan.clear_progress();
  plan.set_next_action(NextSafeAction(plan, a.record.unit, n));
  logging::Get("coordinator")
      ->warn("restore {} of {} stopped at step {}: {}", a.record.id, a.record.unit, n, reason);
  Finish(a, state,
         absl::StrCat("stopped at step ", n, " (",
                      step != nullptr ? step->name() : std::string(RestoreStepName(n)),
                      "): ", reason, ". Next: ", plan.next_action()));
}

}  // namespace dagvault::coordinator
