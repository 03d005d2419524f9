// mailstored --config FILE: the mailbox server daemon of one node.
// SIGTERM or SIGINT shuts it down cleanly (databases left CleanShutdown).
#include <signal.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/cli_args.h"
#include "common/fault_injection.h"
#include "common/logging.h"
#include "common/mutex_debugging.h"
#include "common/systemd_notify.h"
#include "mailstore/server/server.h"

int main(int argc, char** argv) {
  dagvault::TurnOffAbslDeadlockDetection();
  auto args =
      dagvault::CliArgs::Parse(std::vector<std::string>(argv + 1, argv + argc),
                               {{"config", "log-level", "log-file", "crash-at"}, {"insecure-dev"}});
  if (!args.ok() || !args->Has("config")) {
    std::cerr
        << "usage: mailstored --config FILE [--insecure-dev] [--log-level info] [--log-file F] "
           "[--crash-at POINT]\n";
    if (!args.ok()) std::cerr << args.status().message() << "\n";
    return 2;
  }
  auto config =
      dagvault::mailstore::LoadNodeConfig(*args->Get("config"), args->Has("insecure-dev"));
  if (!config.ok()) {
    std::cerr << "mailstored: " << config.status().message() << "\n";
    return 2;
  }
  if (auto s =
          dagvault::logging::InitDaemon(*args, *args->Get("config"), config->proto.log_level());
      !s.ok()) {
    std::cerr << "mailstored: " << s.message() << "\n";
    return 2;
  }
  if (auto point = args->Get("crash-at")) {
    if (auto s = dagvault::ConfigureCrashPoint(*point); !s.ok()) {
      std::cerr << s.message() << "\n";
      return 2;
    }
  }
  // Signals are taken by this thread alone (sigwait), so every other
  // thread, including gRPC's, inherits a mask that blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = dagvault::mailstore::Mailstored::Create(*std::move(config));
  if (!server.ok()) {
    std::cerr << "mailstored: " << server.status().message() << "\n";
    return 1;
  }
  if (auto s = (*server)->Start(); !s.ok()) {
    std::cerr << "mailstored: " << s.message() << "\n";
    (*server)->Shutdown();
    return 1;
  }
  std::cout << "mailstored " << (*server)->config().node() << " ready" << std::endl;
  dagvault::NotifyReady(absl::StrCat("node ", (*server)->config().node(), " serving"));
  int sig = 0;
  sigwait(&signals, &sig);
  dagvault::NotifyStopping();
  (*server)->Shutdown();
  return 0;
}
