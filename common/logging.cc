#include "common/logging.h"

#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace dagvault::logging {
namespace {

constexpr char kPattern[] = "%Y-%m-%d %H:%M:%S.%e %L [%n] %v";

struct Registry {
  std::mutex mu;
  std::vector<spdlog::sink_ptr> sinks;
  spdlog::level::level_enum level = spdlog::level::info;
  bool initialised = false;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();
  return *registry;
}

void EnsureDefaultSinksLocked(Registry& r) {
  if (r.initialised) return;
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_pattern(kPattern);
  r.sinks = {sink};
  r.initialised = true;
}

}  // namespace

namespace {

// spdlog::level::from_str turns any name it does not know into "off": a
// typo in a configuration would silence the daemon.
bool ParseLevel(absl::string_view name, spdlog::level::level_enum* level) {
  static constexpr std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off}};
  for (const auto& [n, l] : kLevels) {
    if (name == n) {
      *level = l;
      return true;
    }
  }
  return false;
}

absl::Status UnknownLevel(absl::string_view what, absl::string_view level) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": \"", level, "\" is not a log level; valid levels: ", kLevelNames));
}

}  // namespace

absl::Status TryInit(const Options& options) {
  spdlog::level::level_enum level;
  if (!ParseLevel(options.level, &level)) return UnknownLevel("log level", options.level);
  auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  err->set_pattern(kPattern);
  std::vector<spdlog::sink_ptr> sinks = {err};
  if (!options.file.empty()) {
    // Opened here first for an error that names the file: spdlog throws
    // instead, and would create missing folders on the way.
    {
      auto probe = File::Open(options.file, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (!probe.ok()) return Annotate(probe.status(), "log file");
    }
    try {
      auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file);
      file->set_pattern(kPattern);
      sinks.push_back(file);
    } catch (const spdlog::spdlog_ex& e) {
      return absl::UnavailableError(absl::StrCat("log file ", options.file, ": ", e.what()));
    }
  }
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.sinks = std::move(sinks);
  r.level = level;
  r.initialised = true;
  // Re-point loggers that already exist at the new sinks and level.
  spdlog::apply_all([&](std::shared_ptr<spdlog::logger> logger) {
    logger->sinks() = r.sinks;
    logger->set_level(r.level);
    logger->flush_on(r.level);  // as Get does: every line reaches the file at once
  });
  return absl::OkStatus();
}

void Init(const Options& options) {
  if (absl::Status s = TryInit(options); !s.ok()) fmt::print(stderr, "{}\n", s.message());
}

absl::Status InitDaemon(const CliArgs& args, absl::string_view config_path,
                        absl::string_view config_level) {
  spdlog::level::level_enum unused;
  if (!config_level.empty() && !ParseLevel(config_level, &unused)) {
    return UnknownLevel(absl::StrCat(config_path, ": field 'log_level'"), config_level);
  }
  Options options;
  if (!config_level.empty()) options.level = std::string(config_level);
  if (auto flag = args.Get("log-level")) {
    if (!ParseLevel(*flag, &unused)) return UnknownLevel("--log-level", *flag);
    options.level = *flag;
  }
  options.file = args.GetOr("log-file", "");
  return TryInit(options);
}

std::shared_ptr<spdlog::logger> Get(absl::string_view name) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::string key(name);
  if (auto existing = spdlog::get(key)) return existing;
  EnsureDefaultSinksLocked(r);
  auto logger = std::make_shared<spdlog::logger>(key, r.sinks.begin(), r.sinks.end());
  logger->set_level(r.level);
  // Every line that is logged reaches the file at once: a daemon killed
  // with -9 leaves its whole story behind.
  logger->flush_on(r.level);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace dagvault::logging
