// CoordinatorLink against a fake transport (fake_coordinator_dialer.h):
// registration and reports, a standby's pointer followed at once, the next
// coordinator after a stream that ends or acknowledges nothing, what each
// new session's reports carry again, and the lease bound fencing reads.
#include "node-agent/daemon/coordinator_link.h"

#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "node-agent/daemon/fake_coordinator_dialer.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;

v1::AgentConfig TwoCoordinators() {
  v1::AgentConfig c;
  c.set_node("node2");
  c.set_coordinator("c1:7000");
  c.add_more_coordinators("c2:7000");
  c.set_reconnect_min_ms(20);
  c.set_reconnect_max_ms(100);
  return c;
}

// One coordinator: a silent stream is kept (no next one to try).
v1::AgentConfig OneCoordinator() {
  v1::AgentConfig c = TwoCoordinators();
  c.clear_more_coordinators();
  return c;
}

// A link running on its own thread, with a monitor calling CheckStall as
// the daemon's does; the messages it hands on are kept.
class LinkTest : public ::testing::Test {
 protected:
  void Start(const v1::AgentConfig& config) {
    CoordinatorLink::Handlers h;
    h.fill_report = [this](v1::NodeReport* r) {
      absl::SleepFor(fill_delay_);  // mailstored slow to answer
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& u : undelivered_) *r->add_undelivered() = u;
      for (const auto& j : running_) *r->add_running() = j;
    };
    h.on_message = [this](const v1::CoordinatorMessage& m) {
      std::lock_guard<std::mutex> l(mu_);
      received_.push_back(m);
    };
    h.on_registered = [this](const v1::Registered&) { ++registrations_; };
    link_ = std::make_unique<CoordinatorLink>(config, "test", "run-1", &dialer_, RealClock(),
                                              std::move(h));
    runner_ = std::thread([this] { link_->Run(&stop_); });
    monitor_ = std::thread([this] {
      while (!stop_) {
        link_->CheckStall();
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    if (monitor_.joinable()) monitor_.join();
    if (link_) link_->Cancel();
    if (runner_.joinable()) runner_.join();
  }
  // Reports written on `s` so far.
  static std::vector<v1::NodeReport> Reports(FakeCoordinatorStream& s) {
    std::vector<v1::NodeReport> out;
    for (const auto& m : s.Written()) {
      if (m.has_report()) out.push_back(m.report());
    }
    return out;
  }

  bool WaitForReceived(size_t n) {
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (absl::Now() < until) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (received_.size() >= n) return true;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  // The coordinator acknowledges the newest report written on `s`.
  static void AckNewestReport(FakeCoordinatorStream& s) {
    const auto reports = Reports(s);
    ASSERT_FALSE(reports.empty());
    v1::CoordinatorMessage ack;
    ack.mutable_report_ack()->set_sent_us(reports.back().sent_us());
    s.Send(ack);
  }

  // Two coordinators, the first registering the link with reports every
  // 100 ms and a lease of 1 s (a stall limit of max(300, 333) ms), and
  // every report 500 ms to gather (mailstored slow to answer).
  std::shared_ptr<FakeCoordinatorStream> StartSlowToGather() {
    fill_delay_ = absl::Milliseconds(500);
    Start(TwoCoordinators());
    auto s = dialer_.WaitDial(0);
    if (s != nullptr) s->Registered(100, 1000);
    return s;
  }

  // Acknowledges the newest report and checks the next three written (the
  // first of them would be ack_optional if it listed nothing): none that
  // `lists` something is optional. Returns how many did.
  static size_t NoneOptionalAfterAnAcknowledgement(
      FakeCoordinatorStream& s, const std::function<bool(const v1::NodeReport&)>& lists) {
    const size_t seen = Reports(s).size();
    AckNewestReport(s);
    EXPECT_TRUE(s.WaitWritten(s.Written().size() + 3));
    const auto reports = Reports(s);
    size_t listing = 0;
    for (size_t i = seen; i < reports.size(); ++i) {
      if (!lists(reports[i])) continue;
      ++listing;
      EXPECT_FALSE(reports[i].ack_optional()) << "report " << i;
    }
    return listing;
  }

  FakeCoordinatorDialer dialer_;
  std::unique_ptr<CoordinatorLink> link_;
  std::atomic<bool> stop_{false};
  std::thread runner_, monitor_;
  std::mutex mu_;
  std::vector<v1::CoordinatorMessage> received_;
  std::vector<v1::JobUpdate> undelivered_;
  std::vector<v1::RunningJob> running_;
  std::atomic<int> registrations_{0};
  absl::Duration fill_delay_;
};

TEST_F(LinkTest, RegistersReportsEveryPeriodAndHandsTheCoordinatorsMessagesOn) {
  Start(TwoCoordinators());
  auto s = dialer_.WaitDial(0);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->address(), "c1:7000");
  ASSERT_TRUE(s->WaitWritten(1));
  const v1::AgentMessage hello = s->Written()[0];
  ASSERT_TRUE(hello.has_register_());
  EXPECT_EQ(hello.register_().node(), "node2");
  EXPECT_EQ(hello.register_().incarnation(), "run-1");
  s->Registered(/*report_every_ms=*/100, /*lease_ttl_ms=*/60000);
  ASSERT_TRUE(s->WaitWritten(4));  // the registration and three reports
  const auto reports = Reports(*s);
  ASSERT_GE(reports.size(), 3u);
  EXPECT_EQ(reports[0].node(), "node2");
  EXPECT_LT(reports[0].sent_us(), reports[1].sent_us());
  EXPECT_EQ(registrations_.load(), 1);

  v1::CoordinatorMessage assignment;
  assignment.mutable_assignment()->set_job("j1");
  s->Send(assignment);
  v1::CoordinatorMessage ack;
  ack.mutable_report_ack()->set_sent_us(reports[1].sent_us());
  s->Send(ack);
  ASSERT_TRUE(WaitForReceived(1));
  std::lock_guard<std::mutex> l(mu_);
  ASSERT_EQ(received_.size(), 1u) << "report acks stay with the link";
  EXPECT_EQ(received_[0].assignment().job(), "j1");
}

// The coordinator skips the acknowledgement of a report marked
// ack_optional: the agent marks one only when everything before it was
// acknowledged and it lists nothing whose acknowledgement matters.
TEST_F(LinkTest, AReportLeavesItsAcknowledgementOptionalOnlyWhenNothingIsOutstanding) {
  Start(OneCoordinator());
  auto s = dialer_.WaitDial(0);
  ASSERT_NE(s, nullptr);
  s->Registered(/*report_every_ms=*/50, /*lease_ttl_ms=*/60000);
  ASSERT_TRUE(s->WaitWritten(4));
  auto reports = Reports(*s);
  // Nothing was outstanding for the first; from then on the first is.
  EXPECT_TRUE(reports[0].ack_optional());
  EXPECT_FALSE(reports[1].ack_optional());
  EXPECT_FALSE(reports[2].ack_optional());

  // Acknowledged: the next report may go unacknowledged, the one after
  // it asks again.
  ASSERT_NO_FATAL_FAILURE(AckNewestReport(*s));
  const size_t seen = reports.size();
  ASSERT_TRUE(s->WaitWritten(seen + 4));
  reports = Reports(*s);
  size_t optional_at = reports.size();
  for (size_t i = seen; i < reports.size(); ++i) {
    if (reports[i].ack_optional()) {
      optional_at = i;
      break;
    }
  }
  ASSERT_LT(optional_at + 1, reports.size()) << "no report after the acknowledgement was optional";
  EXPECT_FALSE(reports[optional_at + 1].ack_optional());

  // A running job's report is always acknowledged (its lease was renewed).
  {
    std::lock_guard<std::mutex> l(mu_);
    v1::RunningJob j;
    j.set_job("j1");
    j.set_unit("DB01");
    running_.push_back(j);
  }
  EXPECT_GT(NoneOptionalAfterAnAcknowledgement(
                *s, [](const v1::NodeReport& r) { return r.running_size() > 0; }),
            0u);

  // So is one carrying results the coordinator has not confirmed.
  {
    std::lock_guard<std::mutex> l(mu_);
    running_.clear();
    v1::JobUpdate u;
    u.set_job("j1");
    u.set_attempt(1);
    u.set_phase(v1::JOB_SUCCEEDED);
    undelivered_.push_back(u);
  }
  EXPECT_GT(NoneOptionalAfterAnAcknowledgement(
                *s, [](const v1::NodeReport& r) { return r.undelivered_size() > 0; }),
            0u);
}

TEST_F(LinkTest, FollowsAStandbysPointerAtOnceAndOtherwiseMovesToTheNextAddress) {
  Start(TwoCoordinators());
  auto first = dialer_.WaitDial(0);
  ASSERT_NE(first, nullptr);
  // c1 stands by and names the leader, an address not configured.
  first->End(absl::UnavailableError("this coordinator is a standby"), "c3:7000");
  auto second = dialer_.WaitDial(1);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->address(), "c3:7000");
  // The leader named is gone without a pointer: back to the configured
  // address that named it (it may name the next leader), then the next.
  second->End(absl::UnavailableError("connection refused"));
  auto third = dialer_.WaitDial(2);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->address(), "c1:7000");
  third->End(absl::UnavailableError("connection refused"));
  auto fourth = dialer_.WaitDial(3);
  ASSERT_NE(fourth, nullptr);
  EXPECT_EQ(fourth->address(), "c2:7000");
}

TEST_F(LinkTest, AStreamThatAcknowledgesNothingIsGivenUpForTheNextCoordinator) {
  Start(TwoCoordinators());
  auto paused = dialer_.WaitDial(0);
  ASSERT_NE(paused, nullptr);
  // Registered, then silent: no report is acknowledged (a paused leader
  // keeps its connection open). The stall limit is max(3 x 100 ms,
  // 1000 ms / 3) = 333 ms.
  paused->Registered(100, 1000);
  auto next = dialer_.WaitDial(1);
  ASSERT_NE(next, nullptr);
  EXPECT_TRUE(paused->cancelled());
  EXPECT_EQ(next->address(), "c2:7000");
  // The new leader acknowledges: the link stays.
  next->Registered(100, 1000);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(next->WaitWritten(static_cast<size_t>(2 + i)));
    ASSERT_NO_FATAL_FAILURE(AckNewestReport(*next));
  }
  EXPECT_FALSE(next->cancelled());
  EXPECT_EQ(dialer_.dials(), 2u);
}

// A registration that is never answered (the stall limit is the last
// coordinator's timings: they are unknown before a first registration).
TEST_F(LinkTest, AStreamThatNeverRegistersIsGivenUpToo) {
  Start(TwoCoordinators());
  auto first = dialer_.WaitDial(0);
  ASSERT_NE(first, nullptr);
  first->Registered(100, 1000);
  ASSERT_TRUE(first->WaitWritten(2));
  first->End(absl::UnavailableError("the coordinator was killed"));
  auto silent = dialer_.WaitDial(1);
  ASSERT_NE(silent, nullptr);
  ASSERT_TRUE(silent->WaitWritten(1));  // the registration, never answered
  auto next = dialer_.WaitDial(2);
  ASSERT_NE(next, nullptr);
  EXPECT_TRUE(silent->cancelled());
  EXPECT_EQ(silent->address(), "c2:7000");
  EXPECT_EQ(next->address(), "c1:7000");
}

// A report slow to gather (mailstored slow to answer) is not held against
// the coordinator: the wait counts from the write.
TEST_F(LinkTest, AReportSlowToGatherDoesNotMakeAHealthyCoordinatorLookStalled) {
  auto s = StartSlowToGather();
  ASSERT_NE(s, nullptr);
  for (size_t acked = 0; acked < 4; ++acked) {
    ASSERT_TRUE(s->WaitWritten(2 + acked));
    ASSERT_NO_FATAL_FAILURE(AckNewestReport(*s));
  }
  EXPECT_FALSE(s->cancelled());
  EXPECT_EQ(dialer_.dials(), 1u);
}

// The same against a coordinator that, as the real one does, skips the
// acknowledgements the agent marked optional: the stall clock starts only
// at a report that asks for one, not before the next report is gathered.
TEST_F(LinkTest, ASkippedOptionalAcknowledgementDoesNotMakeAHealthyCoordinatorLookStalled) {
  auto s = StartSlowToGather();
  ASSERT_NE(s, nullptr);
  int skipped = 0;
  size_t handled = 0;
  for (size_t written = 2; written < 10; ++written) {
    ASSERT_TRUE(s->WaitWritten(written));
    const auto reports = Reports(*s);
    bool asked = false;
    for (; handled < reports.size(); ++handled) {
      if (reports[handled].ack_optional()) {
        ++skipped;
      } else {
        asked = true;
      }
    }
    if (asked) {
      ASSERT_NO_FATAL_FAILURE(AckNewestReport(*s));
    }
  }
  EXPECT_GE(skipped, 3);
  EXPECT_FALSE(s->cancelled());
  EXPECT_EQ(dialer_.dials(), 1u);
}

TEST_F(LinkTest, WithOneCoordinatorASilentStreamIsKeptForTheKeepalivesToJudge) {
  Start(OneCoordinator());
  auto s = dialer_.WaitDial(0);
  ASSERT_NE(s, nullptr);
  s->Registered(100, 1000);
  ASSERT_TRUE(s->WaitWritten(8));  // 700 ms of reports, none acknowledged
  EXPECT_FALSE(s->cancelled());
  EXPECT_EQ(dialer_.dials(), 1u);
}

TEST_F(LinkTest, EachNewSessionsReportsCarryTheUndeliveredResultsAgain) {
  {
    std::lock_guard<std::mutex> l(mu_);
    v1::JobUpdate u;
    u.set_job("j7");
    u.set_attempt(1);
    u.set_phase(v1::JOB_SUCCEEDED);
    undelivered_.push_back(u);
  }
  Start(TwoCoordinators());
  auto first = dialer_.WaitDial(0);
  ASSERT_NE(first, nullptr);
  first->Registered(100, 60000);
  ASSERT_TRUE(first->WaitWritten(2));
  first->End(absl::UnavailableError("the coordinator was killed"));
  auto second = dialer_.WaitDial(1);
  ASSERT_NE(second, nullptr);
  second->Registered(100, 60000);
  ASSERT_TRUE(second->WaitWritten(2));
  const auto reports = Reports(*second);
  ASSERT_FALSE(reports.empty());
  ASSERT_EQ(reports[0].undelivered_size(), 1);
  EXPECT_EQ(reports[0].undelivered(0).job(), "j7");
  EXPECT_EQ(registrations_.load(), 2);
}

TEST_F(LinkTest, TheLeaseBoundFollowsTheNewestAcknowledgedReport) {
  Start(OneCoordinator());
  auto s = dialer_.WaitDial(0);
  ASSERT_NE(s, nullptr);
  s->Registered(100, 600);  // a lease of 600 ms, reports every 100 ms
  ASSERT_TRUE(s->WaitWritten(2));
  const absl::Duration assigned = RealClock()->Monotonic();
  EXPECT_FALSE(link_->LeaseMayHaveLapsed(assigned));
  // Nothing acknowledged for more than the lease less a report period.
  absl::SleepFor(absl::Milliseconds(700));
  EXPECT_TRUE(link_->LeaseMayHaveLapsed(assigned));
  // A report sent just now is acknowledged: the lease was renewed.
  const size_t written = s->Written().size();
  ASSERT_TRUE(s->WaitWritten(written + 1));
  ASSERT_NO_FATAL_FAILURE(AckNewestReport(*s));
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (link_->LeaseMayHaveLapsed(assigned) && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(link_->LeaseMayHaveLapsed(assigned));
}

}  // namespace
}  // namespace dagvault::agent
