#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node-agent/daemon/coordinator_channel_args.h"
#include "tests/bench/coordinator_bench.h"

namespace dagvault::bench {

namespace v1 = dagvault::v1;

std::string UnitName(int u) { return absl::StrFormat("U%05d", u); }
std::string NodeName(int n) { return absl::StrFormat("n%04d", n); }

v1::NodeReport ReportOf(int node, int nodes) {
  v1::NodeReport r;
  r.set_node(NodeName(node));
  for (int k = 0; k < 3; ++k) {
    const int owner = (node - k + nodes) % nodes;
    for (int i = 0; i < kUnitsPerNode; ++i) {
      v1::CopyStatus* c = r.add_copies();
      c->set_unit(UnitName(owner * kUnitsPerNode + i));
      c->set_node(NodeName(node));
      c->set_role(k == 0 ? v1::ACTIVE : v1::PASSIVE);
      c->set_state(k == 0 ? v1::MOUNTED : v1::HEALTHY);
      c->set_activation_preference(static_cast<uint32_t>(k + 1));
      c->set_last_log_generation(1000);
      c->set_last_inspected_generation(1000);
      c->set_last_replayed_generation(k == 0 ? 1000 : 999);
      c->set_copy_queue(k == 0 ? 0 : 1);
      c->set_active_node(NodeName(owner));
    }
  }
  v1::WriterInstance* w = r.mutable_writers()->add_writers();
  w->set_instance_name("Exchange Replication Service");
  r.mutable_writers()->set_node(NodeName(node));
  return r;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

void Row(const std::string& what, const std::string& value, const std::string& target) {
  std::cout << absl::StrFormat("  %-48s %-22s %s\n", what, value, target);
}

std::string Verdict(double value, double limit) { return value <= limit ? "met" : "NOT MET"; }

std::string VerdictOfCalls(double value, double limit, int failed) {
  if (failed > 0) return absl::StrCat("NOT MET (", failed, " calls failed)");
  return Verdict(value, limit);
}

SimAgent::SimAgent(int node, int nodes, std::shared_ptr<grpc::ChannelCredentials> creds,
                   std::vector<std::string> addresses, absl::Duration every, absl::Duration offset,
                   std::atomic<bool>* stop)
    : node_(node), stop_(stop), creds_(std::move(creds)), addresses_(std::move(addresses)) {
  report_ = ReportOf(node, nodes);
  thread_ = std::thread([this, every, offset] { Run(every, offset); });
}

SimAgent::~SimAgent() {
  {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool SimAgent::Stopping() {
  std::lock_guard<std::mutex> l(mu_);
  return closing_ || *stop_;
}

void SimAgent::Run(absl::Duration every, absl::Duration offset) {
  size_t current = 0;
  std::string pointed;
  bool first = true;
  while (!Stopping()) {
    const std::string address = pointed.empty() ? addresses_[current] : pointed;
    pointed.clear();
    std::string leader;
    Session(address, every, first ? offset : absl::ZeroDuration(), &leader);
    first = false;
    registered = false;
    if (!leader.empty()) {
      pointed = leader;  // a standby named the leader: there at once
      continue;
    }
    current = (current + 1) % addresses_.size();
    for (int i = 0; i < 2 && !Stopping(); ++i) absl::SleepFor(absl::Milliseconds(100));
  }
}

void SimAgent::Session(const std::string& address, absl::Duration every, absl::Duration offset,
                       std::string* leader) {
  auto stub = v1::AgentService::NewStub(
      grpc::CreateCustomChannel(address, creds_, agent::CoordinatorChannelArguments()));
  grpc::ClientContext context;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closing_) return;
    context_ = &context;
  }
  auto stream = stub->Connect(&context);
  v1::AgentMessage hello;
  hello.mutable_register_()->set_node(NodeName(node_));
  hello.mutable_register_()->set_agent_version("sim");
  v1::CoordinatorMessage first;
  if (stream->Write(hello) && stream->Read(&first) && first.has_registered()) {
    registered = true;
    ++sessions;
    std::mutex write_mu;
    std::thread reader([&] {
      v1::CoordinatorMessage m;
      while (stream->Read(&m)) {
        if (!m.has_assignment()) continue;
        v1::AgentMessage u;
        u.mutable_job_update()->set_job(m.assignment().job());
        u.mutable_job_update()->set_attempt(m.assignment().attempt());
        u.mutable_job_update()->set_phase(v1::JOB_FAILED);
        u.mutable_job_update()->set_error("simulated agent");
        std::lock_guard<std::mutex> l(write_mu);
        stream->Write(u);
      }
    });
    for (absl::Time until = absl::Now() + offset; !Stopping() && absl::Now() < until;) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    while (!Stopping()) {
      v1::AgentMessage m;
      *m.mutable_report() = report_;
      m.mutable_report()->set_sent_us(absl::ToUnixMicros(absl::Now()));
      {
        std::lock_guard<std::mutex> l(write_mu);
        if (!stream->Write(m)) break;
      }
      ++reports;
      const absl::Time next = absl::Now() + every;
      while (!Stopping() && absl::Now() < next) absl::SleepFor(absl::Milliseconds(100));
    }
    context.TryCancel();
    reader.join();
  }
  const grpc::Status finished = stream->Finish();
  (void)finished;
  const auto& trailers = context.GetServerTrailingMetadata();
  if (auto it = trailers.find("dagvault-leader"); it != trailers.end()) {
    *leader = std::string(it->second.data(), it->second.size());
  }
  std::lock_guard<std::mutex> l(mu_);
  context_ = nullptr;
}

}  // namespace dagvault::bench
