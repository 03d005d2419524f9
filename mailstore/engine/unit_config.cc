#include "mailstore/engine/unit_config.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/text_config.h"
#include "mailstore/engine/log_writer.h"
#include "mailstore/format/log_format.h"
#include "mailstore/format/page.h"

namespace dagvault::mailstore {

using dagvault::v1::UnitConfig;

std::string ResolvedUnit::CheckpointPath() const {
  return JoinPath(system_dir, CheckpointFileName(log_prefix));
}

std::string ResolvedUnit::LockPath() const {
  return JoinPath(system_dir, absl::StrCat(log_prefix, ".lck"));
}

int ResolvedUnit::DatabaseIndex(const std::string& db_name) const {
  for (size_t i = 0; i < databases.size(); ++i) {
    if (databases[i].name == db_name) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<ResolvedUnit> ResolveUnitConfig(const UnitConfig& config) {
  std::vector<std::string> problems;
  const std::string unit_label =
      config.name().empty() ? "unit" : absl::StrCat("unit ", config.name());
  auto problem = [&](const std::string& field, const std::string& what) {
    problems.push_back(absl::StrCat(unit_label, ": field '", field, "': ", what));
  };
  if (absl::Status s = CheckRequiredFields(config, unit_label); !s.ok()) {
    problems.push_back(std::string(s.message()));
  }

  ResolvedUnit unit;
  unit.name = config.name();
  unit.mode = config.mode();
  unit.log_prefix = config.log_prefix();
  unit.system_dir = config.system_dir();
  unit.log_dir = config.log_dir().empty() ? config.system_dir() : config.log_dir();
  unit.page_size = config.page_size() == 0 ? kDefaultPageSize : config.page_size();
  const uint64_t log_size =
      config.log_file_size() == 0 ? kDefaultLogFileSize : config.log_file_size();
  unit.circular_logging = config.circular_logging();

  if (!unit.log_prefix.empty()) {
    bool ok = unit.log_prefix.size() <= 8;
    for (char c : unit.log_prefix) ok = ok && absl::ascii_isalnum(static_cast<unsigned char>(c));
    if (!ok)
      problem("log_prefix",
              absl::StrCat("\"", unit.log_prefix, "\" must be 1 to 8 letters or digits"));
  }
  if (!IsValidPageSize(unit.page_size)) {
    problem("page_size", absl::StrCat(unit.page_size, " is not 4096, 8192, 16384 or 32768"));
  }
  const uint64_t min_log =
      std::max<uint64_t>(kMinLogFileSize, uint64_t{kLogHeaderSize} + 4ull * unit.page_size);
  if (log_size % 4096 != 0 || log_size < min_log || log_size > (1ull << 30)) {
    problem("log_file_size",
            absl::StrCat(log_size, " must be a multiple of 4096 between ", min_log, " and 1 GiB"));
  }
  unit.log_file_size = static_cast<uint32_t>(log_size);

  if (config.databases_size() == 0) {
    problem("databases", "at least one database is required");
  }
  if (config.mode() == UnitConfig::DATABASE && config.databases_size() > 1) {
    problem("databases", absl::StrCat("database mode allows exactly one database, found ",
                                      config.databases_size(), " (use STORAGE_GROUP)"));
  }
  if (config.databases_size() > static_cast<int>(kMaxDatabasesPerUnit)) {
    problem("databases", absl::StrCat("at most ", kMaxDatabasesPerUnit, " databases per unit"));
  }
  std::set<std::string> names, paths;
  for (int i = 0; i < config.databases_size(); ++i) {
    const auto& db = config.databases(i);
    const std::string field = absl::StrCat("databases[", i, "]");
    if (!db.name().empty() && !names.insert(db.name()).second) {
      problem(field + ".name", absl::StrCat("\"", db.name(), "\" is used twice"));
    }
    if (db.name().size() > 63) problem(field + ".name", "longer than 63 characters");
    std::string path = db.path().empty() ? absl::StrCat(db.name(), ".edb") : db.path();
    path = JoinPath(unit.system_dir, path);
    if (!paths.insert(path).second) problem(field + ".path", absl::StrCat(path, " is used twice"));
    unit.databases.push_back({db.name(), path});
  }
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  return unit;
}

}  // namespace dagvault::mailstore
