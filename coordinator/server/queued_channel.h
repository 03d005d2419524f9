// An agent's channel whose sends never block the sender: messages go into a
// per-agent queue that one writer thread drains onto the agent's stream.
// The lease-expiry and scheduling thread, and every RPC handler, send
// through it, so one slow or stuck agent stream (a full TCP window, a
// half-open connection) delays only that agent's messages.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "coordinator/server/topology.h"

namespace dagvault::coordinator {

class QueuedChannel final : public AgentChannel {
 public:
  // `write` puts one message on the stream (false: the stream is broken);
  // `cancel` makes a `write` in progress return (it ends the RPC).
  // `max_queued`: beyond it, Send fails (the agent is not reading).
  QueuedChannel(std::function<bool(const dagvault::v1::CoordinatorMessage&)> write,
                std::function<void()> cancel, size_t max_queued = 10000);
  ~QueuedChannel() override;
  QueuedChannel(const QueuedChannel&) = delete;
  QueuedChannel& operator=(const QueuedChannel&) = delete;

  // Queues it; false when the channel is closed, broken or full.
  bool Send(const dagvault::v1::CoordinatorMessage& message) override;
  // Stops the writer (cancelling a write in progress) and waits for it;
  // what is still queued is dropped. Idempotent.
  void Close();
  // Messages not yet written: queued, or being written.
  size_t pending();

 private:
  void WriteLoop();

  const std::function<bool(const dagvault::v1::CoordinatorMessage&)> write_;
  const std::function<void()> cancel_;
  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<dagvault::v1::CoordinatorMessage> queue_;
  bool closed_ = false;
  bool broken_ = false;
  bool writing_ = false;
  std::thread writer_;
};

}  // namespace dagvault::coordinator
