// The configuration of a lab deployment: N mailstored nodes on this
// machine, each with its own folder and free ports, and two units with a
// copy on every node:
//
//   SG01  storage-group mode (2007 style): databases MDB01A and MDB01B
//         share the log stream E00;
//   DB02  database mode (2010 style): database DB02, log stream E01.
//
// The first node holds the active copies; the last node's copies are
// lagged. The lab script (deploy/lab/lab.sh, through `mailstore-util
// lab-config`) and the multi-process tests (tests/mailstored) both build
// their deployments here, so they test what operators run.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/free_ports.h"
#include "dagvault/v1/mailstored.pb.h"

namespace dagvault::mailstore {

struct LabSpec {
  int nodes = 3;
  // Everything goes under it: <root>/<node>/{data,mailstored.conf,...}.
  std::string root;
  std::string host = "127.0.0.1";
  // When not empty: node i listens on node_hosts[i] instead of `host` (a
  // lab whose nodes run in network namespaces of their own, as the fault
  // matrix's network cuts need). Ports are then picked free on 127.0.0.1:
  // a fresh namespace has none in use.
  std::vector<std::string> node_hosts;
  // The replay lag of the last node's copies; 0 for none.
  uint32_t lag_seconds = 60;
  uint64_t log_file_size = 1 << 20;
  uint32_t freeze_timeout_ms = 0;          // 0: the daemon's default
  uint32_t checkpoint_depth = 0;           // 0: the daemon's default
  uint32_t replication_poll_ms = 0;        // 0: the daemon's default
  uint32_t backup_session_timeout_ms = 0;  // 0: the daemon's default
  uint32_t flush_interval_ms = 0;          // 0: the daemon's default
  bool circular_logging = false;
  // Replication over mutual TLS with <certs_dir>/<node>.crt and .key and
  // <certs_dir>/ca.crt (`dagvault certs`); empty: plain text (insecure_dev).
  std::string certs_dir;
};

struct LabNode {
  std::string name;  // node1, node2, ...
  std::string dir;   // <root>/<name>
  std::string config_path;
  dagvault::v1::MailstoredConfig config;
};

using ::dagvault::PickFreePorts;  // common/free_ports.h

// The nodes' configurations, with ports picked free. Nothing is written.
absl::StatusOr<std::vector<LabNode>> MakeLab(const LabSpec& spec);

// Writes each node's mailstored.conf under its folder.
absl::Status WriteLab(const std::vector<LabNode>& nodes);

}  // namespace dagvault::mailstore
