#include "mailstore/server/config.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/text_config.h"
#include "mailstore/engine/unit_config.h"

namespace dagvault::mailstore {

using dagvault::v1::CopyDefinition;
using dagvault::v1::UnitDefinition;

std::vector<const UnitDefinition*> NodeConfig::LocalUnits() const {
  std::vector<const UnitDefinition*> out;
  for (const auto& u : proto.units()) {
    if (LocalCopy(u) != nullptr) out.push_back(&u);
  }
  return out;
}

const UnitDefinition* NodeConfig::FindUnit(const std::string& name) const {
  for (const auto& u : proto.units()) {
    if (u.name() == name) return &u;
  }
  return nullptr;
}

const dagvault::v1::PeerConfig* NodeConfig::FindPeer(const std::string& name) const {
  for (const auto& p : proto.peers()) {
    if (p.node() == name) return &p;
  }
  return nullptr;
}

const CopyDefinition* NodeConfig::LocalCopy(const UnitDefinition& unit) const {
  for (const auto& c : unit.copies()) {
    if (c.node() == node()) return &c;
  }
  return nullptr;
}

const CopyDefinition& NodeConfig::InitialActive(const UnitDefinition& unit) const {
  const CopyDefinition* best = &unit.copies(0);
  for (const auto& c : unit.copies()) {
    const uint32_t p = c.activation_preference() == 0 ? 1000 : c.activation_preference();
    const uint32_t b = best->activation_preference() == 0 ? 1000 : best->activation_preference();
    if (p < b) best = &c;
  }
  return *best;
}

std::string NodeConfig::UnitDir(const std::string& unit) const {
  return JoinPath(proto.data_root(), unit);
}

dagvault::v1::UnitConfig NodeConfig::EngineConfig(const UnitDefinition& unit) const {
  dagvault::v1::UnitConfig c;
  c.set_name(unit.name());
  c.set_mode(unit.mode());
  c.set_log_prefix(unit.log_prefix());
  c.set_system_dir(UnitDir(unit.name()));
  c.set_log_dir(JoinPath(UnitDir(unit.name()), "logs"));
  c.set_page_size(unit.page_size());
  c.set_log_file_size(unit.log_file_size());
  c.set_circular_logging(unit.circular_logging());
  for (const auto& db : unit.databases()) c.add_databases()->set_name(db);
  return c;
}

absl::StatusOr<NodeConfig> ValidateNodeConfig(const dagvault::v1::MailstoredConfig& proto,
                                              const std::string& source) {
  std::vector<std::string> problems;
  if (absl::Status s = CheckRequiredFields(proto, source); !s.ok()) {
    problems.push_back(std::string(s.message()));
  }
  for (const auto& [field, path] :
       {std::pair<const char*, const std::string&>{"data_root", proto.data_root()},
        {"writer_socket", proto.writer_socket()}}) {
    if (!path.empty() && path[0] != '/') {
      problems.push_back(
          absl::StrCat(source, ": field '", field, "': \"", path, "\" must be an absolute path"));
    }
  }
  for (const auto& [field, address] :
       {std::pair<const char*, const std::string&>{"store_listen", proto.store_listen()},
        {"replication_listen", proto.replication_listen()}}) {
    if (!address.empty() && address.rfind(':') == std::string::npos) {
      problems.push_back(
          absl::StrCat(source, ": field '", field, "': \"", address, "\" must be HOST:PORT"));
    }
  }
  const auto& tls = proto.replication_tls();
  const bool tls_given =
      !tls.ca_file().empty() || !tls.cert_file().empty() || !tls.key_file().empty();
  if (!proto.insecure_dev() && !tls_given) {
    problems.push_back(absl::StrCat(
        source,
        ": field 'replication_tls': replication between nodes needs mutual TLS (ca_file, "
        "cert_file and key_file, from `dagvault certs issue --role node --name ",
        proto.node(), "`), or insecure_dev: true for a development lab"));
  } else if (tls_given) {
    for (const auto& [field, path] :
         {std::pair<const char*, const std::string&>{"ca_file", tls.ca_file()},
          {"cert_file", tls.cert_file()},
          {"key_file", tls.key_file()}}) {
      if (path.empty()) {
        problems.push_back(
            absl::StrCat(source, ": field 'replication_tls.", field, "' is missing"));
      }
    }
  }
  std::set<std::string> nodes = {proto.node()};
  for (int i = 0; i < proto.peers_size(); ++i) {
    const auto& p = proto.peers(i);
    if (!nodes.insert(p.node()).second) {
      problems.push_back(absl::StrCat(source, ": field 'peers[", i, "].node': \"", p.node(),
                                      "\" appears twice (or is this node)"));
    }
  }
  std::set<std::string> units;
  for (int u = 0; u < proto.units_size(); ++u) {
    const auto& unit = proto.units(u);
    const std::string field = absl::StrCat("units[", u, "]");
    if (!units.insert(unit.name()).second) {
      problems.push_back(
          absl::StrCat(source, ": field '", field, ".name': \"", unit.name(), "\" is used twice"));
    }
    std::set<std::string> copy_nodes;
    for (int c = 0; c < unit.copies_size(); ++c) {
      const auto& copy = unit.copies(c);
      const std::string cf = absl::StrCat(field, ".copies[", c, "].node");
      if (!copy.node().empty() && nodes.count(copy.node()) == 0) {
        problems.push_back(absl::StrCat(source, ": field '", cf, "': node \"", copy.node(),
                                        "\" is neither this node nor a peer"));
      }
      if (!copy_nodes.insert(copy.node()).second) {
        problems.push_back(absl::StrCat(source, ": field '", cf, "': node \"", copy.node(),
                                        "\" has two copies of unit ", unit.name(),
                                        " (one copy per node)"));
      }
    }
    // The engine's own checks, with this unit's fields.
    NodeConfig probe;
    probe.proto = proto;
    if (!unit.name().empty() && !unit.log_prefix().empty() && unit.databases_size() > 0) {
      auto resolved = ResolveUnitConfig(probe.EngineConfig(unit));
      if (!resolved.ok()) {
        problems.push_back(absl::StrCat(source, ": ", field, ": ", resolved.status().message()));
      }
    }
  }
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  NodeConfig config;
  config.proto = proto;
  auto ms = [](uint32_t v, uint32_t fallback) { return absl::Milliseconds(v == 0 ? fallback : v); };
  config.freeze_timeout = ms(proto.freeze_timeout_ms(), 20000);
  config.poll_interval = ms(proto.replication_poll_ms(), 200);
  config.session_timeout = ms(proto.backup_session_timeout_ms(), 60000);
  config.flush_interval = ms(proto.flush_interval_ms(), 1000);
  config.checkpoint_depth = proto.checkpoint_depth() == 0 ? 1 : proto.checkpoint_depth();
  return config;
}

absl::StatusOr<NodeConfig> LoadNodeConfig(const std::string& path, bool insecure_dev) {
  dagvault::v1::MailstoredConfig proto;
  absl::Status s = LoadTextConfig(path, &proto);
  if (!s.ok()) return s;
  if (insecure_dev) proto.set_insecure_dev(true);
  return ValidateNodeConfig(proto, path);
}

}  // namespace dagvault::mailstore
