// The web console (docs/console.md): the coordinator serves a single-page
// application and a JSON API over HTTPS with its own certificate.
//
//   GET  /, /app.js, /app.css    the application, built into the binary
//   POST /api/v1/<Method>        one admin API method (admin.proto): the
//                                request and the answer are its messages
//                                in protobuf's JSON mapping
//
// Every API call needs a person: a client certificate of the deployment
// CA with a person's role, or `Authorization: Bearer <token>` from
// `dagvault console login`; anything else is 401. The role check is the
// admin API's own (access.h), and each call goes through AdminApi, so
// the audit log and job events name the person "through the web
// console". An action (a method that needs operator or admin) also needs
// the header `X-Dagvault-Confirm: yes`, which the application sends only
// after the person confirms it; without it the answer is 428.
//
// The application carries no data: it is served to anyone, and reads
// everything through the API.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "coordinator/console/console_tokens.h"
#include "coordinator/server/admin_api.h"
#include "dagvault/v1/admin.pb.h"

namespace httplib {
class SSLServer;
}

namespace dagvault::coordinator {

class ConsoleServer {
 public:
  // Listens on config.listen with the coordinator's certificate `tls`.
  static absl::StatusOr<std::unique_ptr<ConsoleServer>> Start(
      const dagvault::v1::ConsoleConfig& config, const dagvault::v1::TlsFiles& tls, AdminApi* api,
      ConsoleTokens* tokens);
  ~ConsoleServer();

  int port() const { return port_; }

  // One API call as the HTTP handler makes it (exposed for tests): the
  // status and the JSON answer (or {"code", "message"} on an error).
  struct Answer {
    int http_status = 200;
    std::string json;
  };
  Answer Call(const std::string& method, const AdminCaller& caller, const std::string& body,
              bool confirmed);

 private:
  ConsoleServer(AdminApi* api, ConsoleTokens* tokens);

  using Handler =
      std::function<absl::Status(const AdminCaller&, const std::string& json, std::string* out)>;

  AdminApi* const api_;
  ConsoleTokens* const tokens_;
  std::map<std::string, Handler> handlers_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace dagvault::coordinator
