// mailstored's replication client over real mutual TLS: each peer's channel
// accepts only the certificate of the node it is meant for (issue 15).
#include "mailstore/server/peers.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "common/certs.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "common/tls.h"

namespace dagvault::mailstore {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

// A replication listener presenting `name`'s certificate; every call is
// UNIMPLEMENTED, which only a client that got through TLS sees.
class Listener {
 public:
  Listener(const std::string& dir, const std::string& name) {
    auto creds = MakeServerCredentials(CertificateFiles(dir, name), false, "test listener");
    EXPECT_TRUE(creds.ok()) << creds.status();
    if (!creds.ok()) return;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~Listener() {
    if (server_) server_->Shutdown();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  v1::Replication::Service service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST(Peers, AChannelToAPeerAcceptsOnlyThatPeersCertificate) {
  testing::TempDir dir("peers");
  ASSERT_TRUE(CreateCa({.dir = dir.path()}).ok());
  for (const char* name : {"node1", "node2", "node3"}) {
    ASSERT_TRUE(
        IssueCertificate({.dir = dir.path(), .name = name, .role = "node", .sans = {"127.0.0.1"}})
            .ok());
  }
  Listener node2(dir.path(), "node2");
  Listener node3(dir.path(), "node3");
  NodeConfig config;
  config.proto.set_node("node1");
  config.proto.set_replication_listen("127.0.0.1:1");
  *config.proto.mutable_replication_tls() = CertificateFiles(dir.path(), "node1");
  // node1 believes node2 is where node3 listens.
  auto* peer = config.proto.add_peers();
  peer->set_node("node2");
  peer->set_replication_address(node3.address());
  auto credentials = Peers::MakeCredentials(config);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  {
    Peers peers(config, *credentials);
    // Fail-fast, so the call ends with the handshake's error.
    auto misdirected = peers.CopyStatus("node2", "SG01");
    ASSERT_FALSE(misdirected.ok());
    EXPECT_THAT(std::string(misdirected.status().message()),
                HasSubstr("presents the certificate of node3 (node), expected node2 (node)"));
  }
  peer->set_replication_address(node2.address());
  Peers peers(config, *credentials);
  auto reached = peers.CopyStatus("node2", "SG01", absl::Seconds(10));
  EXPECT_EQ(reached.status().code(), absl::StatusCode::kUnimplemented) << reached.status();
}

}  // namespace
}  // namespace dagvault::mailstore
