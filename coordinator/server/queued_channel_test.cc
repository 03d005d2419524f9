#include "coordinator/server/queued_channel.h"

#include <atomic>
#include <future>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

v1::CoordinatorMessage Ack(const std::string& job) {
  v1::CoordinatorMessage m;
  m.mutable_ack()->set_job(job);
  return m;
}

// A stream whose writes block until the test lets them through (a full
// TCP window), or until the RPC is cancelled.
struct StuckStream {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false, cancelled = false, blocked = false;
  std::vector<std::string> written;

  bool Write(const v1::CoordinatorMessage& m) {
    std::unique_lock<std::mutex> l(mu);
    blocked = true;
    cv.notify_all();
    cv.wait(l, [&] { return open || cancelled; });
    blocked = false;
    if (cancelled) return false;
    written.push_back(m.ack().job());
    return true;
  }
  void Cancel() {
    std::lock_guard<std::mutex> l(mu);
    cancelled = true;
    cv.notify_all();
  }
  void WaitBlocked() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return blocked; });
  }
};

TEST(QueuedChannel, ASenderNeverWaitsForAStuckStreamAndOrderIsKept) {
  StuckStream stream;
  QueuedChannel channel([&](const v1::CoordinatorMessage& m) { return stream.Write(m); },
                        [&] { stream.Cancel(); });
  ASSERT_TRUE(channel.Send(Ack("a")));
  stream.WaitBlocked();  // the writer is stuck in the first write...
  // ...and the sender (the lease-expiry thread, say) goes on regardless.
  for (const char* job : {"b", "c", "d"}) EXPECT_TRUE(channel.Send(Ack(job)));
  EXPECT_EQ(channel.pending(), 4u);  // three queued, one being written
  {
    std::lock_guard<std::mutex> l(stream.mu);
    stream.open = true;
    stream.cv.notify_all();
  }
  while (channel.pending() > 0) std::this_thread::yield();
  channel.Close();
  EXPECT_THAT(stream.written, ::testing::ElementsAre("a", "b", "c", "d"));
  EXPECT_FALSE(channel.Send(Ack("e")));  // closed
}

TEST(QueuedChannel, CloseEndsAWriteStuckOnADeadStreamAndAFullQueueRefuses) {
  StuckStream stream;
  auto channel = std::make_unique<QueuedChannel>(
      [&](const v1::CoordinatorMessage& m) { return stream.Write(m); }, [&] { stream.Cancel(); },
      /*max_queued=*/2);
  ASSERT_TRUE(channel->Send(Ack("a")));
  stream.WaitBlocked();
  EXPECT_TRUE(channel->Send(Ack("b")));
  EXPECT_TRUE(channel->Send(Ack("c")));
  EXPECT_FALSE(channel->Send(Ack("d")));  // the agent is not reading
  // The handler returns: Close cancels the stuck write and joins.
  auto closed = std::async(std::launch::async, [&] { channel->Close(); });
  EXPECT_EQ(closed.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_TRUE(stream.cancelled);
  EXPECT_TRUE(stream.written.empty());
}

TEST(QueuedChannel, AnIdleChannelClosesWithoutCancellingTheRpc) {
  bool cancelled = false;
  std::atomic<int> written{0};
  QueuedChannel channel(
      [&](const v1::CoordinatorMessage&) {
        ++written;
        return true;
      },
      [&] { cancelled = true; });
  ASSERT_TRUE(channel.Send(Ack("a")));
  while (written == 0 || channel.pending() > 0) std::this_thread::yield();
  channel.Close();
  EXPECT_FALSE(cancelled);  // the handler's own status stands
}

}  // namespace
}  // namespace dagvault::coordinator
