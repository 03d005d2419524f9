#include "common/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <thread>

namespace dagvault {
namespace {

std::mutex flag_mu;
std::atomic<bool>* flag = nullptr;

sigset_t Signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

// Ends the process as the signal itself would have: a shell then sees
// "killed by SIGINT" and stops a script, as it expects.
[[noreturn]] void DieOf(int sig) {
  signal(sig, SIG_DFL);
  const sigset_t signals = Signals();
  pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
  raise(sig);
  _exit(128 + sig);
}

void Handle(int sig) {
  std::lock_guard<std::mutex> l(flag_mu);
  if (flag == nullptr || flag->load()) DieOf(sig);
  flag->store(true);
  static const char kMsg[] =
      "interrupted: cancelling the job and cleaning up (interrupt again to exit at once)\n";
  (void)!write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
}

}  // namespace

void InstallInterruptHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    const sigset_t signals = Signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::thread([signals] {
      for (;;) {
        int sig = 0;
        if (sigwait(&signals, &sig) == 0) Handle(sig);
      }
    }).detach();
  });
}

void SetInterruptFlag(std::atomic<bool>* cancel) {
  std::lock_guard<std::mutex> l(flag_mu);
  flag = cancel;
}

}  // namespace dagvault
