#include "coordinator/server/queued_channel.h"

#include "common/logging.h"

namespace dagvault::coordinator {

QueuedChannel::QueuedChannel(std::function<bool(const dagvault::v1::CoordinatorMessage&)> write,
                             std::function<void()> cancel, size_t max_queued)
    : write_(std::move(write)), cancel_(std::move(cancel)), max_queued_(max_queued) {
  writer_ = std::thread([this] { WriteLoop(); });
}

QueuedChannel::~QueuedChannel() { Close(); }

bool QueuedChannel::Send(const dagvault::v1::CoordinatorMessage& message) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_ || broken_) return false;
    if (queue_.size() >= max_queued_) {
      logging::Get("coordinator")
          ->warn(
              "an agent's stream has {} messages waiting: it is not reading; this one is "
              "dropped (its lease, and the agent's own fencing, settle what was lost)",
              queue_.size());
      return false;
    }
    queue_.push_back(message);
  }
  cv_.notify_one();
  return true;
}

void QueuedChannel::WriteLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    cv_.wait(l, [&] { return closed_ || !queue_.empty(); });
    if (closed_) return;
    dagvault::v1::CoordinatorMessage m = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    l.unlock();
    const bool ok = write_(m);
    l.lock();
    writing_ = false;
    if (!ok) {
      broken_ = true;
      queue_.clear();
      return;
    }
  }
}

void QueuedChannel::Close() {
  bool writing = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_ && !writer_.joinable()) return;
    closed_ = true;
    queue_.clear();
    // No write starts once closed_ is set (the writer checks it under mu_).
    writing = writing_;
  }
  cv_.notify_all();
  // A write blocked on a stuck stream returns only when the RPC ends; an
  // idle writer needs no cancel, and the handler's own status stands.
  if (writing && cancel_) cancel_();
  if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id()) writer_.join();
}

size_t QueuedChannel::pending() {
  std::lock_guard<std::mutex> l(mu_);
  return queue_.size() + (writing_ ? 1 : 0);
}

}  // namespace dagvault::coordinator
