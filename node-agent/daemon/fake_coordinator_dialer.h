// A CoordinatorDialer for tests of CoordinatorLink, without processes or
// sockets: every Dial opens a FakeCoordinatorStream the test plays the
// coordinator on (what it sends, how the stream ends, what the agent
// wrote).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "node-agent/daemon/coordinator_link.h"

namespace dagvault::agent {

class FakeCoordinatorStream {
 public:
  explicit FakeCoordinatorStream(std::string address) : address_(std::move(address)) {}
  const std::string& address() const { return address_; }

  // The coordinator's side.
  void Send(const dagvault::v1::CoordinatorMessage& m) {
    std::lock_guard<std::mutex> l(mu_);
    inbox_.push_back(m);
    cv_.notify_all();
  }
  void Registered(uint32_t report_every_ms, uint32_t lease_ttl_ms) {
    dagvault::v1::CoordinatorMessage m;
    m.mutable_registered()->set_report_every_ms(report_every_ms);
    m.mutable_registered()->set_lease_ttl_ms(lease_ttl_ms);
    Send(m);
  }
  // Ends the stream after what was sent: with `status`, and the leader a
  // standby names.
  void End(absl::Status status, std::string leader = "") {
    std::lock_guard<std::mutex> l(mu_);
    ended_ = true;
    status_ = std::move(status);
    leader_ = std::move(leader);
    cv_.notify_all();
  }
  std::vector<dagvault::v1::AgentMessage> Written() {
    std::lock_guard<std::mutex> l(mu_);
    return written_;
  }
  // Until the agent has written `count` messages; false after `timeout`.
  bool WaitWritten(size_t count, absl::Duration timeout = absl::Seconds(10)) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, absl::ToChronoMilliseconds(timeout),
                        [&] { return written_.size() >= count; });
  }
  bool cancelled() {
    std::lock_guard<std::mutex> l(mu_);
    return cancelled_;
  }

  // The agent's side (CoordinatorStream).
  bool Write(const dagvault::v1::AgentMessage& m) {
    std::lock_guard<std::mutex> l(mu_);
    if (ended_ || cancelled_) return false;
    written_.push_back(m);
    cv_.notify_all();
    return true;
  }
  bool Read(dagvault::v1::CoordinatorMessage* m) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return !inbox_.empty() || ended_ || cancelled_; });
    if (cancelled_ || inbox_.empty()) return false;
    *m = inbox_.front();
    inbox_.pop_front();
    return true;
  }
  void Cancel() {
    std::lock_guard<std::mutex> l(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  absl::Status Finish(std::string* leader) {
    std::lock_guard<std::mutex> l(mu_);
    *leader = leader_;
    if (cancelled_ && !ended_) return absl::CancelledError("cancelled");
    return status_;
  }

 private:
  const std::string address_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<dagvault::v1::CoordinatorMessage> inbox_;
  std::vector<dagvault::v1::AgentMessage> written_;
  bool ended_ = false;
  bool cancelled_ = false;
  absl::Status status_;
  std::string leader_;
};

class FakeCoordinatorDialer final : public CoordinatorDialer {
 public:
  std::unique_ptr<CoordinatorStream> Dial(const std::string& address) override {
    auto stream = std::make_shared<FakeCoordinatorStream>(address);
    {
      std::lock_guard<std::mutex> l(mu_);
      dialled_.push_back(stream);
      cv_.notify_all();
    }
    return std::make_unique<Handle>(stream);
  }
  // The stream of the n-th dial (from 0), once it is made; null after
  // `timeout`.
  std::shared_ptr<FakeCoordinatorStream> WaitDial(size_t n,
                                                  absl::Duration timeout = absl::Seconds(10)) {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, absl::ToChronoMilliseconds(timeout), [&] { return dialled_.size() > n; }))
      return nullptr;
    return dialled_[n];
  }
  size_t dials() {
    std::lock_guard<std::mutex> l(mu_);
    return dialled_.size();
  }

 private:
  class Handle final : public CoordinatorStream {
   public:
    explicit Handle(std::shared_ptr<FakeCoordinatorStream> s) : s_(std::move(s)) {}
    bool Write(const dagvault::v1::AgentMessage& m) override { return s_->Write(m); }
    bool Read(dagvault::v1::CoordinatorMessage* m) override { return s_->Read(m); }
    void Cancel() override { s_->Cancel(); }
    absl::Status Finish(std::string* leader) override { return s_->Finish(leader); }

   private:
    std::shared_ptr<FakeCoordinatorStream> s_;
  };

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<FakeCoordinatorStream>> dialled_;
};

}  // namespace dagvault::agent
