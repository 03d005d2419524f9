// Who may call what on the coordinator's port (docs/security.md).
//
// People hold certificates with one of three roles: viewer (reads),
// operator (and starts backups and restores, cancels jobs) and admin
// (and policies, retention, catalog rebuild). Each admin RPC declares the
// least role it needs with the `required_role` method option
// (proto/dagvault/v1/options.proto); AuthorizeAdminCall reads it from the
// generated descriptors, so the proto is the one place it is written.
//
// One check serves both ways in: every gRPC handler runs it first
// (AuthorizeCoordinatorCall, through Coordinator::Refuse), and the web
// console runs it for each call it makes for a person.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tls.h"
#include "dagvault/v1/admin.pb.h"
#include "dagvault/v1/options.pb.h"

namespace dagvault::coordinator {

// The person's role carried by a certificate's OU; ACCESS_ROLE_UNSPECIFIED
// for a node's or coordinator's certificate (they are not people).
dagvault::v1::AccessRole AccessRoleOf(absl::string_view certificate_role);
// "viewer", "operator", "admin".
std::string AccessRoleName(dagvault::v1::AccessRole role);

// The least role `method` needs: "GetStatus", or the gRPC path
// "/dagvault.v1.CoordinatorAdmin/GetStatus". NotFound for a method the
// admin service does not have; Internal for one without the option.
absl::StatusOr<dagvault::v1::AccessRole> RequiredRole(absl::string_view method);

// OK when `caller` may call `method`; PermissionDenied naming the caller,
// the method and the role it needs otherwise.
absl::Status AuthorizeAdminCall(absl::string_view method, const PeerIdentity& caller);

// The short method name of a gRPC path: "/pkg.Service/Method" → "Method".
absl::string_view MethodOfPath(absl::string_view path);

// Whether `caller` may make the call at `path` ("/pkg.Service/Method") on
// the coordinator's port:
//   the admin service:   AuthorizeAdminCall;
//   the agent service:   a node's certificate (the service itself checks
//                        that the node is the one it speaks for);
//   the health service:  any certificate of the deployment;
//   anything else:       refused.
// Coordinator::Refuse runs it at the start of every handler of the port's
// services (the TLS front, common/tls_front.h, leaves gRPC no auth context
// to run it in beforehand).
absl::Status AuthorizeCoordinatorCall(absl::string_view path, const PeerIdentity& caller);

}  // namespace dagvault::coordinator
