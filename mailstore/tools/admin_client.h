// Helpers for mailstore-util's commands that talk to a running mailstored.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cli_args.h"
#include "common/copy_state.h"
#include "dagvault/v1/store.pb.h"

namespace dagvault::mailstore {

// --server, or the MAILSTORE_SERVER environment variable.
absl::StatusOr<std::string> ServerAddress(const CliArgs& args);
std::shared_ptr<grpc::Channel> ServerChannel(const std::string& address);
std::unique_ptr<grpc::ClientContext> ClientContext(absl::Duration timeout);

// The operator's names of copy states (Exchange's spelling).
using ::dagvault::CopyStateName;
// The status of every unit as a table, one line per copy.
std::string FormatStatus(const dagvault::v1::StatusResponse& status);

// digest --server ADDR --unit U [--database D]...
int CmdServerDigest(const CliArgs& parsed, std::ostream& out, std::ostream& err);

}  // namespace dagvault::mailstore
