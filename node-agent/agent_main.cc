// dagvault-agent: the node agent.
//
//   dagvault-agent --config FILE [--insecure-dev] [--log-file F]
//       the daemon: takes jobs from the coordinator (node-agent/daemon/);
//   dagvault-agent backup|restore|list ...
//       local mode: one job, no coordinator (node-agent/local/).
#include <iostream>

#include "common/cli_args.h"
#include "common/interrupt.h"
#include "common/logging.h"
#include "common/text_config.h"
#include "node-agent/daemon/agent_daemon.h"
#include "node-agent/local/local_commands.h"

namespace {

int RunDaemon(const std::vector<std::string>& argv) {
  auto args =
      dagvault::CliArgs::Parse(argv, {{"config", "log-file", "log-level"}, {"insecure-dev"}});
  if (!args.ok()) {
    std::cerr << "dagvault-agent: " << args.status().message()
              << "\nusage: dagvault-agent --config FILE [--insecure-dev] [--log-file F]\n";
    return 2;
  }
  dagvault::v1::AgentConfig config;
  if (auto s = dagvault::LoadTextConfig(*args->Get("config"), &config); !s.ok()) {
    std::cerr << "dagvault-agent: " << s.message() << "\n";
    return 2;
  }
  if (args->Has("insecure-dev")) config.set_insecure_dev(true);
  if (auto s = dagvault::logging::InitDaemon(*args, *args->Get("config"), config.log_level());
      !s.ok()) {
    std::cerr << "dagvault-agent: " << s.message() << "\n";
    return 2;
  }
  auto daemon = dagvault::agent::AgentDaemon::Create(config);
  if (!daemon.ok()) {
    std::cerr << "dagvault-agent: " << daemon.status().message() << "\n";
    return 2;
  }
  // SIGTERM or SIGINT stops the daemon: running jobs are cancelled, which
  // ends their writer sessions with failure.
  std::atomic<bool> stop{false};
  dagvault::ScopedInterruptFlag interrupt(&stop);
  (*daemon)->Run(&stop);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread starts, so that Ctrl-C cancels a job instead of
  // killing the process (common/interrupt.h).
  dagvault::InstallInterruptHandler();
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& a : args) {
    if (a == "--config" || a.rfind("--config=", 0) == 0) return RunDaemon(args);
  }
  // Results go to stdout, progress and warnings to stderr.
  dagvault::logging::Init({.level = "warn"});
  return dagvault::agent::RunLocalCommand(args, std::cout, std::cerr);
}
