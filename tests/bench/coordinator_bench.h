// What coordinator_bench's sections share: the simulated deployment (node
// n reports 30 copies of 10 units each), simulated agents that speak the
// agent protocol over mutual TLS and follow the leader among several
// coordinators, and the printing of figures against targets.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "dagvault/v1/agent.grpc.pb.h"

namespace dagvault::bench {

constexpr int kUnitsPerNode = 10;  // active copies; each node also has 20 passive ones

std::string UnitName(int u);
std::string NodeName(int n);

// Node n's copies: the active copies of units n*10..n*10+9 and passive
// copies of the previous two nodes' units.
dagvault::v1::NodeReport ReportOf(int node, int nodes);

double Percentile(std::vector<double> v, double p);
void Row(const std::string& what, const std::string& value, const std::string& target = "");
std::string Verdict(double value, double limit);
// As Verdict; never "met" when a call failed (a failed call is quick).
std::string VerdictOfCalls(double value, double limit, int failed);

// One simulated agent: registers, reports every `every` (the first after
// `offset`), and fails each assignment at once. With several addresses it
// behaves like dagvault-agent: a standby's refusal names the leader, which
// it dials at once; a stream that ends sends it to the next address.
class SimAgent {
 public:
  SimAgent(int node, int nodes, std::shared_ptr<grpc::ChannelCredentials> creds,
           std::vector<std::string> addresses, absl::Duration every, absl::Duration offset,
           std::atomic<bool>* stop);
  ~SimAgent();
  std::atomic<bool> registered{false};
  std::atomic<int> reports{0};
  std::atomic<int> sessions{0};

 private:
  void Run(absl::Duration every, absl::Duration offset);
  // One stream to `address`; `leader`: whom a standby named.
  void Session(const std::string& address, absl::Duration every, absl::Duration offset,
               std::string* leader);
  bool Stopping();

  int node_;
  std::atomic<bool>* stop_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  std::vector<std::string> addresses_;
  dagvault::v1::NodeReport report_;
  std::mutex mu_;
  bool closing_ = false;                    // guarded by mu_
  grpc::ClientContext* context_ = nullptr;  // guarded by mu_
  std::thread thread_;
};

// Many simulated agents, as SimAgent but on gRPC's asynchronous client with
// `threads` threads for all of them (coordinator_bench_fleet.cc): no
// leader following. Connections are spread over `ramp`.
class SimFleet {
 public:
  SimFleet(int nodes, const std::vector<std::shared_ptr<grpc::ChannelCredentials>>& creds,
           std::string address, absl::Duration every, absl::Duration ramp, int threads = 2);
  ~SimFleet();
  int Registered() const;
  int64_t reports() const { return reports_.load(); }
  int64_t sessions() const { return sessions_.load(); }

 private:
  struct Agent;
  void Arm(Agent& a, absl::Time when);
  void Connect(Agent& a);
  void WriteNext(Agent& a);
  void Send(Agent& a, dagvault::v1::AgentMessage m);
  void Break(Agent& a);
  void Poll();
  void Handle(Agent& a, int kind, bool ok);

  const std::string address_;
  const absl::Duration every_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> outstanding_{0}, reports_{0}, sessions_{0};
};

// 4. Leader failover between two coordinators on etcd and PostgreSQL.
int BenchFailover(int nodes, int trials, int report_ms, int leader_ttl_ms);

}  // namespace dagvault::bench
