// The seven steps of an all-copies restore (restore_plan.cc starts a plan,
// restore_plan_run.cc runs it): their names, and how a plan's steps are
// found and ordered.
#pragma once

#include <cstdint>
#include <string>

#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

// "suspend replication on every passive copy", ... by step number (1..7).
const char* RestoreStepName(uint32_t number);

// 0x0000002A.
std::string GenerationHex(uint32_t generation);

inline dagvault::v1::RestoreStep* StepOf(dagvault::v1::RestorePlan& plan, uint32_t number) {
  return plan.mutable_steps(static_cast<int>(number) - 1);
}

// The first step not done; nullptr when all are.
dagvault::v1::RestoreStep* FirstStepNotDone(dagvault::v1::RestorePlan& plan);

// Whether every step `number` waits for is done. Steps 1 and 2 run in
// order; the active copy's restore (3, then 4) and the passive copies'
// restores from the repository (5) run at once after 2; 6 waits for 4 and
// 5, 7 for 6.
bool StepCanRun(dagvault::v1::RestorePlan& plan, uint32_t number);

// The step `node`'s next operation belongs to: the first step whose
// predecessors are done, that acts on `node`, and that `node` has not
// finished; 0 when there is none.
uint32_t NextStepOfNode(dagvault::v1::RestorePlan& plan, const std::string& node);

// Whether `node`'s restore from the repository failed and step 5 reseeds it
// from the active copy instead.
bool ReseededFromActive(const dagvault::v1::RestorePlan& plan, const std::string& node);

// What is safe to do when the plan stopped at `step`.
std::string NextSafeAction(const dagvault::v1::RestorePlan& plan, const std::string& unit,
                           uint32_t step);

}  // namespace dagvault::coordinator
