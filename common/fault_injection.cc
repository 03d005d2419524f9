#include "common/fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace dagvault {
namespace {

struct CrashConfig {
  std::mutex mu;
  std::string name;
  long remaining = 0;
  std::atomic<bool> armed{false};
};

absl::Status ParseInto(CrashConfig& c, absl::string_view spec) {
  std::string name(spec);
  long count = 1;
  if (size_t at = name.find('@'); at != std::string::npos) {
    if (!absl::SimpleAtoi(name.substr(at + 1), &count) || count < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "crash point \"", spec, "\": the count after '@' must be a positive number"));
    }
    name.resize(at);
  }
  std::lock_guard<std::mutex> lock(c.mu);
  c.name = name;
  c.remaining = count;
  c.armed.store(!name.empty());
  return absl::OkStatus();
}

// A configuration set from environment variable `var` when the process
// first uses it; a bad value is reported and leaves the point disarmed.
template <typename Config>
Config* FromEnvironment(const char* var, absl::Status (*parse)(Config&, absl::string_view)) {
  auto* c = new Config();
  if (const char* env = std::getenv(var); env != nullptr && *env != '\0') {
    if (absl::Status s = parse(*c, env); !s.ok()) {
      std::fprintf(stderr, "%s: %s\n", var, std::string(s.message()).c_str());
    }
  }
  return c;
}

CrashConfig& Config() {
  static CrashConfig* config = FromEnvironment<CrashConfig>("DAGVAULT_CRASH_AT", ParseInto);
  return *config;
}

struct DelayConfig {
  std::mutex mu;
  std::map<std::string, long, std::less<>> millis;  // by point
  std::atomic<bool> armed{false};
};

absl::Status ParseDelayInto(DelayConfig& c, absl::string_view spec) {
  std::map<std::string, long, std::less<>> millis;
  for (absl::string_view one : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::string name(one);
    long ms = 0;
    const size_t colon = name.rfind(':');
    if (colon == std::string::npos || !absl::SimpleAtoi(name.substr(colon + 1), &ms) || ms < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("delay point \"", one, "\": expected NAME:MS, MS a number of milliseconds"));
    }
    name.resize(colon);
    millis[name] = ms;
  }
  std::lock_guard<std::mutex> lock(c.mu);
  c.millis = std::move(millis);
  c.armed.store(!c.millis.empty());
  return absl::OkStatus();
}

DelayConfig& Delays() {
  static DelayConfig* config = FromEnvironment<DelayConfig>("DAGVAULT_DELAY_AT", ParseDelayInto);
  return *config;
}

void Delay(absl::string_view name) {
  DelayConfig& c = Delays();
  if (!c.armed.load(std::memory_order_relaxed)) return;
  long millis = 0;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.millis.find(name);
    if (it == c.millis.end()) return;
    millis = it->second;
  }
  absl::SleepFor(absl::Milliseconds(millis));
}

struct FailConfig {
  std::mutex mu;
  std::string name;
  std::atomic<bool> armed{false};
};

absl::Status ParseFailInto(FailConfig& c, absl::string_view spec) {
  std::lock_guard<std::mutex> lock(c.mu);
  c.name = std::string(spec);
  c.armed.store(!spec.empty());
  return absl::OkStatus();
}

FailConfig& Failures() {
  static FailConfig* config = FromEnvironment<FailConfig>("DAGVAULT_FAIL_AT", ParseFailInto);
  return *config;
}

}  // namespace

absl::Status ConfigureFailPoint(absl::string_view name) { return ParseFailInto(Failures(), name); }

absl::Status FailPoint(absl::string_view name) {
  FailConfig& c = Failures();
  if (!c.armed.load(std::memory_order_relaxed)) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.name != name) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("injected failure at ", name, " (DAGVAULT_FAIL_AT)"));
}

absl::Status ConfigureCrashPoint(absl::string_view spec) { return ParseInto(Config(), spec); }

absl::Status ConfigureDelayPoint(absl::string_view spec) { return ParseDelayInto(Delays(), spec); }

bool CrashPointWillFire(absl::string_view name) {
  CrashConfig& c = Config();
  if (!c.armed.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> lock(c.mu);
  return c.name == name && c.remaining == 1;
}

void CrashPoint(absl::string_view name) {
  Delay(name);
  CrashConfig& c = Config();
  if (!c.armed.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.name != name) return;
  if (--c.remaining > 0) return;
  static const char kMsg[] = "dagvault: crash point reached, killing self\n";
  (void)!::write(2, kMsg, sizeof(kMsg) - 1);
  ::kill(::getpid(), SIGKILL);
  ::pause();
}

}  // namespace dagvault
