#include "node-agent/daemon/coordinator_addresses.h"

#include <algorithm>

#include "absl/strings/str_join.h"

namespace dagvault::agent {

CoordinatorAddresses::CoordinatorAddresses(const dagvault::v1::AgentConfig& config) {
  auto add = [&](const std::string& address) {
    if (!address.empty() &&
        std::find(configured_.begin(), configured_.end(), address) == configured_.end()) {
      configured_.push_back(address);
    }
  };
  add(config.coordinator());
  for (const std::string& a : config.more_coordinators()) add(a);
  if (!configured_.empty()) current_ = configured_.front();
}

std::string CoordinatorAddresses::Describe() const { return absl::StrJoin(configured_, ", "); }

bool CoordinatorAddresses::Next(const std::string& leader) {
  if (!leader.empty() && leader != current_) {
    current_ = leader;
    return true;
  }
  if (configured_.empty()) return false;
  // Past the address that failed (or the leader named earlier, which may
  // not be configured): the next configured one.
  auto at = std::find(configured_.begin(), configured_.end(), current_);
  index_ = at == configured_.end() ? index_ : static_cast<size_t>(at - configured_.begin()) + 1;
  index_ %= configured_.size();
  current_ = configured_[index_];
  return false;
}

std::string LeaderNamedBy(const grpc::ClientContext& context) {
  const auto& trailing = context.GetServerTrailingMetadata();
  auto it = trailing.find("dagvault-leader");
  if (it == trailing.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace dagvault::agent
