#include "mailstore/server/lab_config.h"

#include "absl/strings/str_cat.h"
#include "common/certs.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/text_config.h"

namespace dagvault::mailstore {

absl::StatusOr<std::vector<LabNode>> MakeLab(const LabSpec& spec) {
  if (spec.nodes < 1) return absl::InvalidArgumentError("a lab needs at least one node");
  if (spec.root.empty()) return absl::InvalidArgumentError("a lab needs a root folder");
  if (!spec.node_hosts.empty() && static_cast<int>(spec.node_hosts.size()) != spec.nodes) {
    return absl::InvalidArgumentError(absl::StrCat("a lab of ", spec.nodes, " nodes was given ",
                                                   spec.node_hosts.size(), " node hosts"));
  }
  auto host = [&](int i) { return spec.node_hosts.empty() ? spec.host : spec.node_hosts[i]; };
  ASSIGN_OR_RETURN(
      std::vector<int> ports,
      PickFreePorts(spec.node_hosts.empty() ? spec.host : "127.0.0.1", 2 * spec.nodes));
  std::vector<LabNode> nodes(spec.nodes);
  for (int i = 0; i < spec.nodes; ++i) {
    nodes[i].name = absl::StrCat("node", i + 1);
    nodes[i].dir = JoinPath(spec.root, nodes[i].name);
    nodes[i].config_path = JoinPath(nodes[i].dir, "mailstored.conf");
  }
  auto store = [&](int i) { return absl::StrCat(host(i), ":", ports[2 * i]); };
  auto replication = [&](int i) { return absl::StrCat(host(i), ":", ports[2 * i + 1]); };

  auto add_unit = [&](dagvault::v1::MailstoredConfig& c, const std::string& name,
                      dagvault::v1::UnitConfig::Mode mode, const std::string& prefix,
                      std::vector<std::string> databases) {
    auto* u = c.add_units();
    u->set_name(name);
    u->set_mode(mode);
    u->set_log_prefix(prefix);
    for (auto& db : databases) u->add_databases(db);
    u->set_log_file_size(spec.log_file_size);
    u->set_circular_logging(spec.circular_logging);
    for (int k = 0; k < spec.nodes; ++k) {
      auto* copy = u->add_copies();
      copy->set_node(nodes[k].name);
      copy->set_activation_preference(static_cast<uint32_t>(k + 1));
      if (k == spec.nodes - 1 && spec.nodes > 1) copy->set_replay_lag_seconds(spec.lag_seconds);
    }
  };

  for (int i = 0; i < spec.nodes; ++i) {
    auto& c = nodes[i].config;
    c.set_node(nodes[i].name);
    c.set_data_root(JoinPath(nodes[i].dir, "data"));
    c.set_store_listen(store(i));
    if (spec.certs_dir.empty()) {
      c.set_insecure_dev(true);
    } else {
      *c.mutable_replication_tls() = CertificateFiles(spec.certs_dir, nodes[i].name);
    }
    c.set_replication_listen(replication(i));
    c.set_writer_socket(JoinPath(nodes[i].dir, "writer.sock"));
    c.set_freeze_timeout_ms(spec.freeze_timeout_ms);
    c.set_checkpoint_depth(spec.checkpoint_depth);
    c.set_replication_poll_ms(spec.replication_poll_ms);
    c.set_backup_session_timeout_ms(spec.backup_session_timeout_ms);
    c.set_flush_interval_ms(spec.flush_interval_ms);
    for (int k = 0; k < spec.nodes; ++k) {
      if (k == i) continue;
      auto* p = c.add_peers();
      p->set_node(nodes[k].name);
      p->set_replication_address(replication(k));
      p->set_store_address(store(k));
    }
    add_unit(c, "SG01", dagvault::v1::UnitConfig::STORAGE_GROUP, "E00", {"MDB01A", "MDB01B"});
    add_unit(c, "DB02", dagvault::v1::UnitConfig::DATABASE, "E01", {"DB02"});
  }
  return nodes;
}

absl::Status WriteLab(const std::vector<LabNode>& nodes) {
  for (const auto& n : nodes) {
    RETURN_IF_ERROR(CreateDirectories(n.dir));
    RETURN_IF_ERROR(WriteFileAtomically(
        n.config_path, absl::StrCat("# mailstored configuration of ", n.name,
                                    " (written by mailstore-util lab-config; fields in "
                                    "proto/dagvault/v1/mailstored.proto)\n",
                                    ToTextConfig(n.config))));
  }
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
