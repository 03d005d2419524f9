#include "common/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <httplib.h>

#include <csignal>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace dagvault::metrics {

absl::Status SplitAddress(const std::string& address, const std::string& what, std::string* host,
                          int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), port) ||
      *port < 0 || *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " address \"", address, "\" is not HOST:PORT"));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  if (host->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " address \"", address, "\" has no host"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ServeHttp(httplib::Server& server, const std::string& address,
                              const std::string& what, std::thread* thread) {
  std::string host;
  int wanted = 0;
  if (absl::Status st = SplitAddress(address, what, &host, &wanted); !st.ok()) return st;
  const int port = wanted == 0 ? server.bind_to_any_port(host)
                               : (server.bind_to_port(host, wanted) ? wanted : -1);
  if (port <= 0) return absl::UnavailableError(absl::StrCat(what, ": cannot listen on ", address));
  *thread = std::thread([&server] { server.listen_after_bind(); });
  // httplib's stop() is a no-op until the listener runs: wait for it, so
  // that a server destroyed right away (an error later in Start) stops.
  for (int i = 0; i < 5000 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return port;
}

bool IsLoopback(const std::string& address) {
  std::string host;
  int port = 0;
  if (!SplitAddress(address, "metrics", &host, &port).ok()) return false;
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const dagvault::v1::MetricsConfig& config, const dagvault::v1::TlsFiles& tls,
    Registry* registry) {
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->registry_ = registry;
  // A scraper that goes away mid-answer must not kill the daemon: OpenSSL
  // writes to the socket without MSG_NOSIGNAL, so SIGPIPE is ignored
  // process-wide (the daemons take no other meaning from it).
  std::signal(SIGPIPE, SIG_IGN);
  if (!config.plaintext_listen().empty() && !IsLoopback(config.plaintext_listen())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics.plaintext_listen \"", config.plaintext_listen(),
        "\" is not a loopback address: plain-text metrics are for this machine only; use "
        "metrics.listen (HTTPS) for a remote Prometheus"));
  }
  if (!config.listen().empty()) {
    for (const std::string& f : {tls.cert_file(), tls.key_file(), tls.ca_file()}) {
      if (f.empty() || !PathExists(f)) {
        return absl::InvalidArgumentError(
            absl::StrCat("metrics.listen needs the daemon's tls certificate, key and CA; ",
                         f.empty() ? std::string("one is not configured") : f + " is missing"));
      }
    }
    // The CA given: a client must present a certificate it signed.
    auto https = std::make_unique<httplib::SSLServer>(
        tls.cert_file().c_str(), tls.key_file().c_str(), tls.ca_file().c_str());
    if (!https->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat("metrics.listen: the certificate ",
                                                     tls.cert_file(), " or key ", tls.key_file(),
                                                     " could not be loaded"));
    }
    s->https_ = std::move(https);
    if (absl::Status st =
            s->Listen(*s->https_, config.listen(), &s->https_port_, &s->https_thread_);
        !st.ok()) {
      return st;
    }
  }
  if (!config.plaintext_listen().empty()) {
    s->plaintext_ = std::make_unique<httplib::Server>();
    if (absl::Status st = s->Listen(*s->plaintext_, config.plaintext_listen(), &s->plaintext_port_,
                                    &s->plaintext_thread_);
        !st.ok()) {
      return st;
    }
  }
  return s;
}

absl::Status MetricsServer::Listen(httplib::Server& server, const std::string& address, int* port,
                                   std::thread* thread) {
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    auto text = registry_->Scrape();
    if (!text.ok()) {
      logging::Get("metrics")->error("a scrape failed: {}", text.status());
      response.status = 500;
      response.set_content(std::string(text.status().message()) + "\n", "text/plain");
      return;
    }
    response.set_content(*text, "text/plain; version=0.0.4; charset=utf-8");
  });
  auto bound = ServeHttp(server, address, "metrics", thread);
  if (!bound.ok()) return bound.status();
  *port = *bound;
  logging::Get("metrics")->info("serving /metrics on {} (port {}){}", address, *port,
                                &server == https_.get() ? " (HTTPS, client certificates of "
                                                          "the deployment CA)"
                                                        : " (plain HTTP, loopback)");
  return absl::OkStatus();
}

MetricsServer::~MetricsServer() {
  if (https_) https_->stop();
  if (plaintext_) plaintext_->stop();
  if (https_thread_.joinable()) https_thread_.join();
  if (plaintext_thread_.joinable()) plaintext_thread_.join();
}

}  // namespace dagvault::metrics
