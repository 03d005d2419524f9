// AgentService: one stream per connected agent (proto/dagvault/v1/agent.proto).
// The agent's certificate names its node: it may register, report and
// update jobs for that node only.
//
// On gRPC's callback API: a stream costs no thread of its own, so 10,000
// agents are 10,000 reactors, not 20,000 threads (issue 18 §5). Reactions
// must not block. A report of a node that runs no job only updates memory
// and is handled in the reaction; any other message may write the catalog
// or talk to etcd, and is handled on a small pool of workers. A stream
// reads its next message only once the last one is handled, which keeps
// each agent's messages in order. Sends never block either: the node's
// channel queues them and writes one at a time.
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/tls.h"
#include "coordinator/server/coordinator.h"
#include "dagvault/v1/agent.grpc.pb.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

// A fixed pool of threads that run posted tasks in order of posting.
class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> l(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and nothing left to run
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      l.unlock();
      task();
      l.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

// The node's channel: what the topology and the job manager send through.
// Sends queue and return at once; one write at a time goes out, the next
// when it is done. Closed before the stream finishes, and for good once it
// is done: a send then fails, as to a node that is not connected.
class StreamChannel final : public AgentChannel {
 public:
  explicit StreamChannel(grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* stream,
                         size_t max_queued = 10000)
      : stream_(stream), max_queued_(max_queued) {}

  bool Send(const v1::CoordinatorMessage& message) override {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return false;
    if (queue_.size() >= max_queued_) {
      logging::Get("coordinator")
          ->warn(
              "an agent's stream has {} messages waiting: it is not reading; this one is "
              "dropped (its lease, and the agent's own fencing, settle what was lost)",
              queue_.size());
      return false;
    }
    queue_.push_back(message);
    if (!writing_) {
      writing_ = true;
      stream_->StartWrite(&queue_.front());
    }
    return true;
  }

  // The write of the head of the queue is done.
  void WriteDone(bool ok) {
    std::lock_guard<std::mutex> l(mu_);
    queue_.pop_front();
    writing_ = false;
    if (!ok) closed_ = true;
    if (closed_ || queue_.empty()) return;
    writing_ = true;
    stream_->StartWrite(&queue_.front());
  }

  // No write starts after this (the stream is about to finish). True when
  // a write is still out: an agent that does not read would keep it, and
  // the stream's final status behind it, out forever.
  bool Close() {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
    return writing_;
  }

 private:
  grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* const stream_;
  const size_t max_queued_;
  std::mutex mu_;
  std::deque<v1::CoordinatorMessage> queue_;  // guarded by mu_; the head is being written
  bool writing_ = false;                      // guarded by mu_
  bool closed_ = false;                       // guarded by mu_
};

class AgentStream final : public grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage> {
 public:
  AgentStream(Coordinator* c, WorkerPool* workers, grpc::CallbackServerContext* context)
      : c_(c), workers_(workers), context_(context) {
    // A node's certificate, or not a word read (access.h).
    if (auto refused = c_->Refuse(*context, "/dagvault.v1.AgentService/Connect", &caller_)) {
      End(*refused);
      return;
    }
    // A standby points the agent to the leader before it reads a word.
    if (auto standby = c_->RedirectIfStandby(context)) {
      End(*standby);
      return;
    }
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent went away, or the stream was cancelled.
      End(grpc::Status::OK);
      return;
    }
    // A report of a node that runs no job only updates memory: handled
    // here, without waking a worker (at 10,000 agents, 2,000 a second).
    // Anything else may write the catalog or call etcd, which a reaction
    // must not wait for: a worker handles it.
    if (registered_ && incoming_.has_report() && c_->jobs().ReportIsQuiet(incoming_.report())) {
      Continue(Handle(&incoming_));
      return;
    }
    workers_->Post([this] { Continue(Handle(&incoming_)); });
  }

  void OnWriteDone(bool ok) override {
    if (channel_) channel_->WriteDone(ok);
  }

  void OnDone() override {
    // Every reaction has run, and no message is being handled (a stream
    // ends only between messages).
    delete this;
  }

 private:
  // The next read, or the end of the stream.
  void Continue(const std::optional<grpc::Status>& end) {
    if (end) {
      End(*end);
    } else {
      StartRead(&incoming_);
    }
  }

  // A message; what to end the stream with, if it must end. A report's
  // copies are taken out of *message.
  std::optional<grpc::Status> Handle(v1::AgentMessage* message) {
    const v1::AgentMessage& m = *message;
    if (!registered_) return Register(m);
    if (!c_->MayAct()) {
      // Leadership lost while the stream was open: the agent goes to the
      // new leader, which acts on its report instead.
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this coordinator no longer leads");
    }
    if (m.has_report()) {
      if (m.report().node() != node_) {
        return grpc::Status(
            grpc::StatusCode::PERMISSION_DENIED,
            absl::StrCat("refused: node ", node_, " reported for node ", m.report().node()));
      }
      c_->topology().Report(message->mutable_report());
      c_->jobs().OnReport(m.report());
      c_->archives().OnReport(m.report());
      // An acknowledgement costs the leader a write, and the TLS front a
      // wake-up and a record, per report: the agent says when it needs
      // none (agent.proto, NodeReport.ack_optional). A report that lists
      // a running job is always acknowledged: its leases were renewed.
      if (!m.report().ack_optional() || m.report().running_size() > 0) {
        v1::CoordinatorMessage ack;
        ack.mutable_report_ack()->set_sent_us(m.report().sent_us());
        channel_->Send(ack);
      }
    } else if (m.has_job_update()) {
      c_->jobs().OnJobUpdate(node_, m.job_update());
    }
    return std::nullopt;
  }

  std::optional<grpc::Status> Register(const v1::AgentMessage& first) {
    auto log = logging::Get("coordinator");
    if (!first.has_register_()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "an agent's first message must be Register");
    }
    const v1::Register& hello = first.register_();
    const PeerIdentity& peer = caller_;
    if (!c_->config().insecure_dev()) {
      if (!peer.authenticated || peer.role != kRoleNode || peer.common_name != hello.node()) {
        const std::string why = absl::StrCat(
            "refused: the agent registers as node \"", hello.node(), "\" but its certificate is ",
            peer.Describe(), "; an agent may act only for the node its certificate names");
        log->warn("agent from {}: {}", context_->peer(), why);
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, why);
      }
    }
    if (hello.node().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Register: node is empty");
    }
    node_ = hello.node();
    channel_ = std::make_shared<StreamChannel>(this);
    v1::CoordinatorMessage welcome;
    welcome.mutable_registered()->set_report_every_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(c_->report_every())));
    welcome.mutable_registered()->set_lease_ttl_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(c_->lease_ttl())));
    welcome.mutable_registered()->set_writer_session_timeout_ms(
        c_->config().writer_session_timeout_ms() != 0 ? c_->config().writer_session_timeout_ms()
                                                      : 60000);
    // The welcome goes first: the node's channel is published only then,
    // so no assignment can reach the agent before it.
    channel_->Send(welcome);
    c_->topology().Connected(hello, channel_);
    registered_ = true;
    log->info("node {} connected (agent {}, run {})", hello.node(), hello.agent_version(),
              hello.incarnation());
    return std::nullopt;
  }

  // Finishes the stream once; no message is being handled. The node is
  // disconnected first, so that nothing more is sent into a channel that
  // takes no more (a restore plan's step sent meanwhile would count as
  // delivered).
  void End(const grpc::Status& status) {
    if (channel_ && registered_) {
      c_->topology().Disconnected(node_, channel_);
      logging::Get("coordinator")->info("node {} disconnected", node_);
    }
    if (channel_ && channel_->Close()) context_->TryCancel();
    Finish(status);
  }

  Coordinator* const c_;
  WorkerPool* const workers_;
  grpc::CallbackServerContext* const context_;
  // Whose certificate the stream was checked with when it started.
  PeerIdentity caller_;
  // Read by the reaction and handled by a worker, never both at once: the
  // next read starts only after the handling.
  v1::AgentMessage incoming_;
  std::string node_;
  bool registered_ = false;
  std::shared_ptr<StreamChannel> channel_;
};

class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  explicit AgentServiceImpl(Coordinator* c) : c_(c), workers_(kWorkers) {}

  grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* Connect(
      grpc::CallbackServerContext* context) override {
    return new AgentStream(c_, &workers_, context);
  }

 private:
  // Handling a message is mostly waiting for the catalog (or etcd): more
  // threads than cores keep it busy without a thread per agent, and a few
  // handlers waiting on one slow job leave the others to the rest.
  static constexpr int kWorkers = 16;
  Coordinator* c_;
  WorkerPool workers_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeAgentService(Coordinator* coordinator) {
  return std::make_unique<AgentServiceImpl>(coordinator);
}

}  // namespace dagvault::coordinator
