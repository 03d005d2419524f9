// Mutual TLS for every TCP connection of a deployment (DESIGN.md §4): one
// deployment CA signs a certificate per node, per coordinator and per
// administrator (`dagvault certs`, common/certs.h). A peer's identity is
// its certificate: the common name is the node's (or person's) name, and
// the organisational unit is its role.
//
// Plain text is for development only: it needs an explicit insecure_dev
// (--insecure-dev) and is logged as a warning each time it is used.
#pragma once

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>
#include <openssl/types.h>

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dagvault/v1/options.pb.h"

namespace dagvault {

// The roles a certificate carries in its organisational unit (OU).
inline constexpr char kRoleNode[] = "node";
inline constexpr char kRoleCoordinator[] = "coordinator";
inline constexpr char kRoleAdmin[] = "admin";
// People who may start and cancel jobs, and people who may only read
// (coordinator/server/access.h; the admin API's roles in options.proto).
inline constexpr char kRoleOperator[] = "operator";
inline constexpr char kRoleViewer[] = "viewer";

// Server credentials that require and verify a client certificate signed
// by the deployment CA. With `insecure_dev`, plain text (and a warning).
// `what` names the listener in errors and the warning.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const dagvault::v1::TlsFiles& files, bool insecure_dev, const std::string& what);

struct PeerIdentity {
  bool authenticated = false;  // false on a plain-text (insecure-dev) connection
  std::string common_name;
  std::string role;  // the certificate's OU

  // "node2 (node)", or "an unauthenticated peer".
  std::string Describe() const;
};

// Whom a client accepts at the other end: a certificate of the deployment
// CA is not enough, its role must be `role` and, if `common_name` is set,
// its name too (mailstored's replication client dials one named peer).
struct ExpectedPeer {
  std::string role;
  std::string common_name;  // empty: any name with the role

  // "a coordinator", "node2 (node)".
  std::string Describe() const;
};

// OK if `peer` is `expected`, else PermissionDenied naming `address`, who
// answered there and who was expected.
absl::Status CheckPeer(const PeerIdentity& peer, const ExpectedPeer& expected,
                       absl::string_view address);

// Channel credentials presenting this end's certificate, trusting only the
// deployment CA, checking the server's host name against its certificate,
// and refusing during the TLS handshake a server that is not `expected`
// (CheckPeer), so not a byte of a request reaches it. The agent, the CLI
// and mailstored's replication client all pin their server this way.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const dagvault::v1::TlsFiles& files, bool insecure_dev, const std::string& what,
    const ExpectedPeer& expected);

// Who is on the other end of a call, from its verified certificate.
PeerIdentity PeerOf(const grpc::ServerContextBase& context);
// The same, from the connection's auth context (an AuthMetadataProcessor's).
PeerIdentity PeerOfAuthContext(const grpc::AuthContext& auth);

// The common name and OU of a PEM certificate.
absl::StatusOr<PeerIdentity> IdentityOfPem(const std::string& pem);
// The same of a certificate OpenSSL has verified.
PeerIdentity IdentityOfCertificate(X509* cert);

// The PEM files of a TlsFiles, read, or an error naming the one missing or
// unreadable. `what` names their user in errors.
struct TlsPems {
  std::string ca, cert, key;
};
absl::StatusOr<TlsPems> LoadTlsPems(const dagvault::v1::TlsFiles& files, const std::string& what);

// For server credentials: every call must come from a certificate with
// `role` whose common name is one of `names` (mailstored accepts only its
// peer nodes on the replication port). Others are refused as
// UNAUTHENTICATED, naming who they are.
std::shared_ptr<grpc::AuthMetadataProcessor> AllowOnly(std::string role,
                                                       std::set<std::string> names);

// Reads a whole file, naming it in the error.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& field);

}  // namespace dagvault
