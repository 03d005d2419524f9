#include "common/testing/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/time/clock.h"

namespace dagvault::testing {
namespace {

pid_t Spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& out_path, const std::string& err_path) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Child.
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  if (out >= 0) ::dup2(out, 1);
  if (err >= 0) ::dup2(err, 2);
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  ::_exit(127);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ProcessResult Decode(int status) {
  ProcessResult r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

std::string TempPath(const char* what) {
  static int counter = 0;
  return "/tmp/dagvault_proc_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
         what;
}

}  // namespace

std::string BinaryPath(const std::string& name) {
#ifdef DAGVAULT_BIN_DIR
  return std::string(DAGVAULT_BIN_DIR) + "/" + name;
#else
  return name;
#endif
}

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env, absl::Duration timeout) {
  const std::string out = TempPath(".out"), err = TempPath(".err");
  pid_t pid = Spawn(argv, env, out, err);
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (absl::Now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  ProcessResult result = Decode(status);
  result.out = Slurp(out);
  result.err = Slurp(err);
  ::unlink(out.c_str());
  ::unlink(err.c_str());
  return result;
}

Subprocess::Subprocess(std::vector<std::string> argv, std::map<std::string, std::string> env,
                       std::string log_path) {
  if (log_path.empty()) log_path = "/dev/null";
  pid_ = Spawn(argv, env, log_path, log_path + (log_path == "/dev/null" ? "" : ".err"));
}

Subprocess::~Subprocess() {
  if (pid_ > 0) {
    Kill(SIGKILL);
    Wait();
  }
}

void Subprocess::Kill(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

ProcessResult Subprocess::Wait() {
  int status = 0;
  if (pid_ <= 0) return ProcessResult{};
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return Decode(status);
}

std::optional<ProcessResult> Subprocess::Poll() {
  if (pid_ <= 0) return ProcessResult{};
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
  pid_ = -1;
  return Decode(status);
}

}  // namespace dagvault::testing
