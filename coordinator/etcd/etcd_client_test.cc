#include "coordinator/etcd/etcd_client.h"

#include <gtest/gtest.h>

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/free_ports.h"
#include "common/testing/temp_dir.h"
#include "coordinator/etcd/etcd_test_cluster.h"

namespace dagvault::coordinator {
namespace {

TEST(PrefixRangeEnd, IsThePrefixWithItsLastByteRaised) {
  EXPECT_EQ(PrefixRangeEnd("/dagvault/leases/"), "/dagvault/leases0");
  EXPECT_EQ(PrefixRangeEnd("a\xff"), "b");
  EXPECT_EQ(PrefixRangeEnd("\xff\xff"), std::string(1, '\0'));
}

TEST(EtcdClientConfig, IsCheckedBeforeAnyConnection) {
  dagvault::v1::EtcdConfig config;
  EXPECT_EQ(EtcdClient::Connect(config).status().code(), absl::StatusCode::kInvalidArgument);
  config.add_endpoints("127.0.0.1");
  auto no_port = EtcdClient::Connect(config);
  EXPECT_EQ(no_port.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_port.status().message().find("\"127.0.0.1\" is not HOST:PORT"), std::string::npos)
      << no_port.status();
  config.set_endpoints(0, "127.0.0.1:2379");
  config.set_ca_file("/nonexistent/etcd-ca.pem");
  auto no_ca = EtcdClient::Connect(config);
  EXPECT_FALSE(no_ca.ok());
  EXPECT_NE(no_ca.status().message().find("etcd.ca_file"), std::string::npos) << no_ca.status();
}

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = SharedEtcdTestCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
  }
  EtcdTestCluster* cluster_ = nullptr;
};

TEST_F(EtcdClientTest, ACallMovesPastAMemberThatIsDown) {
  auto dead = PickFreePorts("127.0.0.1", 1);
  ASSERT_TRUE(dead.ok());
  dagvault::v1::EtcdConfig config = cluster_->Config();
  config.clear_endpoints();
  config.add_endpoints(absl::StrCat("127.0.0.1:", (*dead)[0]));  // nothing listens
  config.add_endpoints(cluster_->client_endpoints()[0]);
  auto client = EtcdClient::Connect(config);
  ASSERT_TRUE(client.ok()) << client.status();

  etcdserverpb::TxnRequest txn;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key("/client-test/failover");
  put->set_value("v");
  auto written = (*client)->Txn(txn);
  ASSERT_TRUE(written.ok()) << written.status();
  etcdserverpb::RangeRequest range;
  range.set_key("/client-test/failover");
  auto read = (*client)->Range(range);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->kvs_size(), 1);
  EXPECT_EQ(read->kvs(0).value(), "v");
}

TEST_F(EtcdClientTest, NoMemberAnsweringIsUnavailableAndNamesEachWithinTheTimeout) {
  auto dead = PickFreePorts("127.0.0.1", 2);
  ASSERT_TRUE(dead.ok());
  dagvault::v1::EtcdConfig config;
  for (int port : *dead) config.add_endpoints(absl::StrCat("127.0.0.1:", port));
  config.set_request_timeout_ms(1500);
  auto client = EtcdClient::Connect(config);
  ASSERT_TRUE(client.ok()) << client.status();
  const absl::Time start = absl::Now();
  auto read = (*client)->Range(etcdserverpb::RangeRequest());
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(read.status().code(), absl::StatusCode::kUnavailable) << read.status();
  for (int port : *dead) {
    EXPECT_NE(read.status().message().find(absl::StrCat("127.0.0.1:", port)), std::string::npos)
        << read.status();
  }
  // Bounded by the request timeout (with room for a slow machine), not
  // by TCP's.
  EXPECT_LT(took, absl::Seconds(10));
}

TEST_F(EtcdClientTest, AKeepAliveGivesTheHolderADeadlineAndARevokedLeaseIsNotFound) {
  auto client = EtcdClient::Connect(cluster_->Config());
  ASSERT_TRUE(client.ok()) << client.status();
  auto granted = (*client)->Grant(absl::Seconds(5));
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_GE(granted->ttl, absl::Seconds(5));
  const absl::Duration before = RealClock()->Monotonic();
  auto kept = (*client)->KeepAlive(granted->id);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->ttl, granted->ttl);
  // Counted from when the keep-alive was sent, so never later than a TTL
  // after the call began.
  EXPECT_LE(kept->deadline, before + kept->ttl + absl::Milliseconds(1));
  EXPECT_GT(kept->deadline, before);
  auto ttl = (*client)->TimeToLive(granted->id);
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_GT(*ttl, absl::ZeroDuration());

  ASSERT_TRUE((*client)->Revoke(granted->id).ok());
  EXPECT_TRUE((*client)->Revoke(granted->id).ok()) << "revoking twice is not an error";
  EXPECT_EQ((*client)->KeepAlive(granted->id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*client)->TimeToLive(granted->id).status().code(), absl::StatusCode::kNotFound);
}

// etcd over TLS with client certificates, as production runs it: the
// client shows its certificate and checks the members' against the CA;
// without its certificate, or in plain text, the cluster refuses it.
TEST(EtcdClientTls, TalksToAClusterThatDemandsClientCertificatesAndOnlyWithOne) {
  testing::TempDir dir("etcd-tls");
  auto cluster = EtcdTestCluster::Start(dir.path(), 1, /*tls=*/true);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const dagvault::v1::EtcdConfig config = (*cluster)->Config();
  ASSERT_FALSE(config.ca_file().empty());
  auto client = EtcdClient::Connect(config);
  ASSERT_TRUE(client.ok()) << client.status();
  auto granted = (*client)->Grant(absl::Seconds(5));
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_TRUE((*client)->Revoke(granted->id).ok());

  // A client configured as `config` less the files `drop` clears.
  auto refused = [&](const std::function<void(dagvault::v1::EtcdConfig*)>& drop) {
    dagvault::v1::EtcdConfig less = config;
    drop(&less);
    less.set_request_timeout_ms(1500);
    auto other = EtcdClient::Connect(less);
    EXPECT_TRUE(other.ok()) << other.status();
    return other.ok() && !(*other)->Grant(absl::Seconds(5)).ok();
  };
  EXPECT_TRUE(refused([](dagvault::v1::EtcdConfig* c) {  // no client certificate
    c->clear_cert_file();
    c->clear_key_file();
  }));
  EXPECT_TRUE(refused([](dagvault::v1::EtcdConfig* c) {  // plain text
    c->clear_ca_file();
    c->clear_cert_file();
    c->clear_key_file();
  }));
}

}  // namespace
}  // namespace dagvault::coordinator
