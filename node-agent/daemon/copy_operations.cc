#include "node-agent/daemon/copy_operations.h"

#include <grpcpp/grpcpp.h>

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fault_injection.h"
#include "common/grpc_status.h"
#include "common/job_state.h"
#include "common/status_macros.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;

constexpr auto kCallDeadline = std::chrono::seconds(60);

template <typename Request, typename Response, typename Call>
absl::StatusOr<Response> Ask(Call call, const Request& request, const std::string& what) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  Response response;
  RETURN_IF_ERROR(FromGrpcStatus(call(&context, request, &response), what));
  return response;
}

absl::StatusOr<v1::UnitStatus> UnitOf(const CopyOperationContext& c, const std::string& unit) {
  v1::StatusRequest request;
  request.set_unit(unit);
  request.set_local_only(true);
  ASSIGN_OR_RETURN(
      v1::StatusResponse status,
      (Ask<v1::StatusRequest, v1::StatusResponse>(
          [&](auto* ctx, const auto& r, auto* out) { return c.admin->Status(ctx, r, out); },
          request, "mailstored Status")));
  for (const auto& u : status.units()) {
    if (u.unit() == unit) return u;
  }
  return absl::NotFoundError(absl::StrCat("unit ", unit, " has no copy on ", c.node));
}

absl::StatusOr<v1::CopyStatus> CopyOf(const CopyOperationContext& c, const std::string& unit) {
  ASSIGN_OR_RETURN(v1::UnitStatus u, UnitOf(c, unit));
  for (const auto& copy : u.copies()) {
    if (copy.node() == c.node) return copy;
  }
  return absl::NotFoundError(absl::StrCat("unit ", unit, " has no copy on ", c.node));
}

// Waits until `done` says the copy is there; fails if it fails, or when the
// job is cancelled.
template <typename Done>
absl::StatusOr<v1::CopyStatus> WaitForCopy(const CopyOperationContext& c, const std::string& unit,
                                           const std::string& phase, Done done) {
  std::optional<absl::Time> failed_since;
  while (true) {
    if (c.cancel != nullptr && c.cancel->load()) {
      return absl::CancelledError(absl::StrCat("stopped while waiting: ", phase));
    }
    ASSIGN_OR_RETURN(v1::CopyStatus copy, CopyOf(c, unit));
    // Failed and suspended is final (it needs an operator); plain Failed is
    // what a replication pass reports after any error (its active copy did
    // not answer in time, say), and the next pass may clear it.
    const bool failed = copy.state() == v1::FAILED;
    if (!failed) failed_since.reset();
    if (failed && !failed_since) failed_since = absl::Now();
    if (copy.state() == v1::FAILED_AND_SUSPENDED ||
        (failed && absl::Now() - *failed_since >= c.failed_grace)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the copy of ", unit, " on ", c.node, " failed while ", phase,
          failed ? absl::StrCat(" (for ", absl::FormatDuration(c.failed_grace), ")") : "", ": ",
          copy.message()));
    }
    if (!failed && done(copy)) return copy;
    if (c.progress) c.progress(phase);
    absl::SleepFor(c.poll_every);
  }
}

absl::Status AdminCall(const CopyOperationContext& c, const std::string& unit,
                       grpc::Status (v1::Admin::StubInterface::*method)(grpc::ClientContext*,
                                                                        const v1::UnitRequest&,
                                                                        v1::AdminResponse*),
                       const std::string& what, std::string* message) {
  v1::UnitRequest request;
  request.set_unit(unit);
  ASSIGN_OR_RETURN(
      v1::AdminResponse response,
      (Ask<v1::UnitRequest, v1::AdminResponse>(
          [&](auto* ctx, const auto& r, auto* out) { return (c.admin->*method)(ctx, r, out); },
          request, absl::StrCat("mailstored ", what))));
  *message = response.message();
  return absl::OkStatus();
}

// Adds the digest of every database of the unit to `result`.
absl::Status AddDigests(const CopyOperationContext& c, const std::string& unit,
                        const v1::UnitStatus& status, v1::CopyOperationResult* result) {
  for (const auto& database : status.databases()) {
    v1::DigestRequest request;
    request.set_unit(unit);
    request.set_database(database);
    ASSIGN_OR_RETURN(
        v1::DigestResponse d,
        (Ask<v1::DigestRequest, v1::DigestResponse>(
            [&](auto* ctx, const auto& r, auto* out) { return c.admin->Digest(ctx, r, out); },
            request, "mailstored Digest")));
    v1::CopyDigestResult* out = result->add_digests();
    out->set_database(database);
    out->set_sha256(d.sha256());
    out->set_generation(d.generation());
    out->set_items(d.items());
    out->set_through_generation(d.through_generation());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::CopyOperationResult> RunCopyOperation(const CopyOperationContext& c,
                                                         const std::string& unit,
                                                         const v1::CopyOperation& operation) {
  const v1::CopyOperationKind op = operation.op();
  // The fault matrix (tests/faults) holds a restore plan's steps 1, 2, 5, 6
  // and 7 here: agent.copy_op.suspend, .dismount, .reseed, .resume, .digest.
  DAGVAULT_CRASH_POINT(absl::StrCat("agent.copy_op.", CopyOperationName(op)));
  v1::CopyOperationResult result;
  std::string message;
  if (op == v1::COPY_SUSPEND) {
    RETURN_IF_ERROR(AdminCall(c, unit, &v1::Admin::StubInterface::Suspend, "Suspend", &message));
  } else if (op == v1::COPY_DISMOUNT) {
    RETURN_IF_ERROR(AdminCall(c, unit, &v1::Admin::StubInterface::Dismount, "Dismount", &message));
  } else if (op == v1::COPY_RESUME) {
    ASSIGN_OR_RETURN(v1::CopyStatus copy, CopyOf(c, unit));
    if (copy.state() == v1::SUSPENDED) {
      RETURN_IF_ERROR(AdminCall(c, unit, &v1::Admin::StubInterface::Resume, "Resume", &message));
    } else {
      message = absl::StrCat("unit ", unit, ": replication is not suspended (",
                             v1::CopyState_Name(copy.state()), ")");
    }
  } else if (op == v1::COPY_RESEED) {
    // Tests slow a restore here to stop it part-way (as in restore_job.cc).
    DAGVAULT_CRASH_POINT("agent.restore.step");
    // A copy still being restored from the repository (an earlier attempt
    // whose writer session has not ended yet) is asked again.
    const absl::Time give_up = absl::Now() + c.restoring_grace;
    absl::Status reseeded;
    while (true) {
      reseeded = AdminCall(c, unit, &v1::Admin::StubInterface::Reseed, "Reseed", &message);
      if (reseeded.ok() ||
          !absl::StrContains(reseeded.message(), "being restored from the repository") ||
          absl::Now() >= give_up || (c.cancel != nullptr && c.cancel->load())) {
        break;
      }
      if (c.progress) c.progress("waiting for a restore from the repository to end");
      absl::SleepFor(absl::Seconds(1));
    }
    if (!reseeded.ok() && c.cancel != nullptr && c.cancel->load()) {
      return absl::CancelledError("stopped while waiting for a restore from the repository to end");
    }
    RETURN_IF_ERROR(reseeded);
    ASSIGN_OR_RETURN(v1::CopyStatus copy,
                     WaitForCopy(c, unit, "reseeding", [](const v1::CopyStatus& s) {
                       // Its replay queue may stay: a lagged copy holds logs back
                       // on purpose. Step 7 waits for the replay it checks.
                       return s.state() == v1::HEALTHY && s.copy_queue() == 0 &&
                              s.last_replayed_generation() != 0;
                     }));
    result.set_generation(copy.last_replayed_generation());
    message = absl::StrFormat("unit %s: reseeded; Healthy, replayed through 0x%08X", unit,
                              copy.last_replayed_generation());
  } else if (op == v1::COPY_DIGEST) {
    ASSIGN_OR_RETURN(v1::UnitStatus status, UnitOf(c, unit));
    ASSIGN_OR_RETURN(v1::CopyStatus copy, CopyOf(c, unit));
    if (copy.role() == v1::ACTIVE) {
      if (copy.state() != v1::MOUNTED) {
        return absl::FailedPreconditionError(
            absl::StrCat("the active copy of ", unit, " on ", c.node, " is ",
                         v1::CopyState_Name(copy.state()), ", not Mounted"));
      }
      // What the passive copies can hold: everything up to a closed log.
      RETURN_IF_ERROR(AdminCall(c, unit, &v1::Admin::StubInterface::RollLog, "RollLog", &message));
      ASSIGN_OR_RETURN(copy, CopyOf(c, unit));
      result.set_generation(copy.last_log_generation());
      if (c.closed_generation) c.closed_generation(copy.last_log_generation());
    } else {
      const uint32_t want = operation.wait_for_generation();
      ASSIGN_OR_RETURN(copy, WaitForCopy(c, unit, absl::StrFormat("replaying through 0x%08X", want),
                                         [want](const v1::CopyStatus& s) {
                                           return s.last_replayed_generation() >= want;
                                         }));
      if (copy.state() != v1::HEALTHY) {
        return absl::FailedPreconditionError(absl::StrCat("the copy of ", unit, " on ", c.node,
                                                          " is ", v1::CopyState_Name(copy.state()),
                                                          ", not Healthy"));
      }
      result.set_generation(copy.last_replayed_generation());
    }
    RETURN_IF_ERROR(AddDigests(c, unit, status, &result));
    message = absl::StrFormat("unit %s: %d database digest(s) at generation 0x%08X", unit,
                              result.digests_size(), result.generation());
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown copy operation ", static_cast<int>(op),
        " (suspend, dismount, reseed, resume, digest): is this agent older than its coordinator?"));
  }
  result.set_message(message);
  return result;
}

}  // namespace dagvault::agent
