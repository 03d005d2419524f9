#include "node-agent/jobs/restore_job.h"

#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/backup_type.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "repository/chain.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;

std::string Gen(uint32_t g) { return absl::StrFormat("0x%08X", g); }

// Manifest name → path, per piece of the chain: the Full's databases to
// the paths the writer gave, every piece's logs (each generation once, and
// none past the point in time) to its log folder.
absl::StatusOr<std::vector<std::map<std::string, std::string>>> PlanTargets(
    const RestoreJobSpec& spec, const v1::PrepareRestoreResponse& prepared, uint64_t* total) {
  std::vector<std::map<std::string, std::string>> plan(spec.chain.size());
  std::map<std::string, std::string> databases;  // file name → path
  for (const auto& path : prepared.database_paths()) databases[BaseName(path)] = path;
  std::set<std::string> placed;
  for (const auto& f : spec.chain.front().files()) {
    if (f.role() != "database") continue;
    auto it = databases.find(BaseName(f.name()));
    if (it == databases.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("backup ", spec.chain.front().id(), " holds database file ", f.name(),
                       ", which the restore target of unit ", spec.target.unit, " does not have"));
    }
    plan[0][f.name()] = it->second;
    placed.insert(it->first);
    *total += f.size();
  }
  for (const auto& [name, path] : databases) {
    if (!placed.count(name)) {
      return absl::FailedPreconditionError(absl::StrCat("the restore target's database ", path,
                                                        " is in no file of backup ",
                                                        spec.chain.front().id()));
    }
  }
  std::set<uint32_t> generations;
  for (size_t i = 0; i < spec.chain.size(); ++i) {
    for (const auto& f : spec.chain[i].files()) {
      if (f.role() != "log") continue;
      if (spec.to_generation != 0 && f.generation() > spec.to_generation) continue;
      if (!generations.insert(f.generation()).second) continue;
      plan[i][f.name()] = JoinPath(prepared.log_dir(), BaseName(f.name()));
      *total += f.size();
    }
  }
  return plan;
}

}  // namespace

absl::StatusOr<std::vector<v1::Manifest>> ChainFromRepository(const repository::Repository& repo,
                                                              const std::string& unit,
                                                              uint32_t to_generation) {
  ASSIGN_OR_RETURN(std::vector<v1::Manifest> manifests, repo.ReadManifestsOfUnit(unit));
  return repository::RestoreChain(repository::AssembleChains(manifests, unit), to_generation, unit);
}

absl::StatusOr<RestoreJobResult> RunRestoreJob(ShadowSession& session,
                                               const repository::Repository& repo,
                                               const RestoreJobSpec& spec,
                                               repository::TransferControl* control,
                                               const ProgressFn& progress,
                                               const RestoreJobOptions& options) {
  const absl::Time started = absl::Now();
  repository::TransferControl own_control;
  if (control == nullptr) control = &own_control;
  // The chain is checked before anything is written.
  RETURN_IF_ERROR(repository::CheckChain(spec.chain));
  const v1::Manifest& full = spec.chain.front();
  const uint32_t end = spec.chain.back().high_generation();
  if (full.unit() != spec.target.unit) {
    return absl::InvalidArgumentError(absl::StrCat("backup ", full.id(), " is of unit ",
                                                   full.unit(), ", not ", spec.target.unit));
  }
  if (spec.to_generation != 0 &&
      (spec.to_generation < full.high_generation() || spec.to_generation > end)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "generation ", Gen(spec.to_generation), " is outside this chain's restore points (",
        Gen(full.high_generation()), " to ", Gen(end), ")"));
  }
  if (progress) progress(JobProgress{"preparing", 0, 0, "", 0});
  RestoreTarget target = spec.target;
  // The writer refuses to overwrite another database's files: it is told
  // whose these are.
  if (target.database_signatures.empty()) {
    target.database_signatures.assign(full.database_signatures().begin(),
                                      full.database_signatures().end());
  }
  if (spec.join_active_stream) {
    // The chain's last log, for the writer to find in the active copy's
    // stream before the passive copy's files go.
    const uint32_t last = spec.to_generation != 0 ? spec.to_generation : end;
    for (const auto& piece : spec.chain) {
      for (const auto& f : piece.files()) {
        if (f.generation() == last && f.role() == "log") {
          target.join_generation = last;
          target.join_sha256 = absl::BytesToHexString(f.sha256());
        }
      }
    }
    if (target.join_generation == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the chain ", spec.chain.back().id(), " of unit ", spec.target.unit,
          " holds no log generation ", Gen(last), " to join the active copy's stream"));
    }
  }
  ASSIGN_OR_RETURN(v1::PrepareRestoreResponse prepared, session.BeginRestore(target));

  RestoreJobResult result;
  result.job = spec.target.job;
  result.unit = spec.target.unit;
  result.recovery_database = prepared.recovery_database();
  result.message = prepared.message();
  result.system_dir = prepared.system_dir();
  uint64_t total = 0;
  ASSIGN_OR_RETURN(auto plan, PlanTargets(spec, prepared, &total));
  const absl::Time transfer_started = absl::Now();
  {
    std::string current;
    std::mutex current_mu;
    ProgressTicker ticker(
        progress, "restoring", total, *control,
        [&] {
          std::lock_guard<std::mutex> l(current_mu);
          return current;
        },
        options.progress_every);
    for (size_t i = 0; i < spec.chain.size(); ++i) {
      if (plan[i].empty()) continue;
      // Tests slow a restore here to stop it part-way: an all-copies
      // restore's step 3 (the active copy) or step 5 (a passive copy).
      if (spec.target.passive_copy) {
        DAGVAULT_CRASH_POINT("agent.restore.passive");
      } else {
        DAGVAULT_CRASH_POINT("agent.restore.step");
      }
      {
        std::lock_guard<std::mutex> l(current_mu);
        current = absl::StrCat(BackupTypeTitle(spec.chain[i].type()), " ", spec.chain[i].id());
      }
      repository::RestoreOptions restore;
      restore.workers = options.workers;
      restore.targets = plan[i];
      restore.overwrite = true;  // the writer handed these paths over
      restore.control = control;
      auto restored = repository::Restore(repo, spec.chain[i].id(), "", restore);
      if (!restored.ok()) {
        return absl::Status(
            restored.status().code(),
            absl::StrCat(
                "restore of unit ", spec.target.unit, " stopped at backup ", spec.chain[i].id(),
                " (nothing was replayed or mounted; run it again): ", restored.status().message()));
      }
      result.files += restored->files;
      result.bytes += restored->bytes;
      result.manifests.push_back(spec.chain[i].id());
    }
  }
  result.transfer = absl::Now() - transfer_started;
  if (progress) progress(JobProgress{"replaying", result.bytes, total, "", 0});
  // The fault matrix holds a restore plan's step 4 (replay and mount) here.
  DAGVAULT_CRASH_POINT("agent.restore.replaying");
  const absl::Time replay_started = absl::Now();
  ASSIGN_OR_RETURN(
      v1::RestoreCompleteResponse completed,
      session.EndRestore(spec.to_generation, spec.roll_forward, spec.mount, spec.checks));
  result.replay = absl::Now() - replay_started;
  result.last_generation = completed.last_generation();
  result.completed = completed;
  if (!completed.message().empty()) {
    result.message = result.message.empty()
                         ? completed.message()
                         : absl::StrCat(result.message, "; ", completed.message());
  }
  result.elapsed = absl::Now() - started;
  logging::Get("agent.restore")
      ->info(
          "job {}: unit {} restored from {} backups ({} files, {} bytes), replayed through "
          "0x{:08X}{}",
          result.job, result.unit, result.manifests.size(), result.files, result.bytes,
          result.last_generation,
          result.recovery_database.empty()
              ? std::string()
              : absl::StrCat(", as recovery database ", result.recovery_database));
  return result;
}

}  // namespace dagvault::agent
