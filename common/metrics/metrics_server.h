// Serves a Registry's exposition at GET /metrics (docs/monitoring.md): over
// HTTPS with the daemon's certificate, to scrapers that present a
// certificate of the deployment CA (any role); and/or over plain HTTP on a
// loopback address only. Anything but GET /metrics is 404.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/metrics/registry.h"
#include "dagvault/v1/options.pb.h"

namespace httplib {
class Server;
}

namespace dagvault::metrics {

class MetricsServer {
 public:
  // Listens where `config` says (a port of 0 picks one); `tls` is the
  // daemon's own certificate, key and CA. Nothing configured: a server
  // that serves nothing. Errors name the address or file at fault.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const dagvault::v1::MetricsConfig& config, const dagvault::v1::TlsFiles& tls,
      Registry* registry);
  ~MetricsServer();

  // The ports bound (0 when not configured).
  int https_port() const { return https_port_; }
  int plaintext_port() const { return plaintext_port_; }

 private:
  MetricsServer() = default;
  absl::Status Listen(httplib::Server& server, const std::string& address, int* port,
                      std::thread* thread);

  Registry* registry_ = nullptr;
  std::unique_ptr<httplib::Server> https_, plaintext_;
  std::thread https_thread_, plaintext_thread_;
  int https_port_ = 0, plaintext_port_ = 0;
};

// Whether HOST in HOST:PORT is a loopback address (127.0.0.0/8, ::1, or
// "localhost").
bool IsLoopback(const std::string& address);

// HOST:PORT or [V6]:PORT, for a listener; `what` names it in errors
// ("metrics", "console").
absl::Status SplitAddress(const std::string& address, const std::string& what, std::string* host,
                          int* port);

// Binds `server` to `address` (port 0 picks one) and runs it on `thread`;
// returns once it serves, with the port bound.
absl::StatusOr<int> ServeHttp(httplib::Server& server, const std::string& address,
                              const std::string& what, std::thread* thread);

}  // namespace dagvault::metrics
