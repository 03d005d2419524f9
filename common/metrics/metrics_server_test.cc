// The /metrics endpoint with real sockets and real TLS: a scraper with a
// certificate of the deployment CA (any role) is served; one without a
// certificate, or with another CA's, is not; plain text only on loopback.
#include "common/metrics/metrics_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <csignal>

#include "common/certs.h"
#include "common/testing/temp_dir.h"

namespace dagvault::metrics {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(CreateCa({.dir = certs_.path()}).ok());
    ASSERT_TRUE(IssueCertificate({.dir = certs_.path(),
                                  .name = "coordinator",
                                  .role = "coordinator",
                                  .sans = {"127.0.0.1"}})
                    .ok());
    ASSERT_TRUE(IssueCertificate({.dir = certs_.path(), .name = "viewer", .role = "admin"}).ok());
    ASSERT_TRUE(CreateCa({.dir = other_.path(), .deployment = "intruder"}).ok());
    ASSERT_TRUE(IssueCertificate({.dir = other_.path(), .name = "viewer", .role = "admin"}).ok());
    registry_.AddGauge("dagvault_test_units", "Units.").Set({}, 2);
  }

  // GET path over HTTPS with `client` (dir and name of a certificate; empty
  // dir: none). Returns the status, or -1 when no answer came.
  int HttpsGet(int port, const std::string& client_dir, const std::string& path,
               std::string* body) {
    // A refused handshake closes the socket under OpenSSL's write.
    std::signal(SIGPIPE, SIG_IGN);
    const auto own = CertificateFiles(certs_.path(), "viewer");
    std::unique_ptr<httplib::SSLClient> c;
    if (client_dir.empty()) {
      c = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    } else {
      const auto files = CertificateFiles(client_dir, "viewer");
      c = std::make_unique<httplib::SSLClient>("127.0.0.1", port, files.cert_file(),
                                               files.key_file());
    }
    c->set_ca_cert_path(own.ca_file().c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(5);
    auto r = c->Get(path.c_str());
    if (!r) return -1;
    if (body != nullptr) *body = r->body;
    return r->status;
  }

  TempDir certs_{"metrics-certs"}, other_{"metrics-other"};
  Registry registry_;
};

TEST_F(MetricsServerTest, HttpsServesScrapersWithACertificateOfTheDeploymentOnly) {
  dagvault::v1::MetricsConfig config;
  config.set_listen("127.0.0.1:0");
  auto server =
      MetricsServer::Start(config, CertificateFiles(certs_.path(), "coordinator"), &registry_);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->https_port();
  ASSERT_GT(port, 0);
  std::string body;
  EXPECT_EQ(HttpsGet(port, certs_.path(), "/metrics", &body), 200);
  EXPECT_THAT(body, HasSubstr("# TYPE dagvault_test_units gauge\ndagvault_test_units 2\n"));
  EXPECT_EQ(HttpsGet(port, certs_.path(), "/other", nullptr), 404);
  EXPECT_EQ(HttpsGet(port, "", "/metrics", nullptr), -1) << "no client certificate";
  EXPECT_EQ(HttpsGet(port, other_.path(), "/metrics", nullptr), -1) << "another CA's";
}

TEST_F(MetricsServerTest, PlainTextOnlyOnLoopback) {
  dagvault::v1::MetricsConfig config;
  config.set_plaintext_listen("127.0.0.1:0");
  auto server = MetricsServer::Start(config, {}, &registry_);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client c("127.0.0.1", (*server)->plaintext_port());
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(r->body, HasSubstr("dagvault_test_units 2"));

  config.set_plaintext_listen("0.0.0.0:0");
  auto refused = MetricsServer::Start(config, {}, &registry_);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("\"0.0.0.0:0\" is not a loopback address"));
  EXPECT_TRUE(IsLoopback("[::1]:9"));
  EXPECT_TRUE(IsLoopback("127.3.2.1:9"));
  EXPECT_TRUE(IsLoopback("localhost:9"));
  EXPECT_FALSE(IsLoopback("10.0.0.1:9"));
  EXPECT_FALSE(IsLoopback("nonsense"));
}

TEST_F(MetricsServerTest, HttpsWithoutTheDaemonsCertificateIsAConfigurationError) {
  dagvault::v1::MetricsConfig config;
  config.set_listen("127.0.0.1:0");
  auto missing = MetricsServer::Start(config, {}, &registry_);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("one is not configured"));
  auto files = CertificateFiles(certs_.path(), "nobody");
  auto absent = MetricsServer::Start(config, files, &registry_);
  EXPECT_THAT(std::string(absent.status().message()), HasSubstr("nobody.crt is missing"));
  config.set_listen("nowhere");
  auto bad =
      MetricsServer::Start(config, CertificateFiles(certs_.path(), "coordinator"), &registry_);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("\"nowhere\" is not HOST:PORT"));
}

}  // namespace
}  // namespace dagvault::metrics
