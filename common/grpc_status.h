// The one place where absl::Status and grpc::Status convert (their codes
// are the same numbers).
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dagvault {

grpc::Status ToGrpcStatus(const absl::Status& status);

// `context` names the call, e.g. "node2 FetchLog": it goes in front of the
// message so the operator knows which hop failed.
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view context);

}  // namespace dagvault
