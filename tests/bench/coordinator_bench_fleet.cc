// SimFleet: thousands of simulated agents on gRPC's asynchronous client,
// driven by a few threads, so that at 10,000 agents the simulation does not
// eat the two cores the coordinator under measurement needs (SimAgent's
// two threads per agent would be 20,000). Each agent registers, reports its
// copies every `every`, and fails each assignment at once; a stream that
// breaks is dialled again after a second.
#include <grpcpp/alarm.h>

#include <algorithm>
#include <deque>

#include "absl/strings/str_cat.h"
#include "node-agent/daemon/coordinator_channel_args.h"
#include "tests/bench/coordinator_bench.h"

namespace dagvault::bench {

namespace v1 = dagvault::v1;

namespace {

enum class OpKind { kAlarm, kStart, kRead, kWrite, kFinish };

}  // namespace

struct SimFleet::Agent {
  struct Op {
    Agent* agent;
    OpKind kind;
  };
  int node = 0;
  std::shared_ptr<grpc::ChannelCredentials> creds;
  v1::NodeReport report;
  Op alarm_op{this, OpKind::kAlarm}, start_op{this, OpKind::kStart}, read_op{this, OpKind::kRead},
      write_op{this, OpKind::kWrite}, finish_op{this, OpKind::kFinish};

  std::mutex mu;
  grpc::Alarm alarm;
  std::unique_ptr<v1::AgentService::Stub> stub;
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::AgentMessage, v1::CoordinatorMessage>> stream;
  v1::CoordinatorMessage incoming;
  std::deque<v1::AgentMessage> to_write;  // the head is being written
  grpc::Status finished;
  bool connected = false, registered = false, broken = false, finishing = false;
  bool alarm_armed = false;
  // A report is out that the leader has not acknowledged (as
  // CoordinatorLink does, the next report then asks for an acknowledgement).
  bool report_unacked = false;
  int stream_ops = 0;  // start, reads and writes in flight on the stream
  absl::Time next_report = absl::InfinitePast();
};

SimFleet::SimFleet(int nodes, const std::vector<std::shared_ptr<grpc::ChannelCredentials>>& creds,
                   std::string address, absl::Duration every, absl::Duration ramp, int threads)
    : address_(std::move(address)), every_(every) {
  for (int n = 0; n < nodes; ++n) {
    auto a = std::make_unique<Agent>();
    a->node = n;
    a->creds = creds[static_cast<size_t>(n)];
    a->report = ReportOf(n, nodes);
    agents_.push_back(std::move(a));
  }
  for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { Poll(); });
  // Connections spread over `ramp`, as agents started by their service
  // managers would be, not one handshake storm.
  for (int n = 0; n < nodes; ++n) {
    Agent& a = *agents_[static_cast<size_t>(n)];
    std::lock_guard<std::mutex> l(a.mu);
    Arm(a, absl::Now() + ramp * n / std::max(1, nodes));
  }
}

SimFleet::~SimFleet() {
  stopping_ = true;
  for (auto& a : agents_) {
    std::lock_guard<std::mutex> l(a->mu);
    a->alarm.Cancel();
    if (a->context) a->context->TryCancel();
  }
  // Every operation comes back (cancelled) before the queue may close.
  while (outstanding_.load() > 0) absl::SleepFor(absl::Milliseconds(10));
  cq_.Shutdown();
  for (auto& t : threads_) t.join();
}

int SimFleet::Registered() const {
  int n = 0;
  for (const auto& a : agents_) {
    std::lock_guard<std::mutex> l(a->mu);
    n += a->registered;
  }
  return n;
}

void SimFleet::Arm(Agent& a, absl::Time when) {
  a.alarm_armed = true;
  ++outstanding_;
  a.alarm.Set(&cq_, absl::ToChronoTime(when), &a.alarm_op);
}

void SimFleet::Connect(Agent& a) {
  if (!a.stub) {
    a.stub = v1::AgentService::NewStub(
        grpc::CreateCustomChannel(address_, a.creds, agent::CoordinatorChannelArguments()));
  }
  a.context = std::make_unique<grpc::ClientContext>();
  a.stream = a.stub->PrepareAsyncConnect(a.context.get(), &cq_);
  a.connected = false;
  a.registered = false;
  a.broken = false;
  a.finishing = false;
  a.to_write.clear();
  v1::AgentMessage hello;
  hello.mutable_register_()->set_node(NodeName(a.node));
  hello.mutable_register_()->set_agent_version("sim");
  a.to_write.push_back(std::move(hello));
  ++a.stream_ops;
  ++outstanding_;
  a.stream->StartCall(&a.start_op);
}

void SimFleet::WriteNext(Agent& a) {
  ++a.stream_ops;
  ++outstanding_;
  a.stream->Write(a.to_write.front(), &a.write_op);
}

void SimFleet::Send(Agent& a, v1::AgentMessage m) {
  a.to_write.push_back(std::move(m));
  if (a.to_write.size() == 1 && a.connected && !a.broken) WriteNext(a);
}

void SimFleet::Break(Agent& a) {
  if (!a.broken && a.context) a.context->TryCancel();
  a.broken = true;
  a.registered = false;
  if (a.stream_ops == 0 && !a.finishing && a.stream) {
    a.finishing = true;
    ++outstanding_;
    a.stream->Finish(&a.finished, &a.finish_op);
  }
}

void SimFleet::Poll() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
    auto* op = static_cast<Agent::Op*>(tag);
    Agent& a = *op->agent;
    {
      std::lock_guard<std::mutex> l(a.mu);
      Handle(a, static_cast<int>(op->kind), ok);
    }
    --outstanding_;
  }
}

void SimFleet::Handle(Agent& a, int kind_number, bool ok) {
  const auto kind = static_cast<OpKind>(kind_number);
  if (kind == OpKind::kStart || kind == OpKind::kRead || kind == OpKind::kWrite) --a.stream_ops;
  switch (kind) {
    case OpKind::kAlarm:
      // One alarm per agent at a time: it dials (no stream), or reports
      // and sets itself again (a broken stream's Finish dials again).
      a.alarm_armed = false;
      if (!ok || stopping_) return;
      if (!a.stream) {
        Connect(a);
        return;
      }
      if (a.broken) return;
      if (a.registered) {
        v1::AgentMessage m;
        *m.mutable_report() = a.report;
        m.mutable_report()->set_sent_us(absl::ToUnixMicros(absl::Now()));
        m.mutable_report()->set_ack_optional(!a.report_unacked);
        a.report_unacked = true;
        Send(a, std::move(m));
        ++reports_;
      }
      Arm(a, absl::Now() + every_);
      return;
    case OpKind::kStart:
      if (!ok || stopping_) return Break(a);
      a.connected = true;
      WriteNext(a);  // the hello
      ++a.stream_ops;
      ++outstanding_;
      a.stream->Read(&a.incoming, &a.read_op);
      return;
    case OpKind::kWrite:
      if (!ok || stopping_) return Break(a);
      a.to_write.pop_front();
      if (!a.to_write.empty()) WriteNext(a);
      return;
    case OpKind::kRead:
      if (!ok || stopping_) return Break(a);
      if (a.incoming.has_report_ack()) {
        a.report_unacked = false;
      } else if (a.incoming.has_registered() && !a.registered) {
        a.registered = true;
        a.report_unacked = false;
        ++sessions_;
        // Reports spread over a period.
        if (!a.alarm_armed) Arm(a, absl::Now() + every_ * (a.node % 97) / 97);
      } else if (a.incoming.has_assignment()) {
        v1::AgentMessage u;
        u.mutable_job_update()->set_job(a.incoming.assignment().job());
        u.mutable_job_update()->set_attempt(a.incoming.assignment().attempt());
        u.mutable_job_update()->set_phase(v1::JOB_FAILED);
        u.mutable_job_update()->set_error("simulated agent");
        Send(a, std::move(u));
      }
      ++a.stream_ops;
      ++outstanding_;
      a.stream->Read(&a.incoming, &a.read_op);
      return;
    case OpKind::kFinish:
      a.stream.reset();
      a.context.reset();
      a.finishing = false;
      if (!stopping_ && !a.alarm_armed) Arm(a, absl::Now() + absl::Seconds(1));  // dial again
      return;
  }
}

}  // namespace dagvault::bench
