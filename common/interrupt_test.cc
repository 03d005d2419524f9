// The interrupt handler in a forked child each time: it changes the
// process's signal mask and starts a thread, which a test process must not
// keep.
#include "common/interrupt.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace dagvault {
namespace {

// Runs `body` in a child and returns its wait status.
int InChild(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

bool WaitForFlag(const std::atomic<bool>& flag) {
  for (int i = 0; i < 1000 && !flag.load(); ++i) absl::SleepFor(absl::Milliseconds(10));
  return flag.load();
}

TEST(Interrupt, TheFirstSignalDuringAJobSetsItsFlagEvenWhenAnotherThreadIsRunning) {
  const int status = InChild([] {
    InstallInterruptHandler();
    std::atomic<bool> stop{false};
    // A thread started later, as a gRPC poller would be: it inherits the
    // mask, so the signal cannot land there and kill the process.
    std::thread busy([&] {
      while (!stop.load()) absl::SleepFor(absl::Milliseconds(1));
    });
    std::atomic<bool> cancel{false};
    ScopedInterruptFlag scoped(&cancel);
    kill(getpid(), SIGINT);
    const bool set = WaitForFlag(cancel);
    stop = true;
    busy.join();
    return set ? 0 : 3;
  });
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Interrupt, WithNoJobRunningTheSignalEndsTheProcess) {
  const int status = InChild([] {
    InstallInterruptHandler();
    kill(getpid(), SIGTERM);
    absl::SleepFor(absl::Seconds(10));
    return 0;
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
}

TEST(Interrupt, ASecondSignalEndsTheProcessAtOnce) {
  const int status = InChild([] {
    InstallInterruptHandler();
    std::atomic<bool> cancel{false};
    ScopedInterruptFlag scoped(&cancel);
    kill(getpid(), SIGINT);
    if (!WaitForFlag(cancel)) return 3;
    kill(getpid(), SIGINT);
    absl::SleepFor(absl::Seconds(10));
    return 0;
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

}  // namespace
}  // namespace dagvault
