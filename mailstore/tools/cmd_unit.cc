// Commands that change files: recover, create, fill.
#include <atomic>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/cli_args.h"
#include "common/file_util.h"
#include "common/text_config.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/recovery.h"
#include "mailstore/format/log_format.h"
#include "mailstore/tools/cli_output.h"
#include "mailstore/tools/size_mix.h"
#include "mailstore/tools/util.h"

namespace dagvault::mailstore {
namespace {

// The log prefix of a unit from its checkpoint file or its logs.
absl::StatusOr<std::string> FindPrefix(const std::string& system_dir, const std::string& log_dir) {
  std::vector<std::string> prefixes;
  if (!system_dir.empty()) {
    auto names = ListDirectory(system_dir);
    if (names.ok()) {
      for (const auto& n : *names) {
        if (n.size() > 4 && n.substr(n.size() - 4) == ".chk")
          prefixes.push_back(n.substr(0, n.size() - 4));
      }
    }
  }
  if (prefixes.empty()) {
    auto found = FindLogPrefixes(log_dir);
    if (!found.ok()) return found.status();
    prefixes = *found;
  }
  if (prefixes.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefixes.empty() ? "no checkpoint or log files found" : "several log streams found", " in ",
        log_dir, "; name the stream with --prefix"));
  }
  return prefixes.front();
}

absl::StatusOr<dagvault::v1::UnitConfig> LoadUnit(const CliArgs& args) {
  auto path = args.Get("config");
  if (!path) return absl::InvalidArgumentError("--config UNIT.conf is required");
  dagvault::v1::UnitConfig config;
  absl::Status s = LoadTextConfig(*path, &config);
  if (!s.ok()) return s;
  return config;
}

}  // namespace

int CmdRecover(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed =
      CliArgs::Parse(args, {{"system", "logs", "db", "to-generation", "prefix"}, {"hard", "json"}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "recover");
  RecoveryRequest req;
  req.system_dir = parsed->GetOr("system", "");
  req.log_dir = parsed->GetOr("logs", req.system_dir);
  req.db_paths = parsed->GetAll("db");
  req.force_hard = parsed->Has("hard");
  if (req.log_dir.empty() || req.db_paths.empty()) {
    err << "usage: mailstore-util recover --system DIR --logs DIR --db FILE.edb... "
           "[--to-generation G] [--prefix E00] [--hard]\n";
    return kExitUsage;
  }
  if (parsed->Has("to-generation")) {
    auto g = parsed->GetUint("to-generation", 0);
    if (!g.ok()) return UsageError(err, g.status(), "recover");
    req.to_generation = static_cast<Generation>(*g);
  }
  if (auto p = parsed->Get("prefix")) {
    req.prefix = *p;
  } else {
    auto found = FindPrefix(req.system_dir, req.log_dir);
    if (!found.ok()) return UsageError(err, found.status(), "recover");
    req.prefix = *found;
  }
  auto report = Recover(req);
  if (!report.ok()) {
    err << "mailstore-util recover: refused: " << report.status().message() << "\n"
        << "nothing was written to the databases\n";
    return kExitFailure;
  }
  if (parsed->Has("json")) {
    dagvault::v1::RecoveryInfo info;
    info.set_soft(report->soft);
    info.set_nothing_to_do(report->nothing_to_do);
    info.mutable_start()->set_generation(report->start.generation);
    info.mutable_start()->set_offset(report->start.offset);
    info.mutable_end()->set_generation(report->end.generation);
    info.mutable_end()->set_offset(report->end.offset);
    info.set_first_generation(report->first_generation);
    info.set_last_generation(report->last_generation);
    info.set_transactions(report->transactions);
    info.set_records_applied(report->records_applied);
    info.set_records_skipped(report->records_skipped);
    info.set_records_discarded(report->records_discarded);
    info.set_seconds(report->seconds);
    for (const auto& n : report->notes) info.add_notes(n);
    out << ToJson(info) << "\n";
    return kExitOk;
  }
  for (const auto& note : report->notes) out << "note: " << note << "\n";
  if (report->nothing_to_do) {
    out << "nothing to replay: the databases are consistent with the logs\n";
    return kExitOk;
  }
  out << absl::StrFormat(
      "%s recovery: replayed generations 0x%08X to 0x%08X (%s to %s)\n"
      "  %u transactions, %u page records applied, %u already in place, %u of uncommitted "
      "transactions ignored\n"
      "  %.1f MB of log in %.3f s\n",
      report->soft ? "soft" : "hard", report->first_generation, report->last_generation,
      report->start.ToString(), report->end.ToString(), report->transactions,
      report->records_applied, report->records_skipped, report->records_discarded,
      static_cast<double>(report->log_bytes) / 1e6, report->seconds);
  for (const auto& db : req.db_paths) out << "  consistent (CleanShutdown): " << db << "\n";
  return kExitOk;
}

int CmdCreate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(args, {{"config"}, {}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "create");
  auto config = LoadUnit(*parsed);
  if (!config.ok()) {
    err << "mailstore-util create: " << config.status().message() << "\n";
    return kExitUsage;
  }
  auto engine = Engine::Create(*config);
  if (!engine.ok()) {
    err << "mailstore-util create: " << engine.status().message() << "\n";
    return kExitFailure;
  }
  absl::Status closed = (*engine)->Close();
  if (!closed.ok()) {
    err << "mailstore-util create: " << closed.message() << "\n";
    return kExitFailure;
  }
  const ResolvedUnit& unit = (*engine)->unit();
  out << "created unit " << unit.name << " ("
      << (unit.databases.size() == 1 ? "database" : "storage group") << " mode, log prefix "
      << unit.log_prefix << ", page size " << unit.page_size << ", log size " << unit.log_file_size
      << (unit.circular_logging ? ", circular logging" : "") << ")\n";
  for (const auto& db : unit.databases) out << "  database " << db.name << ": " << db.path << "\n";
  out << "  logs: " << unit.log_dir << "\n  checkpoint: " << unit.CheckpointPath() << "\n";
  return kExitOk;
}

int CmdFill(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(
      args, {{"config", "items", "size-mix", "mailboxes", "threads", "seed", "database"}, {}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "fill");
  auto config = LoadUnit(*parsed);
  if (!config.ok()) return UsageError(err, config.status(), "fill");
  auto items = parsed->GetUint("items", 1000);
  auto mailboxes = parsed->GetUint("mailboxes", 10);
  auto threads = parsed->GetUint("threads", 4);
  auto seed = parsed->GetUint("seed", 1);
  auto mix = SizeMix::Parse(parsed->GetOr("size-mix", "2k:50,8k:30,75k:15,1m:5"));
  for (const absl::Status& s :
       {items.status(), mailboxes.status(), threads.status(), seed.status(), mix.status()}) {
    if (!s.ok()) return UsageError(err, s, "fill");
  }
  if (*mailboxes == 0 || *threads == 0)
    return UsageError(
        err, absl::InvalidArgumentError("--mailboxes and --threads must be at least 1"), "fill");
  auto engine = Engine::Open(*config);
  if (!engine.ok()) {
    err << "mailstore-util fill: " << engine.status().message() << "\n";
    return kExitFailure;
  }
  Engine& e = **engine;
  // Items go round-robin to every database of the unit, or to one.
  std::vector<uint32_t> targets;
  if (auto name = parsed->Get("database")) {
    const int db = e.DatabaseIndex(*name);
    if (db < 0)
      return UsageError(err, absl::NotFoundError(absl::StrCat("no database named ", *name)),
                        "fill");
    targets.push_back(static_cast<uint32_t>(db));
  } else {
    for (uint32_t db = 0; db < e.unit().databases.size(); ++db) targets.push_back(db);
  }
  // New item ids continue after the items already there, so repeated fills add.
  uint64_t start_item = 0;
  for (uint32_t db : targets)
    start_item = std::max(start_item, e.Meta(db).value_or(MetaInfo{}).item_count);
  std::atomic<uint64_t> next{0}, bytes{0};
  std::atomic<bool> failed{false};
  std::string first_error;
  std::mutex error_mu;
  const absl::Time t0 = absl::Now();
  std::vector<std::thread> workers;
  for (uint64_t t = 0; t < *threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(*seed * 7919 + t);
      std::string value;
      for (uint64_t i = next++; i < *items && !failed; i = next++) {
        FillMailLikeBytes(rng, mix->Pick(rng), &value);
        const ItemKey key{1 + i % *mailboxes, start_item + i};
        absl::Status s = e.Put(targets[i % targets.size()], key, value);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (!failed.exchange(true)) first_error = std::string(s.message());
          return;
        }
        bytes += value.size();
      }
    });
  }
  for (auto& w : workers) w.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  absl::Status closed = e.Close();
  if (failed || !closed.ok()) {
    err << "mailstore-util fill: " << (failed ? first_error : std::string(closed.message()))
        << "\n";
    return kExitFailure;
  }
  out << absl::StrFormat(
      "wrote %u items (%.1f MB, mix %s) to %u database(s) in %.2f s: %.0f items/s, "
      "%.1f MB/s\n",
      *items, static_cast<double>(bytes) / 1e6, mix->ToString(), targets.size(), seconds,
      *items / seconds, static_cast<double>(bytes) / 1e6 / seconds);
  out << "unit " << e.unit().name << " shut down cleanly\n";
  return kExitOk;
}

}  // namespace dagvault::mailstore
