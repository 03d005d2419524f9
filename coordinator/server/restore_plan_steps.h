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

// The same for a reseed from the repository (its steps 2 to 4 are skipped).
const char* ReseedStepName(uint32_t number);

// Whether a step is behind the plan: done, or skipped (not part of it).
inline bool StepSettled(const dagvault::v1::RestoreStep& step) {
  return step.state() == dagvault::v1::STEP_DONE || step.state() == dagvault::v1::STEP_SKIPPED;
}

// 0x0000002A.
std::string GenerationHex(uint32_t generation);

inline dagvault::v1::RestoreStep* StepOf(dagvault::v1::RestorePlan& plan, uint32_t number) {
  return plan.mutable_steps(static_cast<int>(number) - 1);
}

// The first step not done; nullptr when all are.
dagvault::v1::RestoreStep* FirstStepNotDone(dagvault::v1::RestorePlan& plan);

// The step `node`'s next operation belongs to: the first step whose
// predecessors are done, that acts on `node`, and that `node` has not
// finished; 0 when there is none.
uint32_t NextStepOfNode(dagvault::v1::RestorePlan& plan, const std::string& node);

}  // namespace dagvault::coordinator
