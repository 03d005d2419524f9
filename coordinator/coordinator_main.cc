// dagvault-coordinator --config FILE [--insecure-dev] [--log-file F]
// (coordinator/README.md). Exit 2 for a usage or configuration error, 1 when
// start-up fails after that; 0 after SIGTERM or SIGINT.
#include <sys/resource.h>

#include <csignal>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/cli_args.h"
#include "common/logging.h"
#include "common/mutex_debugging.h"
#include "common/systemd_notify.h"
#include "common/text_config.h"
#include "coordinator/server/coordinator.h"
#include "dagvault/v1/admin.pb.h"

namespace {

// The soft limit on open files, raised to the hard limit; the limit now.
rlim_t RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return raised.rlim_cur;
  }
  return limit.rlim_cur;
}

}  // namespace

int main(int argc, char** argv) {
  // Blocked before any thread starts, then waited for.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  dagvault::TurnOffAbslDeadlockDetection();
  // Three descriptors per connected agent (common/tls_front.h): the soft
  // limit goes up to the hard one, as far as the system lets it.
  const rlim_t descriptors = RaiseOpenFileLimit();

  auto args = dagvault::CliArgs::Parse(std::vector<std::string>(argv + 1, argv + argc),
                                       {{"config", "log-file", "log-level"}, {"insecure-dev"}});
  if (!args.ok() || !args->Has("config")) {
    std::cerr << (args.ok() ? "" : std::string(args.status().message()) + "\n")
              << "usage: dagvault-coordinator --config FILE [--insecure-dev] [--log-file F] "
                 "[--log-level info]\n";
    return 2;
  }
  dagvault::v1::CoordinatorConfig config;
  if (auto s = dagvault::LoadTextConfig(*args->Get("config"), &config); !s.ok()) {
    std::cerr << "dagvault-coordinator: " << s.message() << "\n";
    return 2;
  }
  if (args->Has("insecure-dev")) config.set_insecure_dev(true);
  if (auto s = dagvault::logging::InitDaemon(*args, *args->Get("config"), config.log_level());
      !s.ok()) {
    std::cerr << "dagvault-coordinator: " << s.message() << "\n";
    return 2;
  }
  dagvault::logging::Get("coordinator")
      ->info("{} file descriptors: room for about {} agents and people connected at once",
             descriptors, descriptors / 3);
  auto coordinator = dagvault::coordinator::Coordinator::Create(config);
  if (!coordinator.ok()) {
    std::cerr << "dagvault-coordinator: " << coordinator.status().message() << "\n";
    return 2;
  }
  auto port = (*coordinator)->Start();
  if (!port.ok()) {
    std::cerr << "dagvault-coordinator: " << port.status().message() << "\n";
    return 1;
  }
  std::cout << "listening on port " << *port << std::endl;
  dagvault::NotifyReady(absl::StrCat("listening on ", config.listen()));
  int signal = 0;
  sigwait(&signals, &signal);
  dagvault::NotifyStopping();
  dagvault::logging::Get("coordinator")->info("signal {}: stopping", signal);
  (*coordinator)->Stop();
  return 0;
}
