// `dagvault audit list [--identity NAME] [--limit N]`: who did what
// through the admin API and the console, and which calls were refused,
// newest first (coordinator/server/admin_api.h).
#pragma once

#include <ostream>

#include "absl/status/status.h"
#include "common/cli_args.h"
#include "dagvault/v1/admin.grpc.pb.h"

namespace dagvault::cli {

absl::Status AuditCommand(dagvault::v1::CoordinatorAdmin::Stub& stub, const CliArgs& args,
                          std::ostream& out);

}  // namespace dagvault::cli
