// Mutual TLS end to end on a real socket: a CA and certificates from
// common/certs.h, a gRPC server that requires client certificates, and
// clients with the right, no, and a foreign certificate.
#include "common/tls.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/certs.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "dagvault/v1/writer.grpc.pb.h"

namespace dagvault {
namespace {

namespace v1 = dagvault::v1;

// Answers GetMetadata with the caller's identity, as the coordinator sees it.
class WhoAmI final : public v1::Writer::Service {
  grpc::Status GetMetadata(grpc::ServerContext* context, const v1::GetMetadataRequest*,
                           v1::WriterMetadata* response) override {
    const PeerIdentity peer = PeerOf(*context);
    response->set_node(peer.authenticated ? peer.common_name + "/" + peer.role : "anonymous");
    return grpc::Status::OK;
  }
};

v1::TlsFiles FilesFor(const std::string& dir, const std::string& name) {
  v1::TlsFiles f;
  f.set_ca_file(JoinPath(dir, "ca.crt"));
  f.set_cert_file(JoinPath(dir, name + ".crt"));
  f.set_key_file(JoinPath(dir, name + ".key"));
  return f;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(CreateCa({.dir = dir_.path()}).ok());
    ASSERT_TRUE(
        IssueCertificate({.dir = dir_.path(), .name = "coord", .role = "coordinator"}).ok());
    ASSERT_TRUE(IssueCertificate({.dir = dir_.path(), .name = "node2", .role = "node"}).ok());
    auto creds = MakeServerCredentials(FilesFor(dir_.path(), "coord"), false, "test listener");
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_ != nullptr);
  }
  void TearDown() override { server_->Shutdown(); }

  grpc::Status Call(std::shared_ptr<grpc::ChannelCredentials> creds, std::string* who) {
    auto stub = v1::Writer::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), std::move(creds)));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::WriterMetadata response;
    grpc::Status s = stub->GetMetadata(&context, {}, &response);
    *who = response.node();
    return s;
  }

  testing::TempDir dir_{"tls"};
  WhoAmI service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(TlsTest, AClientWithADeploymentCertificateIsKnownByItsNameAndRole) {
  auto creds = MakeChannelCredentials(FilesFor(dir_.path(), "node2"), false, "test client");
  ASSERT_TRUE(creds.ok()) << creds.status();
  std::string who;
  grpc::Status s = Call(*creds, &who);
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
  v1::TlsFiles files = FilesFor(other.path(), "node2");
  files.set_ca_file(JoinPath(dir_.path(), "ca.crt"));
  auto creds = MakeChannelCredentials(files, false, "intruder");
  ASSERT_TRUE(creds.ok());
  std::string who;
  EXPECT_FALSE(Call(*creds, &who).ok());
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
  auto gone = MakeChannelCredentials(missing, false, "agent");
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("tls.ca_file: cannot read /nonexistent/ca.crt"),
            std::string::npos)
      << gone.status();
  EXPECT_TRUE(MakeServerCredentials(v1::TlsFiles(), true, "dev").ok());
}

}  // namespace
}  // namespace dagvault
