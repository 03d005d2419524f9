// Ctrl-C and `kill` for the command-line tools that run a long job: the
// first SIGINT or SIGTERM cancels the job, which then stops, cleans up and
// reports; with no job running, or on a second signal, the process ends as
// the signal's default would.
//
// InstallInterruptHandler() must run first thing in main(), before any
// thread starts: it blocks the two signals in the calling thread, every
// later thread inherits that mask, and one thread of its own takes them
// with sigwait(). Otherwise the kernel delivers the signal to whichever
// thread has it unblocked (a gRPC poller, say), and its default action
// kills the process before anything is cleaned up.
#pragma once

#include <atomic>

namespace dagvault {

void InstallInterruptHandler();

// While a job runs, the flag the signal sets; nullptr when it ends. The
// flag must outlive its registration.
void SetInterruptFlag(std::atomic<bool>* cancel);

// Registers `cancel` for the lifetime of the object.
class ScopedInterruptFlag {
 public:
  explicit ScopedInterruptFlag(std::atomic<bool>* cancel) { SetInterruptFlag(cancel); }
  ~ScopedInterruptFlag() { SetInterruptFlag(nullptr); }
  ScopedInterruptFlag(const ScopedInterruptFlag&) = delete;
  ScopedInterruptFlag& operator=(const ScopedInterruptFlag&) = delete;
};

}  // namespace dagvault
