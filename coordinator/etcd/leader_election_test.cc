#include "coordinator/etcd/leader_election.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/testing/temp_dir.h"
#include "coordinator/etcd/etcd_test_cluster.h"

namespace dagvault::coordinator {
namespace {

std::string KeyOfThisTest() {
  return absl::StrCat("/election-test/",
                      ::testing::UnitTest::GetInstance()->current_test_info()->name(), "/leader");
}

std::unique_ptr<EtcdClient> ClientOf(const EtcdTestCluster& cluster, int timeout_ms = 3000) {
  dagvault::v1::EtcdConfig config = cluster.Config();
  config.set_request_timeout_ms(timeout_ms);
  auto client = EtcdClient::Connect(config);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

// Runs Campaign on a thread; done() once it has returned.
class Candidate {
 public:
  explicit Candidate(LeaderElection* election)
      : thread_([this, election] {
          result_ = election->Campaign(&stop_);
          done_ = true;
        }) {}
  ~Candidate() {
    stop_ = true;
    thread_.join();
  }
  bool WaitDone(absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    while (!done_ && absl::Now() < end) absl::SleepFor(absl::Milliseconds(20));
    return done_;
  }
  bool done() const { return done_; }
  // Only once done().
  const absl::StatusOr<int64_t>& result() const { return result_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  absl::StatusOr<int64_t> result_ = absl::UnknownError("running");
  std::thread thread_;
};

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = SharedEtcdTestCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    client_ = ClientOf(**cluster);
    ASSERT_NE(client_, nullptr);
  }
  LeaderElectionOptions Options(const std::string& value, absl::Duration ttl = absl::Seconds(2)) {
    return LeaderElectionOptions{KeyOfThisTest(), value, ttl};
  }
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(LeaderElectionTest, OneLeadsTheOtherWaitsAndTakesOverWhenItResigns) {
  LeaderElection a(client_.get(), Options("coord-a:7000"));
  LeaderElection b(client_.get(), Options("coord-b:7000"));
  std::atomic<bool> stop{false};
  auto epoch_a = a.Campaign(&stop);
  ASSERT_TRUE(epoch_a.ok()) << epoch_a.status();
  EXPECT_GT(*epoch_a, 0);
  EXPECT_TRUE(a.Leading());
  // a renews its lease as a leader does: the wait below is as long as its
  // TTL, and a lease nobody renews could expire before the read (it did,
  // on a loaded machine).
  std::atomic<bool> stop_keeping{false};
  absl::Status kept = absl::UnknownError("running");
  std::thread keeper([&] { kept = a.KeepLeading(&stop_keeping); });

  Candidate waiting(&b);
  EXPECT_FALSE(waiting.WaitDone(absl::Seconds(2))) << "b must not lead while a does";
  EXPECT_FALSE(b.Leading());
  EXPECT_TRUE(a.Leading());
  EXPECT_EQ(b.leader(), "coord-a:7000");
  auto read = b.ReadLeader();
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "coord-a:7000");

  stop_keeping = true;
  keeper.join();
  EXPECT_TRUE(kept.ok()) << kept;
  ASSERT_TRUE(a.Resign().ok());
  EXPECT_FALSE(a.Leading());
  ASSERT_TRUE(waiting.WaitDone(absl::Seconds(5)));
  ASSERT_TRUE(waiting.result().ok()) << waiting.result().status();
  EXPECT_GT(*waiting.result(), *epoch_a) << "epochs only grow";
  EXPECT_TRUE(b.Leading());
  EXPECT_EQ(b.leader(), "coord-b:7000");
  ASSERT_TRUE(b.Resign().ok());
}

TEST_F(LeaderElectionTest, ALeaderThatStopsRenewingStopsActingBeforeItsLeaseEndsAndIsReplaced) {
  LeaderElection a(client_.get(), Options("coord-a:7000"));
  LeaderElection b(client_.get(), Options("coord-b:7000"));
  std::atomic<bool> stop{false};
  auto epoch_a = a.Campaign(&stop);
  ASSERT_TRUE(epoch_a.ok()) << epoch_a.status();
  const absl::Duration won = RealClock()->Monotonic();
  Candidate waiting(&b);
  // a never renews (as if paused): it stops acting within its 2 s TTL,
  // before etcd could have let the key go.
  while (a.Leading()) absl::SleepFor(absl::Milliseconds(10));
  const absl::Duration acted_for = RealClock()->Monotonic() - won;
  EXPECT_LT(acted_for, absl::Seconds(2));
  EXPECT_FALSE(waiting.done()) << "b led while a still could act";
  // b leads once etcd has expired a's lease.
  ASSERT_TRUE(waiting.WaitDone(absl::Seconds(10)));
  ASSERT_TRUE(waiting.result().ok()) << waiting.result().status();
  EXPECT_GT(*waiting.result(), *epoch_a);
  // a, running again, learns at once that it no longer leads.
  absl::Status kept = a.KeepLeading(&stop);
  EXPECT_EQ(kept.code(), absl::StatusCode::kAborted) << kept;
  EXPECT_FALSE(a.Leading());
  ASSERT_TRUE(b.Resign().ok());
}

TEST_F(LeaderElectionTest, ALeaderWhoseKeyIsTakenAwayStepsDown) {
  LeaderElection a(client_.get(), Options("coord-a:7000", absl::Seconds(5)));
  std::atomic<bool> stop{false};
  auto epoch = a.Campaign(&stop);
  ASSERT_TRUE(epoch.ok()) << epoch.status();
  etcdserverpb::TxnRequest txn;
  txn.add_success()->mutable_request_delete_range()->set_key(KeyOfThisTest());
  ASSERT_TRUE(client_->Txn(txn).ok());
  absl::Status kept = a.KeepLeading(&stop);
  ASSERT_EQ(kept.code(), absl::StatusCode::kAborted) << kept;
  EXPECT_NE(kept.message().find("no longer this coordinator's (deleted)"), std::string::npos)
      << kept;
  EXPECT_FALSE(a.Leading());
}

// Three members: the leader keeps leading through the loss of the etcd
// leader, and steps down before its deadline when quorum is lost (the
// member it can reach has no leader and refuses to renew).
TEST(LeaderElectionCluster, KeepsLeadingThroughAnEtcdLeaderChangeAndStepsDownWithoutQuorum) {
  testing::TempDir dir("election3");
  auto cluster = EtcdTestCluster::Start(dir.path(), 3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = ClientOf(**cluster, 1500);
  ASSERT_NE(client, nullptr);
  LeaderElection a(client.get(), {"/election-cluster/leader", "coord-a:7000", absl::Seconds(4)});
  std::atomic<bool> stop{false};
  auto epoch = a.Campaign(&stop);
  ASSERT_TRUE(epoch.ok()) << epoch.status();
  absl::Status kept = absl::UnknownError("running");
  std::atomic<bool> ended{false};
  std::thread keeper([&] {
    kept = a.KeepLeading(&stop);
    ended = true;
  });
  // A standby, which sees a lead.
  LeaderElection b(client.get(), {"/election-cluster/leader", "coord-b:7000", absl::Seconds(4)});
  Candidate standby(&b);
  const absl::Time seen_by = absl::Now() + absl::Seconds(10);
  while (b.leader() != "coord-a:7000" && absl::Now() < seen_by) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(b.leader(), "coord-a:7000");
  EXPECT_EQ(b.NoLeaderReason(), "");

  auto etcd_leader = (*cluster)->Leader();
  ASSERT_TRUE(etcd_leader.ok());
  (*cluster)->Kill(*etcd_leader);
  // Two members are a quorum: 6 s later (more than a TTL) a still leads.
  absl::SleepFor(absl::Seconds(6));
  EXPECT_TRUE(a.Leading());
  EXPECT_FALSE(ended.load()) << kept;

  // Quorum lost.
  for (int i = 0; i < 3; ++i) {
    if ((*cluster)->running(i)) {
      (*cluster)->Kill(i);
      break;
    }
  }
  const absl::Duration lost = RealClock()->Monotonic();
  while (a.Leading() && RealClock()->Monotonic() - lost < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  // Within one TTL of the last renewal, so at most a TTL after quorum went.
  EXPECT_LT(RealClock()->Monotonic() - lost, absl::Seconds(4));
  const absl::Time end = absl::Now() + absl::Seconds(20);
  while (!ended && absl::Now() < end) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(ended.load());
  EXPECT_EQ(kept.code(), absl::StatusCode::kAborted) << kept;
  // The standby cannot campaign: it no longer names a leader it cannot
  // vouch for, and says why.
  const absl::Time told_by = absl::Now() + absl::Seconds(20);
  while (b.NoLeaderReason().empty() && absl::Now() < told_by) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(b.leader(), "");
  EXPECT_THAT(b.NoLeaderReason(), ::testing::HasSubstr("etcd does not answer"));
  EXPECT_FALSE(standby.done());
  stop = true;
  keeper.join();
}

}  // namespace
}  // namespace dagvault::coordinator
