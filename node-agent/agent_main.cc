// dagvault-agent: the node agent.
//
//   dagvault-agent --config FILE [--insecure-dev] [--log-file F]
//       the daemon: takes jobs from the coordinator (node-agent/daemon/);
//   dagvault-agent backup|restore|list ...
//       local mode: one job, no coordinator (node-agent/local/).
#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/cli_args.h"
#include "common/command_line.h"
#include "common/interrupt.h"
#include "common/logging.h"
#include "common/mutex_debugging.h"
#include "common/text_config.h"
#include "node-agent/daemon/agent_daemon.h"
#include "node-agent/local/local_commands.h"
#include "repository/cli_support.h"

namespace {

int RunDaemon(const dagvault::CliArgs& parsed) {
  const dagvault::CliArgs* args = &parsed;
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
  dagvault::TurnOffAbslDeadlockDetection();
  const std::vector<std::string> argv_list(argv + 1, argv + argc);
  const bool json = std::find(argv_list.begin(), argv_list.end(), "--json") != argv_list.end();
  auto usage = [&](const absl::Status& s) {
    std::cerr << "dagvault-agent: " << s.message() << "\n";
    if (json) std::cout << dagvault::JsonErrorLine(s, 2);
    return 2;
  };
  if (auto s = dagvault::repository::RefusePassphraseArgument(argv_list, "dagvault-agent");
      !s.ok()) {
    return usage(s);
  }
  auto parsed = dagvault::ParseCommandLine(dagvault::agent::AgentProgram(), argv_list, std::cout);
  if (!parsed.ok()) return usage(parsed.status());
  if (parsed->help_shown) return 0;
  const dagvault::CliArgs& args = parsed->args;
  if (args.positional().empty()) {
    if (args.Has("config")) return RunDaemon(args);
    return usage(absl::InvalidArgumentError(
        "give --config FILE for the daemon, or a command for one local job (see "
        "dagvault-agent --help)"));
  }
  if (args.Has("config")) {
    return usage(absl::InvalidArgumentError(
        absl::StrCat("--config is for the daemon; the local command ", args.positional()[0],
                     " takes its settings as flags")));
  }
  if (args.positional()[0] == "completion") {
    std::cout << dagvault::BashCompletion(dagvault::agent::AgentProgram());
    return 0;
  }
  // Results go to stdout, progress and warnings to stderr.
  dagvault::logging::Init({.level = "warn"});
  return dagvault::agent::RunLocalCommand(args, std::cout, std::cerr);
}
