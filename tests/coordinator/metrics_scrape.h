// HTTPS to a deployment's coordinator or agent with its certificates: GET
// /metrics for the tests that check metrics (rpo_status_test,
// tests/monitoring), and the console's API (tests/console). Needs the
// dagvault_metrics library (cpp-httplib and its compile flags).
#pragma once

#include <httplib.h>

#include <csignal>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "common/certs.h"
#include "tests/coordinator/deployment.h"

namespace dagvault::testing {

// The exposition at `address` (HOST:PORT), asked with the deployment's
// certificate `cert_name` (empty: none); "" when refused or not answered.
// An HTTPS client for `address` (HOST:PORT) of deployment `d` that trusts
// only the deployment CA and presents the certificate `cert_name` (empty:
// none); null for an address that is not HOST:PORT.
inline std::unique_ptr<httplib::SSLClient> DeploymentHttpsClient(const Deployment& d,
                                                                 const std::string& address,
                                                                 const std::string& cert_name) {
  // A server that refuses the handshake closes the socket under OpenSSL's
  // write: without this, SIGPIPE would end the test process.
  std::signal(SIGPIPE, SIG_IGN);
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return nullptr;
  }
  const auto files = CertificateFiles(d.certs(), cert_name);
  auto client = cert_name.empty()
                    ? std::make_unique<httplib::SSLClient>(address.substr(0, colon), port)
                    : std::make_unique<httplib::SSLClient>(address.substr(0, colon), port,
                                                           files.cert_file(), files.key_file());
  client->set_ca_cert_path(CertificateFiles(d.certs(), "admin").ca_file().c_str());
  client->enable_server_certificate_verification(true);
  return client;
}

inline std::string ScrapeMetrics(const Deployment& d, const std::string& address,
                                 const std::string& cert_name = "admin") {
  auto client = DeploymentHttpsClient(d, address, cert_name);
  if (!client) return "";
  auto r = client->Get("/metrics");
  if (!r || r->status != 200) return "";
  return r->body;
}

}  // namespace dagvault::testing
