// `mailstore-util lab-config`: writes the configuration of an N-node lab
// deployment (see mailstore/server/lab_config.h); deploy/lab/lab.sh starts
// the nodes from it.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/cli_args.h"
#include "common/file_util.h"
#include "mailstore/server/lab_config.h"
#include "mailstore/tools/cli_output.h"
#include "mailstore/tools/util.h"

namespace dagvault::mailstore {

int CmdLabConfig(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(
      args,
      {{"dir", "nodes", "lag-seconds", "log-size", "freeze-timeout-ms", "host", "certs"}, {}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "lab-config");
  if (!parsed->Has("dir")) {
    return UsageError(err, absl::InvalidArgumentError("--dir DIR is required"), "lab-config");
  }
  LabSpec spec;
  // Absolute: the daemons' configurations must not depend on where they
  // were started from.
  spec.root = std::filesystem::absolute(*parsed->Get("dir")).lexically_normal().string();
  if (!spec.root.empty() && spec.root.back() == '/') spec.root.pop_back();
  spec.host = parsed->GetOr("host", spec.host);
  if (auto certs = parsed->Get("certs")) {
    spec.certs_dir = std::filesystem::absolute(*certs).lexically_normal().string();
  }
  auto nodes = parsed->GetUint("nodes", 3);
  auto lag = parsed->GetUint("lag-seconds", spec.lag_seconds);
  auto log_size = parsed->GetUint("log-size", spec.log_file_size);
  auto freeze = parsed->GetUint("freeze-timeout-ms", 0);
  for (const absl::Status& s : {nodes.status(), lag.status(), log_size.status(), freeze.status()}) {
    if (!s.ok()) return UsageError(err, s, "lab-config");
  }
  if (*nodes < 1 || *nodes > 16) {
    return UsageError(err, absl::InvalidArgumentError("--nodes must be between 1 and 16"),
                      "lab-config");
  }
  spec.nodes = static_cast<int>(*nodes);
  spec.lag_seconds = static_cast<uint32_t>(*lag);
  spec.log_file_size = *log_size;
  spec.freeze_timeout_ms = static_cast<uint32_t>(*freeze);
  auto lab = MakeLab(spec);
  absl::Status written = lab.ok() ? WriteLab(*lab) : lab.status();
  if (!written.ok()) {
    err << "mailstore-util lab-config: " << written.message() << "\n";
    return kExitFailure;
  }
  // One line per node, for the lab script: NAME STORE REPLICATION CONFIG.
  for (const auto& n : *lab) {
    out << n.name << " " << n.config.store_listen() << " " << n.config.replication_listen() << " "
        << n.config_path << "\n";
  }
  return kExitOk;
}

}  // namespace dagvault::mailstore
