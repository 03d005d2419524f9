// mailstored's configuration: loading, validation, and the paths and unit
// configurations derived from it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dagvault/v1/mailstored.pb.h"

namespace dagvault::mailstore {

struct NodeConfig {
  dagvault::v1::MailstoredConfig proto;
  absl::Duration freeze_timeout;
  absl::Duration poll_interval;
  absl::Duration session_timeout;
  absl::Duration flush_interval;
  uint32_t checkpoint_depth;
  // Not configuration: a random id of this run of the daemon, set at
  // start, so that peers can tell a restarted node from a running one.
  std::string incarnation;

  const std::string& node() const { return proto.node(); }
  // The unit definitions that have a copy on this node.
  std::vector<const dagvault::v1::UnitDefinition*> LocalUnits() const;
  const dagvault::v1::UnitDefinition* FindUnit(const std::string& name) const;
  const dagvault::v1::PeerConfig* FindPeer(const std::string& node) const;
  // This node's copy of a unit.
  const dagvault::v1::CopyDefinition* LocalCopy(const dagvault::v1::UnitDefinition& unit) const;
  // The copy that is active when a unit is first created.
  const dagvault::v1::CopyDefinition& InitialActive(const dagvault::v1::UnitDefinition& unit) const;

  // Where this node keeps a unit: <data_root>/<unit>.
  std::string UnitDir(const std::string& unit) const;
  // The engine configuration of this node's copy of a unit.
  dagvault::v1::UnitConfig EngineConfig(const dagvault::v1::UnitDefinition& unit) const;
};

// Loads and validates; errors name the file and field.
// `insecure_dev` (mailstored --insecure-dev) allows replication in plain
// text whatever the file says.
absl::StatusOr<NodeConfig> LoadNodeConfig(const std::string& path, bool insecure_dev = false);
absl::StatusOr<NodeConfig> ValidateNodeConfig(const dagvault::v1::MailstoredConfig& proto,
                                              const std::string& source);

}  // namespace dagvault::mailstore
