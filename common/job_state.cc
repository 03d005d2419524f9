#include "common/job_state.h"

namespace dagvault {

namespace v1 = dagvault::v1;

std::string JobStateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_QUEUED:
      return "queued";
    case v1::JOB_ASSIGNED:
      return "assigned";
    case v1::JOB_PREPARING:
      return "preparing";
    case v1::JOB_FROZEN:
      return "frozen";
    case v1::JOB_TRANSFERRING:
      return "transferring";
    case v1::JOB_VERIFYING:
      return "verifying";
    case v1::JOB_COMPLETING:
      return "completing";
    case v1::JOB_SUCCEEDED:
      return "succeeded";
    case v1::JOB_FAILED:
      return "failed";
    case v1::JOB_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

bool IsFinalJobState(v1::JobState state) {
  return state == v1::JOB_SUCCEEDED || state == v1::JOB_FAILED || state == v1::JOB_CANCELLED;
}

std::string JobKindName(v1::JobKind kind) {
  switch (kind) {
    case v1::JOB_BACKUP:
      return "backup";
    case v1::JOB_RESTORE:
      return "restore";
    case v1::JOB_COPY_OPERATION:
      return "copy operation";
    default:
      return "unknown";
  }
}

std::string RestoreStepStateName(v1::RestoreStepState state) {
  switch (state) {
    case v1::STEP_PENDING:
      return "pending";
    case v1::STEP_RUNNING:
      return "running";
    case v1::STEP_DONE:
      return "done";
    case v1::STEP_FAILED:
      return "failed";
    case v1::STEP_SKIPPED:
      return "skipped";
    default:
      return "unknown";
  }
}

std::string CopyOperationName(v1::CopyOperationKind op) {
  switch (op) {
    case v1::COPY_SUSPEND:
      return "suspend";
    case v1::COPY_DISMOUNT:
      return "dismount";
    case v1::COPY_RESEED:
      return "reseed";
    case v1::COPY_RESUME:
      return "resume";
    case v1::COPY_DIGEST:
      return "digest";
    default:
      return "unknown";
  }
}

}  // namespace dagvault
