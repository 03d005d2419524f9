// Mutual TLS end to end on a real socket: a CA and certificates from
// common/certs.h, a gRPC server that requires client certificates, and
// clients with the right, no, and a foreign certificate.
#include "common/tls.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include "common/certs.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "dagvault/v1/writer.grpc.pb.h"

namespace dagvault {
namespace {

namespace v1 = dagvault::v1;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Answers GetMetadata with the caller's identity, as the coordinator sees it.
class WhoAmI final : public v1::Writer::Service {
 public:
  std::atomic<int> calls{0};

 private:
  grpc::Status GetMetadata(grpc::ServerContext* context, const v1::GetMetadataRequest*,
                           v1::WriterMetadata* response) override {
    ++calls;
    const PeerIdentity peer = PeerOf(*context);
    response->set_node(peer.authenticated ? peer.common_name + "/" + peer.role : "anonymous");
    return grpc::Status::OK;
  }
};

// A gRPC server on 127.0.0.1 presenting the certificate `name`.
class TestServer {
 public:
  TestServer(const std::string& dir, const std::string& name) {
    auto creds = MakeServerCredentials(CertificateFiles(dir, name), false, "test listener");
    EXPECT_TRUE(creds.ok()) << creds.status();
    if (!creds.ok()) return;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    EXPECT_TRUE(server_ != nullptr);
  }
  ~TestServer() {
    if (server_) server_->Shutdown();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Calls that reached the service.
  int calls() const { return service_.calls; }

 private:
  WhoAmI service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

grpc::Status CallAt(const std::string& address, std::shared_ptr<grpc::ChannelCredentials> creds,
                    std::string* who) {
  auto stub = v1::Writer::NewStub(grpc::CreateChannel(address, std::move(creds)));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::WriterMetadata response;
  grpc::Status s = stub->GetMetadata(&context, {}, &response);
  *who = response.node();
  return s;
}

// The deployment's clients dial 127.0.0.1 here; a SAN names it.
const std::vector<std::string> kLoopback = {"127.0.0.1"};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(CreateCa({.dir = dir_.path()}).ok());
    for (const auto& [name, role] : std::vector<std::pair<std::string, std::string>>{
             {"coord", "coordinator"}, {"node1", "node"}, {"node2", "node"}, {"node3", "node"}}) {
      ASSERT_TRUE(
          IssueCertificate({.dir = dir_.path(), .name = name, .role = role, .sans = kLoopback})
              .ok());
    }
    server_ = std::make_unique<TestServer>(dir_.path(), "coord");
  }

  grpc::Status Call(std::shared_ptr<grpc::ChannelCredentials> creds, std::string* who) {
    return CallAt(server_->address(), std::move(creds), who);
  }

  // Channel credentials of `name`, pinned to `expected`.
  std::shared_ptr<grpc::ChannelCredentials> Pinned(const std::string& name,
                                                   const ExpectedPeer& expected) {
    auto creds =
        MakeChannelCredentials(CertificateFiles(dir_.path(), name), false, "test client", expected);
    EXPECT_TRUE(creds.ok()) << creds.status();
    return creds.ok() ? *creds : grpc::InsecureChannelCredentials();
  }

  testing::TempDir dir_{"tls"};
  std::unique_ptr<TestServer> server_;
};

TEST_F(TlsTest, AClientWithADeploymentCertificateIsKnownByItsNameAndRole) {
  std::string who;
  grpc::Status s = Call(Pinned("node2", {.role = kRoleCoordinator}), &who);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(who, "node2/node");
}

TEST_F(TlsTest, AClientWithoutACertificateIsRefused) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = *ReadFileToString(JoinPath(dir_.path(), "ca.crt"));
  std::string who;
  EXPECT_FALSE(Call(grpc::SslCredentials(options), &who).ok());
  EXPECT_FALSE(Call(grpc::InsecureChannelCredentials(), &who).ok());
}

TEST_F(TlsTest, ACertificateFromAnotherCaIsRefused) {
  testing::TempDir other("tls_other");
  ASSERT_TRUE(CreateCa({.dir = other.path(), .deployment = "intruder"}).ok());
  ASSERT_TRUE(IssueCertificate({.dir = other.path(), .name = "node2", .role = "node"}).ok());
  // The intruder trusts our CA, so only the server's check can refuse it.
  v1::TlsFiles files = CertificateFiles(other.path(), "node2");
  files.set_ca_file(JoinPath(dir_.path(), "ca.crt"));
  auto creds = MakeChannelCredentials(files, false, "intruder", {.role = kRoleCoordinator});
  ASSERT_TRUE(creds.ok());
  std::string who;
  EXPECT_FALSE(Call(*creds, &who).ok());
}

TEST_F(TlsTest, AClientPinnedToTheCoordinatorRefusesANodeAndNamesWhoAnswered) {
  // A node's certificate is of the same CA and names 127.0.0.1 too.
  TestServer node3(dir_.path(), "node3");
  std::string who;
  grpc::Status refused = CallAt(node3.address(), Pinned("node2", {.role = kRoleCoordinator}), &who);
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(refused.error_message(), HasSubstr("presents the certificate of node3 (node), "
                                                 "expected a coordinator"));
  EXPECT_EQ(node3.calls(), 0) << "the request reached the wrong server";
  grpc::Status accepted = Call(Pinned("node2", {.role = kRoleCoordinator}), &who);
  ASSERT_TRUE(accepted.ok()) << accepted.error_message();
  EXPECT_EQ(who, "node2/node");
}

TEST_F(TlsTest, AReplicationClientAcceptsOnlyTheNodeItMeantToReach) {
  TestServer node2(dir_.path(), "node2");
  TestServer node3(dir_.path(), "node3");
  const ExpectedPeer want_node2{.role = kRoleNode, .common_name = "node2"};
  std::string who;
  // node1 dials what it believes is node2's address, and node3 answers.
  grpc::Status refused = CallAt(node3.address(), Pinned("node1", want_node2), &who);
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(refused.error_message(), HasSubstr("presents the certificate of node3 (node), "
                                                 "expected node2 (node)"));
  EXPECT_EQ(node3.calls(), 0) << "the request reached the wrong peer";
  // The coordinator's certificate is no node's either.
  EXPECT_FALSE(CallAt(server_->address(), Pinned("node1", want_node2), &who).ok());
  grpc::Status accepted = CallAt(node2.address(), Pinned("node1", want_node2), &who);
  ASSERT_TRUE(accepted.ok()) << accepted.error_message();
  EXPECT_EQ(who, "node1/node");
  EXPECT_EQ(node2.calls(), 1);
}

TEST_F(TlsTest, ThePinnedClientStillChecksTheServersHostName) {
  // node4 is the expected peer, but its certificate does not name the
  // address dialled.
  ASSERT_TRUE(IssueCertificate({.dir = dir_.path(), .name = "node4", .role = "node"}).ok());
  TestServer node4(dir_.path(), "node4");
  std::string who;
  EXPECT_FALSE(
      CallAt(node4.address(), Pinned("node1", {.role = kRoleNode, .common_name = "node4"}), &who)
          .ok());
  EXPECT_EQ(node4.calls(), 0);
}

TEST(Tls, CheckPeerNamesWhoAnsweredAndWhoWasExpected) {
  const PeerIdentity node3{.authenticated = true, .common_name = "node3", .role = "node"};
  EXPECT_TRUE(CheckPeer(node3, {.role = kRoleNode}, "a:1").ok());
  EXPECT_TRUE(CheckPeer(node3, {.role = kRoleNode, .common_name = "node3"}, "a:1").ok());
  absl::Status wrong_name = CheckPeer(node3, {.role = kRoleNode, .common_name = "node2"}, "a:1");
  EXPECT_EQ(wrong_name.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(wrong_name.message(),
            "refused: a:1 presents the certificate of node3 (node), expected node2 (node)");
  EXPECT_EQ(CheckPeer(node3, {.role = kRoleCoordinator}, "a:1").message(),
            "refused: a:1 presents the certificate of node3 (node), expected a coordinator");
  EXPECT_FALSE(CheckPeer(PeerIdentity(), {.role = kRoleNode}, "a:1").ok());
}

// The subject alternative names of a PEM certificate, as "DNS:x" or "IP:a.b.c.d".
std::vector<std::string> SansOf(const std::string& path) {
  std::vector<std::string> out;
  auto pem = ReadFileToString(path);
  if (!pem.ok()) return out;
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS) {
      out.push_back("DNS:" +
                    std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                                ASN1_STRING_length(n->d.dNSName)));
    } else if (n->type == GEN_IPADD && ASN1_STRING_length(n->d.iPAddress) == 4) {
      char text[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, ASN1_STRING_get0_data(n->d.iPAddress), text, sizeof(text));
      out.push_back(std::string("IP:") + text);
    } else {
      out.push_back("other");
    }
  }
  GENERAL_NAMES_free(names);
  X509_free(cert);
  return out;
}

TEST(Certs, SubjectAlternativeNamesAreTheNameAndWhatTheOperatorGivesOnly) {
  testing::TempDir dir("certs");
  ASSERT_TRUE(CreateCa({.dir = dir.path()}).ok());
  ASSERT_TRUE(IssueCertificate({.dir = dir.path(), .name = "node1", .role = "node"}).ok());
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
  const std::vector<std::string> plain = SansOf(JoinPath(dir.path(), "node1.crt"));
  // Not the issuing machine's host name, nor loopback names nobody asked for.
  EXPECT_THAT(plain, ElementsAre("DNS:node1")) << "this machine is " << host;
  EXPECT_THAT(plain, Not(Contains(std::string("DNS:") + host)));
  ASSERT_TRUE(IssueCertificate({.dir = dir.path(),
                                .name = "coordinator",
                                .role = "coordinator",
                                .sans = {"coord.example.net", "10.0.0.5", "coord.example.net"}})
                  .ok());
  EXPECT_THAT(SansOf(JoinPath(dir.path(), "coordinator.crt")),
              ElementsAre("DNS:coordinator", "DNS:coord.example.net", "IP:10.0.0.5"));
}

TEST(Certs, KeysArePrivateAndTheCaIsNotReplacedByAccident) {
  testing::TempDir dir("certs");
  ASSERT_TRUE(CreateCa({.dir = dir.path()}).ok());
  struct stat st {};
  ASSERT_EQ(::stat(JoinPath(dir.path(), "ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::Status again = CreateCa({.dir = dir.path()});
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(again.message().find("--force"), std::string::npos) << again;
  EXPECT_TRUE(CreateCa({.dir = dir.path(), .force = true}).ok());
}

TEST(Certs, BadNamesRolesAndAMissingCaAreNamed) {
  testing::TempDir dir("certs");
  absl::Status no_ca = IssueCertificate({.dir = dir.path(), .name = "node1", .role = "node"});
  EXPECT_NE(no_ca.message().find("ca.crt"), std::string::npos) << no_ca;
  ASSERT_TRUE(CreateCa({.dir = dir.path()}).ok());
  absl::Status bad_role = IssueCertificate({.dir = dir.path(), .name = "node1", .role = "root"});
  EXPECT_NE(bad_role.message().find("--role \"root\""), std::string::npos) << bad_role;
  absl::Status bad_name = IssueCertificate({.dir = dir.path(), .name = "../x", .role = "node"});
  EXPECT_NE(bad_name.message().find("--name \"../x\""), std::string::npos) << bad_name;
}

TEST(Tls, MissingFilesAreNamedAndPlainTextNeedsItsFlag) {
  auto none = MakeServerCredentials(v1::TlsFiles(), false, "coordinator listener");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("--insecure-dev"), std::string::npos) << none.status();
  v1::TlsFiles missing;
  missing.set_ca_file("/nonexistent/ca.crt");
  missing.set_cert_file("/nonexistent/x.crt");
  missing.set_key_file("/nonexistent/x.key");
  auto gone = MakeChannelCredentials(missing, false, "agent", {.role = kRoleCoordinator});
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("tls.ca_file: cannot read /nonexistent/ca.crt"),
            std::string::npos)
      << gone.status();
  EXPECT_TRUE(MakeServerCredentials(v1::TlsFiles(), true, "dev").ok());
}

}  // namespace
}  // namespace dagvault
