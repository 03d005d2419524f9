#include "node-agent/daemon/coordinator_link.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "dagvault/v1/agent.grpc.pb.h"
#include "node-agent/daemon/coordinator_channel_args.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;

class GrpcStream final : public CoordinatorStream {
 public:
  GrpcStream(const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& creds) {
    stub_ = v1::AgentService::NewStub(
        grpc::CreateCustomChannel(address, creds, CoordinatorChannelArguments()));
    stream_ = stub_->Connect(&context_);
  }
  bool Write(const v1::AgentMessage& m) override { return stream_->Write(m); }
  bool Read(v1::CoordinatorMessage* m) override { return stream_->Read(m); }
  void Cancel() override { context_.TryCancel(); }
  absl::Status Finish(std::string* leader) override {
    // Not cancelled first: the status and trailing metadata are the
    // coordinator's refusal (its reason, the leader a standby names).
    const grpc::Status s = stream_->Finish();
    *leader = LeaderNamedBy(context_);
    return FromGrpcStatus(s, "the coordinator stream");
  }

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::CoordinatorMessage>> stream_;
};

class GrpcDialer final : public CoordinatorDialer {
 public:
  explicit GrpcDialer(std::shared_ptr<grpc::ChannelCredentials> creds) : creds_(std::move(creds)) {}
  std::unique_ptr<CoordinatorStream> Dial(const std::string& address) override {
    return std::make_unique<GrpcStream>(address, creds_);
  }

 private:
  std::shared_ptr<grpc::ChannelCredentials> creds_;
};

}  // namespace

std::unique_ptr<CoordinatorDialer> MakeGrpcDialer(
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  return std::make_unique<GrpcDialer>(std::move(credentials));
}

CoordinatorLink::CoordinatorLink(const v1::AgentConfig& config, std::string agent_version,
                                 std::string incarnation, CoordinatorDialer* dialer, Clock* clock,
                                 Handlers handlers)
    : node_(config.node()),
      agent_version_(std::move(agent_version)),
      incarnation_(std::move(incarnation)),
      dialer_(dialer),
      clock_(clock),
      handlers_(std::move(handlers)),
      min_backoff_(
          absl::Milliseconds(config.reconnect_min_ms() != 0 ? config.reconnect_min_ms() : 500)),
      max_backoff_(
          absl::Milliseconds(config.reconnect_max_ms() != 0 ? config.reconnect_max_ms() : 30000)),
      addresses_(config),
      several_coordinators_(addresses_.configured() > 1),
      last_acked_sent_(clock->Monotonic()) {}

void CoordinatorLink::Run(const std::atomic<bool>* stop) {
  auto log = logging::Get("agent");
  absl::Duration backoff = min_backoff_;
  while (!*stop) {
    bool registered = false;
    std::string leader;
    const std::string dialled = addresses_.current();
    absl::Status s = Session(stop, &registered, &leader);
    if (*stop) break;
    if (registered) backoff = min_backoff_;
    if (addresses_.Next(leader)) {
      // A standby named the leader: there at once.
      log->info("coordinator {} stands by; following it to the leader {}", dialled,
                addresses_.current());
      continue;
    }
    warnings_.Warn(absl::StrCat("coordinator ", dialled, ": ",
                                s.ok() ? std::string("stream ended") : std::string(s.message()),
                                "; reconnecting to ", addresses_.current()));
    const absl::Duration until = clock_->Monotonic() + backoff;
    while (!*stop && clock_->Monotonic() < until) absl::SleepFor(absl::Milliseconds(20));
    backoff = std::min(backoff * 2, max_backoff_);
  }
}

void CoordinatorLink::Cancel() {
  std::lock_guard<std::mutex> l(mu_);
  if (current_ != nullptr) current_->Cancel();
}

bool CoordinatorLink::Write(const v1::AgentMessage& m) {
  std::lock_guard<std::mutex> l(write_mu_);
  return writer_ != nullptr && writer_->Write(m);
}

void CoordinatorLink::CheckStall() {
  std::lock_guard<std::mutex> l(mu_);
  if (!several_coordinators_ || current_ == nullptr || abandoned_) return;
  const absl::Duration stall = std::max(3 * report_every_, lease_ttl_ / 3);
  const absl::Duration waiting_since = registered_ ? first_unacked_write_ : session_started_;
  if (clock_->Monotonic() - waiting_since <= stall) return;
  logging::Get("agent")->warn(
      "the coordinator has not answered for {}: it may be paused or cut off; trying the next "
      "coordinator",
      absl::FormatDuration(stall));
  abandoned_ = true;
  current_->Cancel();
}

bool CoordinatorLink::LeaseMayHaveLapsed(absl::Duration received) const {
  std::lock_guard<std::mutex> l(mu_);
  return clock_->Monotonic() - std::max(last_acked_sent_, received) > lease_ttl_ - report_every_;
}

absl::Duration CoordinatorLink::lease_ttl() const {
  std::lock_guard<std::mutex> l(mu_);
  return lease_ttl_;
}

absl::Status CoordinatorLink::Session(const std::atomic<bool>* stop, bool* registered,
                                      std::string* leader) {
  std::unique_ptr<CoordinatorStream> stream = dialer_->Dial(addresses_.current());
  {
    std::lock_guard<std::mutex> l(mu_);
    if (*stop) return absl::CancelledError("stopping");
    current_ = stream.get();
    session_started_ = clock_->Monotonic();
    abandoned_ = false;
    registered_ = false;
    first_unacked_write_ = absl::InfiniteDuration();
    unacked_reports_ = 0;
  }
  auto forget = [&] {
    {
      std::lock_guard<std::mutex> l(write_mu_);
      writer_ = nullptr;
    }
    std::lock_guard<std::mutex> l(mu_);
    current_ = nullptr;
  };
  v1::AgentMessage hello;
  hello.mutable_register_()->set_node(node_);
  hello.mutable_register_()->set_agent_version(agent_version_);
  hello.mutable_register_()->set_incarnation(incarnation_);
  v1::CoordinatorMessage first;
  const bool answered = stream->Write(hello) && stream->Read(&first);
  if (!answered || !first.has_registered()) {
    // Refused (the status says why), or an answer that is not a
    // registration (ended here). Every read is done before Finish.
    if (answered) stream->Cancel();
    for (v1::CoordinatorMessage rest; stream->Read(&rest);) {
    }
    forget();
    return stream->Finish(leader);
  }
  *registered = true;
  warnings_.Reset();
  {
    std::lock_guard<std::mutex> l(mu_);
    registered_ = true;
    report_every_ =
        absl::Milliseconds(std::max<uint32_t>(first.registered().report_every_ms(), 100));
    if (first.registered().lease_ttl_ms() != 0) {
      lease_ttl_ = absl::Milliseconds(first.registered().lease_ttl_ms());
    }
  }
  if (handlers_.on_registered) handlers_.on_registered(first.registered());
  {
    std::lock_guard<std::mutex> l(write_mu_);
    writer_ = stream.get();
  }
  logging::Get("agent")->info("registered with coordinator {} as {}", addresses_.current(), node_);
  std::mutex report_mu;
  std::condition_variable report_cv;
  bool ended = false;
  std::thread reporter([&] {
    std::unique_lock<std::mutex> l(report_mu);
    do {
      l.unlock();
      SendReport();
      l.lock();
    } while (
        !report_cv.wait_for(l, absl::ToChronoMilliseconds(report_every()), [&] { return ended; }));
  });
  v1::CoordinatorMessage m;
  while (stream->Read(&m)) {
    if (m.has_report_ack()) {
      std::lock_guard<std::mutex> l(mu_);
      last_acked_sent_ = std::max(last_acked_sent_, absl::Microseconds(m.report_ack().sent_us()));
      first_unacked_write_ = absl::InfiniteDuration();
      unacked_reports_ = 0;
    } else {
      handlers_.on_message(m);
    }
  }
  {
    std::lock_guard<std::mutex> l(report_mu);
    ended = true;
  }
  report_cv.notify_all();
  reporter.join();
  forget();
  return stream->Finish(leader);
}

absl::Duration CoordinatorLink::report_every() const {
  std::lock_guard<std::mutex> l(mu_);
  return report_every_;
}

void CoordinatorLink::SendReport() {
  v1::AgentMessage m;
  v1::NodeReport* r = m.mutable_report();
  r->set_node(node_);
  // Monotonic: only this agent compares it (ReportAck). Taken before the
  // report is gathered (asking mailstored can take a while), so the lease
  // bound it gives errs early.
  r->set_sent_us(absl::ToInt64Microseconds(clock_->Monotonic()));
  handlers_.fill_report(r);
  {
    // Before the write, so that its acknowledgement cannot come first.
    std::lock_guard<std::mutex> l(mu_);
    // When every report before this one is acknowledged and it lists no
    // running job (no lease for an acknowledgement to bound) and nothing
    // the coordinator must confirm, the coordinator may skip its
    // acknowledgement; the next report asks again. Only a report that
    // asks starts the stall clock (CheckStall): a report slow to gather
    // after an unacknowledged optional one must not count against a
    // healthy coordinator.
    r->set_ack_optional(unacked_reports_ == 0 && r->running().empty() && r->undelivered().empty() &&
                        r->archived_segments().empty());
    ++unacked_reports_;
    if (!r->ack_optional() && first_unacked_write_ == absl::InfiniteDuration()) {
      first_unacked_write_ = clock_->Monotonic();
    }
  }
  Write(m);
}

}  // namespace dagvault::agent
