// `dagvault status` (docs/monitoring.md): the units outside their RPO and
// why, first; then nodes, copies that need attention, leases, running and
// queued jobs. It fails (exit 1) when a unit is critical or was never
// backed up under an RPO, so it can run from cron or a monitoring check;
// --json prints the same as data, with the same exit status.
#pragma once

#include <ostream>

#include "absl/status/status.h"
#include "common/cli_args.h"
#include "dagvault/v1/admin.grpc.pb.h"

namespace dagvault::cli {

absl::Status StatusCommand(dagvault::v1::CoordinatorAdmin::Stub& stub, const CliArgs& args,
                           std::ostream& out);

}  // namespace dagvault::cli
