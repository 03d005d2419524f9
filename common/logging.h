// Logging set-up: one set of sinks, many named loggers ("mailstore.log",
// "agent.job", ...). Lines that concern a unit, node or job carry it in the
// message, e.g. "[unit sg1] checkpoint advanced to 0x12:4096".
#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "spdlog/logger.h"

namespace dagvault::logging {

struct Options {
  // trace, debug, info, warn, error, critical or off.
  std::string level = "info";
  // Where to write besides stderr; empty for stderr only.
  std::string file;
};

// Sets the level and sinks of every logger, existing and future. Safe to call
// more than once (tests do).
void Init(const Options& options);

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
