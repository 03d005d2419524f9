// Logging set-up: one set of sinks, many named loggers ("mailstore.log",
// "agent.job", ...). Lines that concern a unit, node or job carry it in the
// message, e.g. "[unit sg1] checkpoint advanced to 0x12:4096".
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/cli_args.h"
#include "spdlog/logger.h"

namespace dagvault::logging {

// The level names Options::level takes, in order.
inline constexpr const char* kLevelNames = "trace, debug, info, warn, error, critical, off";

struct Options {
  // One of kLevelNames.
  std::string level = "info";
  // Where to write besides stderr; empty for stderr only.
  std::string file;
};

// Sets the level and sinks of every logger, existing and future. Safe to call
// more than once (tests do). An unknown level is an InvalidArgument error
// that lists the valid ones, and a file that cannot be opened for appending
// an error naming it; logging is then left as it was.
absl::Status TryInit(const Options& options);

// TryInit for tools whose options are constants: an error (which they cannot
// have) goes to stderr.
void Init(const Options& options);

// A daemon's logging, from its flags (--log-level, --log-file) and the
// log_level field of its configuration file `config_path`: the flag wins
// over the field, and info is the default. An unknown level in either is an
// error naming the flag or the file and field, the value, and the valid
// levels, whether or not the flag overrides the field.
absl::Status InitDaemon(const CliArgs& args, absl::string_view config_path,
                        absl::string_view config_level);

// Returns the logger with this name, creating it on first use.
std::shared_ptr<spdlog::logger> Get(absl::string_view name);

}  // namespace dagvault::logging

// Let loggers format abseil types directly: logger->error("... {}", status).
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fmt/format.h"

template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename Ctx>
  auto format(absl::string_view s, Ctx& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

template <>
struct fmt::formatter<absl::Status> : fmt::formatter<fmt::string_view> {
  template <typename Ctx>
  auto format(const absl::Status& s, Ctx& ctx) const {
    std::string text = s.ToString();
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text), ctx);
  }
};
