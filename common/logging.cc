#include "common/logging.h"

#include <mutex>
#include <vector>

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

void Init(const Options& options) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.sinks.clear();
  auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  err->set_pattern(kPattern);
  r.sinks.push_back(err);
  if (!options.file.empty()) {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file);
    file->set_pattern(kPattern);
    r.sinks.push_back(file);
  }
  r.level = spdlog::level::from_str(options.level);
  r.initialised = true;
  // Re-point loggers that already exist at the new sinks and level.
  spdlog::apply_all([&](std::shared_ptr<spdlog::logger> logger) {
    logger->sinks() = r.sinks;
    logger->set_level(r.level);
  });
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
