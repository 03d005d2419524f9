// A fake agent channel for JobManager tests: keeps what the coordinator
// sends to one agent.
#pragma once

#include <mutex>
#include <vector>

#include "coordinator/server/topology.h"
#include "dagvault/v1/agent.pb.h"

namespace dagvault::coordinator {

class FakeAgentChannel : public AgentChannel {
 public:
  bool Send(const dagvault::v1::CoordinatorMessage& m) override {
    std::lock_guard<std::mutex> l(mu);
    sent.push_back(m);
    return true;
  }
  std::vector<dagvault::v1::JobAssignment> Assignments() {
    std::lock_guard<std::mutex> l(mu);
    std::vector<dagvault::v1::JobAssignment> out;
    for (const auto& m : sent) {
      if (m.has_assignment()) out.push_back(m.assignment());
    }
    return out;
  }
  int Count(dagvault::v1::CoordinatorMessage::BodyCase body) {
    std::lock_guard<std::mutex> l(mu);
    int n = 0;
    for (const auto& m : sent) n += m.body_case() == body;
    return n;
  }
  std::mutex mu;
  std::vector<dagvault::v1::CoordinatorMessage> sent;
};

}  // namespace dagvault::coordinator
