// Starting the project's real binaries from tests: run to completion with
// output captured, or start in the background and kill -9 later.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace dagvault::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 if killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0; }
};

// The path of a project binary in the build's bin folder.
std::string BinaryPath(const std::string& name);

// Runs argv[0] with arguments and extra environment, waits for it (killing
// it after `timeout`), and returns its exit status and output.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         absl::Duration timeout = absl::Minutes(5));

// A background process whose output goes to files.
class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
             std::string log_path = "");
  ~Subprocess();
  pid_t pid() const { return pid_; }
  void Kill(int signal = 9);
  // Waits for exit; returns the wait status decoded.
  ProcessResult Wait();
  // The exit status if the process has ended (it is then reaped), without
  // waiting.
  std::optional<ProcessResult> Poll();
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

}  // namespace dagvault::testing
