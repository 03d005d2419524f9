#include "coordinator/leases/etcd_lease_store.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/testing/temp_dir.h"
#include "coordinator/etcd/etcd_test_cluster.h"

namespace dagvault::coordinator {
namespace {

// Each test under its own prefix of the shared one-member cluster.
class EtcdLeaseStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = SharedEtcdTestCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
    prefix_ = absl::StrCat("/lease-test/",
                           ::testing::UnitTest::GetInstance()->current_test_info()->name(), "/");
    auto client = EtcdClient::Connect(cluster_->Config());
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
    auto store = EtcdLeaseStore::Open(client_.get(), prefix_, RealClock());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  EtcdTestCluster* cluster_ = nullptr;
  std::string prefix_;
  std::unique_ptr<EtcdClient> client_;
  std::unique_ptr<EtcdLeaseStore> store_;
};

TEST_F(EtcdLeaseStoreTest, OneJobHoldsAUnitAndAnotherIsToldWhichJobAndNode) {
  auto a = store_->Acquire("DB01", "job-a", "node2", absl::Seconds(30));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->unit, "DB01");
  EXPECT_EQ(a->job, "job-a");
  EXPECT_EQ(a->holder_node, "node2");
  EXPECT_GT(a->token, store_->token_base());

  auto b = store_->Acquire("DB01", "job-b", "node3", absl::Seconds(30));
  ASSERT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
  EXPECT_NE(b.status().message().find("unit DB01 is being backed up: job job-a on node2 holds its "
                                      "backup-in-progress lease"),
            std::string::npos)
      << b.status();
  auto r = store_->Acquire("DB01", "restore-1", "node3", absl::Seconds(30));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);

  // Another unit is free.
  EXPECT_TRUE(store_->Acquire("DB02", "job-b", "node3", absl::Seconds(30)).ok());

  auto leases = store_->List();
  ASSERT_TRUE(leases.ok()) << leases.status();
  ASSERT_EQ(leases->size(), 2u);
  EXPECT_EQ((*leases)[0].unit, "DB01");
  EXPECT_EQ((*leases)[0].token, a->token);
  EXPECT_GT((*leases)[0].expires, absl::Now() + absl::Seconds(30));
}

TEST_F(EtcdLeaseStoreTest, TokensOnlyGrowAndARetryOfTheSameJobSupersedesItsOldToken) {
  auto first = store_->Acquire("DB01", "job-a", "node1", absl::Seconds(30));
  ASSERT_TRUE(first.ok()) << first.status();
  // The job's second attempt on another node: a new, greater token, and
  // the first attempt's key is gone.
  auto retry = store_->Acquire("DB01", "job-a", "node2", absl::Seconds(30));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_GT(retry->token, first->token);
  EXPECT_EQ(retry->holder_node, "node2");
  auto leases = store_->List();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].token, retry->token);

  ASSERT_TRUE(store_->Release("DB01", "job-a").ok());
  auto next = store_->Acquire("DB01", "job-b", "node3", absl::Seconds(30));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(next->token, retry->token);
}

TEST_F(EtcdLeaseStoreTest, OnlyTheHolderReleasesOrRenews) {
  ASSERT_TRUE(store_->Acquire("DB01", "job-a", "node1", absl::Seconds(30)).ok());
  EXPECT_TRUE(store_->Release("DB01", "job-b").ok()) << "not the holder: nothing happens";
  auto renew = store_->Renew("DB01", "job-b", absl::Seconds(30));
  ASSERT_EQ(renew.code(), absl::StatusCode::kNotFound) << renew;
  EXPECT_NE(renew.message().find("job job-b no longer holds the backup-in-progress lease of unit "
                                 "DB01 (job job-a does)"),
            std::string::npos)
      << renew;
  EXPECT_TRUE(store_->Renew("DB01", "job-a", absl::Seconds(30)).ok());
  auto leases = store_->List();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].job, "job-a");

  ASSERT_TRUE(store_->Release("DB01", "job-a").ok());
  EXPECT_TRUE(store_->List()->empty());
  EXPECT_EQ(store_->Renew("DB01", "job-a", absl::Seconds(30)).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Release("DB01", "job-a").ok()) << "releasing twice is not an error";
}

TEST_F(EtcdLeaseStoreTest, ALeaseNobodyRenewsExpiresInEtcdAndTheUnitIsFreeAgain) {
  // A third longer in etcd than the coordinator's period (1 s): 2 s once
  // rounded up to whole seconds.
  auto a = store_->Acquire("DB01", "job-a", "node1", absl::Seconds(1));
  ASSERT_TRUE(a.ok()) << a.status();
  const absl::Time end = absl::Now() + absl::Seconds(15);
  absl::StatusOr<LeaseRecord> b = absl::UnknownError("not tried");
  while (absl::Now() < end) {
    b = store_->Acquire("DB01", "job-b", "node2", absl::Seconds(30));
    if (b.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GT(b->token, a->token);
  EXPECT_EQ(store_->Renew("DB01", "job-a", absl::Seconds(1)).code(), absl::StatusCode::kNotFound);
}

TEST_F(EtcdLeaseStoreTest, TheTokenBaseIsWrittenOnceAndIsAboveTheCatalogsTokens) {
  // At or above the wall clock in microseconds when it was first written,
  // as the catalog's tokens are (so moving leases to etcd never lowers a
  // unit's token).
  EXPECT_LE(store_->token_base(), static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())));
  EXPECT_GT(store_->token_base(),
            static_cast<uint64_t>(absl::ToUnixMicros(absl::Now() - absl::Minutes(1))));
  auto again = EtcdLeaseStore::Open(client_.get(), prefix_, RealClock());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->token_base(), store_->token_base());

  // A prefix whose base is not a number is refused, naming the key.
  etcdserverpb::TxnRequest txn;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(prefix_ + "other/token-base");
  put->set_value("garbage");
  ASSERT_TRUE(client_->Txn(txn).ok());
  auto bad = EtcdLeaseStore::Open(client_.get(), prefix_ + "other", RealClock());
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  EXPECT_NE(bad.status().message().find(prefix_ + "other/token-base"), std::string::npos);
}

TEST_F(EtcdLeaseStoreTest, AValueThatIsNotALeaseIsDataLossNamingTheKey) {
  etcdserverpb::TxnRequest txn;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(prefix_ + "leases/DB09");
  put->set_value("\xff\xff\xff not a protobuf");
  ASSERT_TRUE(client_->Txn(txn).ok());
  auto leases = store_->List();
  ASSERT_EQ(leases.status().code(), absl::StatusCode::kDataLoss) << leases.status();
  EXPECT_NE(leases.status().message().find(prefix_ + "leases/DB09"), std::string::npos);
  EXPECT_EQ(store_->Acquire("DB09", "job-a", "node1", absl::Seconds(30)).status().code(),
            absl::StatusCode::kDataLoss);
}

// Three members: the leases live through the loss of the etcd leader, stop
// being renewable without quorum (a member without a leader refuses the
// keep-alive instead of renewing alone), and the TTL pitfall of
// docs/ha.md shows: a lease nobody renews outlives its TTL when the etcd
// leader changes.
TEST(EtcdLeaseStoreCluster, LeasesSurviveTheEtcdLeaderAndStopRenewingWithoutQuorum) {
  testing::TempDir dir("etcd3");
  auto cluster = EtcdTestCluster::Start(dir.path(), 3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  dagvault::v1::EtcdConfig config = (*cluster)->Config();
  config.set_request_timeout_ms(3000);
  auto client = EtcdClient::Connect(config);
  ASSERT_TRUE(client.ok()) << client.status();
  auto store = EtcdLeaseStore::Open(client->get(), "/ha-test/", RealClock());
  ASSERT_TRUE(store.ok()) << store.status();

  auto held = (*store)->Acquire("DB01", "job-a", "node1", absl::Seconds(30));
  ASSERT_TRUE(held.ok()) << held.status();
  // An unrenewed one: 3 s for the coordinator, 4 s in etcd.
  auto idle = (*store)->Acquire("DB02", "job-b", "node1", absl::Seconds(3));
  ASSERT_TRUE(idle.ok()) << idle.status();
  const absl::Time idle_taken = absl::Now();

  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto leader = (*cluster)->Leader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  (*cluster)->Kill(*leader);
  // The client moves to a member that is still in quorum; the lease and
  // its token are untouched.
  absl::Status renewed = (*store)->Renew("DB01", "job-a", absl::Seconds(30));
  ASSERT_TRUE(renewed.ok()) << renewed;
  auto after = (*store)->List();
  ASSERT_TRUE(after.ok()) << after.status();
  bool found = false;
  for (const auto& l : *after) {
    if (l.unit == "DB01") {
      found = true;
      EXPECT_EQ(l.token, held->token);
    }
  }
  EXPECT_TRUE(found);

  // The pitfall: the new etcd leader gave DB02's lease its full 4 s again,
  // so 5 s after it was taken (and never renewed) it still holds.
  ASSERT_TRUE((*cluster)->Leader().ok());
  const absl::Duration since = absl::Now() - idle_taken;
  if (since < absl::Seconds(5)) absl::SleepFor(absl::Seconds(5) - since);
  auto busy = (*store)->Acquire("DB02", "job-c", "node2", absl::Seconds(30));
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition)
      << "5 s after a 4 s lease was last renewed, across an etcd leader change: "
      << (busy.ok() ? "it had expired" : busy.status().ToString());

  // Quorum lost: a second member goes. The one left has no leader and
  // refuses, so nobody renews a lease etcd might be expiring.
  int second = -1;
  for (int i = 0; i < 3; ++i) {
    if ((*cluster)->running(i)) {
      second = i;
      break;
    }
  }
  ASSERT_GE(second, 0);
  (*cluster)->Kill(second);
  absl::Status no_quorum = (*store)->Renew("DB01", "job-a", absl::Seconds(30));
  EXPECT_EQ(no_quorum.code(), absl::StatusCode::kUnavailable) << no_quorum;

  // Quorum back: the lease is there with its token.
  ASSERT_TRUE((*cluster)->Restart(second).ok());
  ASSERT_TRUE((*cluster)->Leader(absl::Seconds(30)).ok());
  absl::Status back = absl::UnknownError("not tried");
  const absl::Time end = absl::Now() + absl::Seconds(20);
  while (absl::Now() < end) {
    back = (*store)->Renew("DB01", "job-a", absl::Seconds(30));
    if (back.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(back.ok()) << back;
  auto leases = (*store)->List();
  ASSERT_TRUE(leases.ok()) << leases.status();
  found = false;
  for (const auto& l : *leases) {
    if (l.unit == "DB01") {
      found = true;
      EXPECT_EQ(l.token, held->token);
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace dagvault::coordinator
