// `dagvault console login [--ttl 8h]`: a short-lived token for the web
// console, carrying the caller's own name and role, and the address to
// open (docs/console.md).
#pragma once

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "common/cli_args.h"
#include "dagvault/v1/admin.grpc.pb.h"

namespace dagvault::cli {

absl::Status ConsoleCommand(dagvault::v1::CoordinatorAdmin::Stub& stub, const CliArgs& args,
                            const std::string& coordinator_address, std::ostream& out);

}  // namespace dagvault::cli
