#include "coordinator/console/console_server.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <csignal>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/metrics/metrics_server.h"
#include "coordinator/console/console_assets.h"
#include "coordinator/server/access.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

constexpr char kApiPrefix[] = "/api/v1/";

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

// {"code": "PERMISSION_DENIED", "message": "..."}: the error's JSON.
std::string ErrorJson(const absl::Status& s) {
  std::string message;
  for (char c : s.message()) {
    if (c == '"' || c == '\\') {
      message += '\\';
      message += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&message, absl::StrFormat("\\u%04x", c));
    } else {
      message += c;
    }
  }
  return absl::StrCat("{\"code\":\"", absl::StatusCodeToString(s.code()), "\",\"message\":\"",
                      message, "\"}");
}

// One unary AdminApi method behind JSON.
template <typename Request, typename Response>
std::function<absl::Status(const AdminCaller&, const std::string&, std::string*)> Bind(
    AdminApi* api,
    absl::Status (AdminApi::*method)(const AdminCaller&, const Request&, Response*)) {
  return [api, method](const AdminCaller& caller, const std::string& json,
                       std::string* out) -> absl::Status {
    Request request;
    if (!json.empty()) {
      google::protobuf::util::JsonParseOptions options;
      options.ignore_unknown_fields = false;
      auto parsed = google::protobuf::util::JsonStringToMessage(json, &request, options);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("the request is not a ",
                                                       Request::descriptor()->full_name(),
                                                       " in JSON: ", parsed.message().as_string()));
      }
    }
    Response response;
    if (absl::Status s = (api->*method)(caller, request, &response); !s.ok()) return s;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    out->clear();
    auto printed = google::protobuf::util::MessageToJsonString(response, out, options);
    if (!printed.ok()) return absl::InternalError(printed.message().as_string());
    return absl::OkStatus();
  };
}

// The person behind a verified client certificate, if the browser sent one.
std::optional<PeerIdentity> CertificateIdentity(const httplib::Request& req) {
  if (req.ssl == nullptr) return std::nullopt;
  if (SSL_get_verify_result(req.ssl) != X509_V_OK) return std::nullopt;
  X509* cert = SSL_get1_peer_certificate(req.ssl);
  if (cert == nullptr) return std::nullopt;
  BIO* bio = BIO_new(BIO_s_mem());
  std::string pem;
  if (bio != nullptr && PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    if (n > 0) pem.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  X509_free(cert);
  auto id = IdentityOfPem(pem);
  if (!id.ok()) return std::nullopt;
  return *id;
}

}  // namespace

ConsoleServer::ConsoleServer(AdminApi* api, ConsoleTokens* tokens) : api_(api), tokens_(tokens) {
  handlers_["GetStatus"] = Bind(api, &AdminApi::GetStatus);
  handlers_["StartBackup"] = Bind(api, &AdminApi::StartBackup);
  handlers_["StartRestore"] = Bind(api, &AdminApi::StartRestore);
  handlers_["StartReseed"] = Bind(api, &AdminApi::StartReseed);
  handlers_["ListBackups"] = Bind(api, &AdminApi::ListBackups);
  handlers_["ShowChains"] = Bind(api, &AdminApi::ShowChains);
  handlers_["ListJobs"] = Bind(api, &AdminApi::ListJobs);
  handlers_["GetJob"] = Bind(api, &AdminApi::GetJob);
  handlers_["CancelJob"] = Bind(api, &AdminApi::CancelJob);
  handlers_["GetPolicy"] = Bind(api, &AdminApi::GetPolicy);
  handlers_["ListPolicies"] = Bind(api, &AdminApi::ListPolicies);
  handlers_["ListAudit"] = Bind(api, &AdminApi::ListAudit);
  // Policies, retention and catalog rebuild stay on the command line:
  // they are an admin's, and rare.
}

ConsoleServer::~ConsoleServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

ConsoleServer::Answer ConsoleServer::Call(const std::string& method, const AdminCaller& caller,
                                          const std::string& body, bool confirmed) {
  auto handler = handlers_.find(method);
  if (handler == handlers_.end()) {
    return {
        404,
        ErrorJson(absl::NotFoundError(absl::StrCat("the console's API has no method ", method)))};
  }
  // The admin API's own check, as for the command line.
  if (absl::Status allowed = AuthorizeAdminCall(method, caller.peer); !allowed.ok()) {
    api_->RecordRefusal(caller.peer, caller.via, method, allowed);
    return {403, ErrorJson(allowed)};
  }
  auto needed = RequiredRole(method);
  if (needed.ok() && *needed >= v1::ROLE_OPERATOR && !confirmed) {
    return {428, ErrorJson(absl::FailedPreconditionError(absl::StrCat(
                     method, " changes the deployment: confirm it (X-Dagvault-Confirm: yes)")))};
  }
  std::string out;
  absl::Status s = handler->second(caller, body, &out);
  if (!s.ok()) return {HttpStatusOf(s.code()), ErrorJson(s)};
  return {200, out};
}

absl::StatusOr<std::unique_ptr<ConsoleServer>> ConsoleServer::Start(const v1::ConsoleConfig& config,
                                                                    const v1::TlsFiles& tls,
                                                                    AdminApi* api,
                                                                    ConsoleTokens* tokens) {
  for (const std::string& f : {tls.cert_file(), tls.key_file(), tls.ca_file()}) {
    if (f.empty() || !PathExists(f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("console.listen needs the coordinator's tls certificate, key and CA; ",
                       f.empty() ? std::string("one is not configured") : f + " is missing"));
    }
  }
  // A browser that goes away mid-answer must not kill the coordinator.
  std::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<ConsoleServer> s(new ConsoleServer(api, tokens));
  // The client certificate is asked for but optional: a browser without
  // one logs in with a token instead.
  s->server_ = std::make_unique<httplib::SSLServer>([tls](SSL_CTX& ctx) {
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(&ctx, tls.cert_file().c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(&ctx, tls.key_file().c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(&ctx) != 1 ||
        SSL_CTX_load_verify_locations(&ctx, tls.ca_file().c_str(), nullptr) != 1) {
      return false;
    }
    SSL_CTX_set_client_CA_list(&ctx, SSL_load_client_CA_file(tls.ca_file().c_str()));
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
    // With peer verification on, OpenSSL refuses to resume a session
    // (browsers resume for every parallel connection) unless the server
    // names its session context.
    static const unsigned char kContext[] = "dagvault-console";
    SSL_CTX_set_session_id_context(&ctx, kContext, sizeof(kContext) - 1);
    return true;
  });
  if (!s->server_->is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("console.listen: the certificate ", tls.cert_file(), ", key ", tls.key_file(),
                     " or CA ", tls.ca_file(), " could not be loaded"));
  }
  httplib::SSLServer& server = *s->server_;
  server.set_default_headers({
      {"Content-Security-Policy",
       "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"Cache-Control", "no-store"},
  });
  for (const ConsoleAsset& asset : ConsoleAssets()) {
    const std::string path = asset.path == "/index.html" ? "/" : asset.path;
    server.Get(path, [&asset](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(asset.data, asset.size), asset.content_type);
    });
  }
  ConsoleServer* self = s.get();
  // Who is calling: a bearer token (checked first: a browser may hold both,
  // and the token is what the person chose for this tab), else a verified
  // client certificate; or the 401 to answer.
  auto authenticate = [self](const httplib::Request& req) -> absl::StatusOr<PeerIdentity> {
    const std::string auth = req.get_header_value("Authorization");
    if (absl::StartsWith(auth, "Bearer ")) {
      if (auto person = self->tokens_->Lookup(auth.substr(7))) return *person;
      return absl::UnauthenticatedError(
          "the console token is not valid or has expired: run `dagvault console login` again");
    }
    if (auto person = CertificateIdentity(req)) return *person;
    return absl::UnauthenticatedError(
        "the console needs a person: a client certificate of this deployment, or a token from "
        "`dagvault console login`");
  };
  // Requests are small: a body past 1 MiB is refused before it is read,
  // and an API request from nobody is refused before its body is read.
  server.set_payload_max_length(1 << 20);
  server.set_pre_routing_handler(
      [authenticate](const httplib::Request& req, httplib::Response& res) {
        if (!absl::StartsWith(req.path, kApiPrefix))
          return httplib::Server::HandlerResponse::Unhandled;
        auto who = authenticate(req);
        if (who.ok()) return httplib::Server::HandlerResponse::Unhandled;
        res.status = 401;
        res.set_content(ErrorJson(who.status()), "application/json");
        return httplib::Server::HandlerResponse::Handled;
      });
  server.Post(R"(/api/v1/(\w+))",
              [self, authenticate](const httplib::Request& req, httplib::Response& res) {
                auto who = authenticate(req);
                if (!who.ok()) {  // expired since the pre-routing check
                  res.status = 401;
                  res.set_content(ErrorJson(who.status()), "application/json");
                  return;
                }
                AdminCaller caller{*who, "console"};
                Answer a = self->Call(req.matches[1], caller, req.body,
                                      req.get_header_value("X-Dagvault-Confirm") == "yes");
                res.status = a.http_status;
                res.set_content(a.json, "application/json");
              });
  auto bound = metrics::ServeHttp(server, config.listen(), "console", &s->thread_);
  if (!bound.ok()) return bound.status();
  s->port_ = *bound;
  logging::Get("console")->info("serving the web console on {} (port {})", config.listen(),
                                s->port_);
  return s;
}

}  // namespace dagvault::coordinator
