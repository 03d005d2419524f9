// Which coordinator an agent dials (docs/ha.md). A deployment may run
// several coordinators, one leading and the others standing by; a standby
// refuses an agent's stream and names the leader (trailing metadata
// dagvault-leader). The agent dials the leader it was pointed to at once;
// when the one it used is gone without a pointer, it tries the next
// configured address after its backoff.
#pragma once

#include <grpcpp/client_context.h>

#include <string>
#include <vector>

#include "dagvault/v1/agent.pb.h"

namespace dagvault::agent {

class CoordinatorAddresses {
 public:
  // `coordinator`, then `more_coordinators`, without repeats.
  explicit CoordinatorAddresses(const dagvault::v1::AgentConfig& config);

  const std::string& current() const { return current_; }
  // How many addresses are configured (fixed at construction).
  size_t configured() const { return configured_.size(); }
  // Every configured address, for messages.
  std::string Describe() const;

  // After a stream ended. `leader`: the address a standby named (empty if
  // none). True: dial `current()` now (it is the leader named); false: wait
  // the backoff first (current() has moved to the next configured address).
  bool Next(const std::string& leader);

 private:
  std::vector<std::string> configured_;
  size_t index_ = 0;
  std::string current_;
};

// The leader a standby named in a finished call's trailing metadata.
std::string LeaderNamedBy(const grpc::ClientContext& context);

}  // namespace dagvault::agent
