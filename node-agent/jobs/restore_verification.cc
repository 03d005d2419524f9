#include "node-agent/jobs/restore_verification.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "node-agent/jobs/item_restore.h"

namespace dagvault::agent {

namespace v1 = dagvault::v1;

absl::Status RunRestoreVerification(
    v1::Writer::StubInterface& writer, const VerificationTarget& target,
    const std::function<absl::StatusOr<RestoreJobResult>()>& restore_chain,
    v1::VerificationOutcome* outcome) {
  auto log = logging::Get("agent.verify");
  v1::VerificationOutcome& out = *outcome;
  out.Clear();
  RemoveLeftoverRecoveryDatabases(writer, target.unit, target.leftovers, "restore verification");
  const absl::Time started = absl::Now();
  absl::StatusOr<RestoreJobResult> restored = restore_chain();
  if (!restored.ok()) {
    // A chunk that does not authenticate, a file whose bytes do not hash
    // to what its backup recorded, a log that does not replay: the restore
    // says which, and in which backup.
    out.add_problems(std::string(restored.status().message()));
    out.set_restore_us(absl::ToInt64Microseconds(absl::Now() - started));
    // Stopped by something other than the data: it proves nothing either
    // way (a damaged or missing chunk, a digest that does not match, a log
    // that does not replay are DataLoss, NotFound, FailedPrecondition...).
    switch (restored.status().code()) {
      case absl::StatusCode::kCancelled:
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kDeadlineExceeded:
      case absl::StatusCode::kResourceExhausted:
      case absl::StatusCode::kAborted:
        out.set_inconclusive(true);
        break;
      default:
        break;
    }
  } else {
    const v1::RestoreCompleteResponse& completed = restored->completed;
    out.set_files(restored->files);
    out.set_bytes(restored->bytes);
    out.set_last_generation(restored->last_generation);
    out.set_restore_us(absl::ToInt64Microseconds(restored->transfer) + completed.replay_us());
    out.set_check_us(completed.check_us());
    for (const v1::DatabaseCheck& c : completed.checked()) {
      *out.add_databases() = c;
      for (const std::string& p : c.problems()) out.add_problems(p);
    }
    if (completed.checked_size() == 0) {
      out.add_problems("the writer ran no checks (mailstored too old for restore verification?)");
    } else if (!completed.mounted() && out.problems_size() == 0) {
      out.add_problems(
          absl::StrCat("recovery database ", target.recovery_database, " was not mounted"));
    }
  }
  absl::StatusOr<std::string> removed = RemoveJobRecoveryDatabase(writer, target.recovery_database);
  if (removed.ok() || removed.status().code() == absl::StatusCode::kNotFound) {
    out.set_recovery_database_removed(true);
  } else {
    // The data was verified or not whatever happens here; the leftover is
    // removed by the next verification of the unit, or at mailstored's
    // next start.
    out.set_removal_problem(std::string(removed.status().message()));
    log->warn("unit {}: recovery database {} could not be removed: {}", target.unit,
              target.recovery_database, removed.status().message());
  }
  out.set_passed(out.problems_size() == 0);
  if (out.passed()) {
    log->info("unit {}: restore verified through generation 0x{:08X} on {}: {} files, {} bytes",
              target.unit, out.last_generation(), target.node, out.files(), out.bytes());
    return absl::OkStatus();
  }
  const std::string more =
      out.problems_size() > 1 ? absl::StrCat(" (and ", out.problems_size() - 1, " more)") : "";
  // A restore that failed keeps its code (a cancellation stays one); what
  // the checks found is data loss.
  return absl::Status(restored.ok() ? absl::StatusCode::kDataLoss : restored.status().code(),
                      absl::StrCat("restore verification of unit ", target.unit,
                                   " failed: ", out.problems(0), more));
}

}  // namespace dagvault::agent
