// The restore requests of the command line (`dagvault restore start`,
// `dagvault restore items`) built from their flags, and how an item-level
// restore's plan prints.
#pragma once

#include <ostream>

#include "absl/status/statusor.h"
#include "common/cli_args.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::cli {

absl::StatusOr<dagvault::v1::StartRestoreRequest> RestoreStartRequest(const CliArgs& args);
absl::StatusOr<dagvault::v1::StartRestoreRequest> RestoreItemsRequest(const CliArgs& args);
void PrintItemRestorePlan(const dagvault::v1::RestorePlan& plan, std::ostream& out);

}  // namespace dagvault::cli
