// The restore requests of the command line (`dagvault restore start`,
// `dagvault restore items`, `dagvault restore verify`) built from their
// flags, and how an item-level restore's and a verification's plans print.
#pragma once

#include <ostream>

#include "absl/status/statusor.h"
#include "common/cli_args.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::cli {

absl::StatusOr<dagvault::v1::StartRestoreRequest> RestoreStartRequest(const CliArgs& args);
absl::StatusOr<dagvault::v1::StartRestoreRequest> RestoreItemsRequest(const CliArgs& args);
void PrintItemRestorePlan(const dagvault::v1::RestorePlan& plan, std::ostream& out);
// `dagvault restore verify` (issue 20 §2).
absl::StatusOr<dagvault::v1::StartRestoreRequest> RestoreVerifyRequest(const CliArgs& args);
void PrintVerificationPlan(const dagvault::v1::RestorePlan& plan, std::ostream& out);
// One verification in a line, for `chain show`: "verified ... passed" or
// "... FAILED: the first problem".
std::string VerificationLine(const dagvault::v1::RestoreVerification& v);

}  // namespace dagvault::cli
