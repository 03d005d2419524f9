// The deployment's certificate authority (`dagvault certs init|issue`):
// a CA, and certificates signed by it for nodes, the coordinator and
// administrators, with OpenSSL. Keys are ECDSA P-256, written 0600.
//
//   <dir>/ca.crt, <dir>/ca.key         the deployment CA
//   <dir>/<name>.crt, <dir>/<name>.key  one per node, coordinator, admin
//
// The subject is CN=<name>, OU=<role>, O=dagvault: the common name is the
// identity the coordinator checks (a node's agent may act only for the
// node named in its certificate), the OU its role (common/tls.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dagvault/v1/options.pb.h"

namespace dagvault {

struct CaRequest {
  std::string dir;
  std::string deployment = "dagvault";  // in the CA's common name
  int days = 3650;
  bool force = false;  // replace an existing CA (every certificate must be reissued)
};

struct CertRequest {
  std::string dir;  // where the CA is, and where the certificate goes
  std::string name;
  std::string role;  // node, coordinator, admin, operator or viewer
  // Subject alternative names besides the name itself: DNS names or IP
  // addresses, every one a client dials to reach the holder (localhost
  // and 127.0.0.1 only if given here).
  std::vector<std::string> sans;
  int days = 825;
};

absl::Status CreateCa(const CaRequest& request);
absl::Status IssueCertificate(const CertRequest& request);

// The TLS files of certificate `name` in a folder laid out as above:
// <dir>/ca.crt, <dir>/<name>.crt, <dir>/<name>.key.
dagvault::v1::TlsFiles CertificateFiles(const std::string& dir, const std::string& name);

// When the PEM certificate at `path` expires (for the expiry metric).
absl::StatusOr<absl::Time> CertificateNotAfter(const std::string& path);

}  // namespace dagvault
