#include "node-agent/jobs/backup_job.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/backup_type.h"
#include "common/clock.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "repository/chain.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;

std::vector<std::string> Sorted(const google::protobuf::RepeatedPtrField<std::string>& list) {
  std::vector<std::string> v(list.begin(), list.end());
  std::sort(v.begin(), v.end());
  return v;
}

// The newest backup of the unit that holds its .edb files under the same
// database signatures: a Full or Copy compares its blocks with it and
// stores only the changed ones. "" when there is none (the first Full, or
// the databases were re-created).
std::string BlockBase(const repository::Repository& repo, const std::string& unit,
                      const v1::FreezeResponse& frozen, std::vector<std::string>* warnings) {
  auto ids = repo.ListManifests();
  if (!ids.ok()) {
    warnings->push_back(absl::StrCat("could not list the repository's backups (",
                                     ids.status().message(), "): every block is stored"));
    return "";
  }
  const std::vector<std::string> signatures = Sorted(frozen.database_signatures());
  for (auto it = ids->rbegin(); it != ids->rend(); ++it) {
    auto m = repo.ReadManifest(*it);
    if (!m.ok() || m->unit() != unit) continue;
    const bool has_databases = std::any_of(m->files().begin(), m->files().end(),
                                           [](const auto& f) { return f.role() == "database"; });
    if (has_databases && Sorted(m->database_signatures()) == signatures) return m->id();
  }
  return "";
}

std::vector<ComponentResult> Components(const v1::FreezeResponse& frozen, bool success,
                                        const std::string& message) {
  std::vector<ComponentResult> out;
  std::vector<std::string> seen;
  for (const auto& f : frozen.files()) {
    if (std::find(seen.begin(), seen.end(), f.component()) != seen.end()) continue;
    seen.push_back(f.component());
    out.push_back({f.component(), success, message});
  }
  return out;
}

}  // namespace

std::string ManifestNameFor(const v1::FreezeResponse::File& file) {
  return file.role() == "log" ? JoinPath("logs", BaseName(file.path())) : BaseName(file.path());
}

std::vector<std::string> SnapshotDirsOf(const v1::UnitMetadata& unit) {
  std::vector<std::string> dirs = {unit.system_dir(), unit.log_dir()};
  for (const auto& c : unit.components()) {
    for (const auto& f : c.files()) dirs.push_back(DirName(f));
  }
  return dirs;
}

absl::StatusOr<std::vector<std::string>> SweepLeftoverSnapshots(ShadowSession& session) {
  ASSIGN_OR_RETURN(v1::WriterMetadata metadata, session.Metadata());
  std::vector<std::string> dirs;
  for (const auto& w : metadata.writers()) {
    for (const auto& u : w.units()) {
      for (std::string& d : SnapshotDirsOf(u)) dirs.push_back(std::move(d));
    }
  }
  return RemoveLeftoverSnapshots(dirs);
}

absl::Status FillBaseFromRepository(const repository::Repository& repo, BackupJobSpec* spec) {
  if (spec->type != v1::INCREMENTAL && spec->type != v1::DIFFERENTIAL) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<v1::Manifest> manifests, repo.ReadManifestsOfUnit(spec->unit));
  ASSIGN_OR_RETURN(v1::Manifest base,
                   repository::BaseFor(repository::AssembleChains(manifests, spec->unit),
                                       spec->type, spec->unit));
  const v1::ManifestFile* log = repository::FindLog(base, base.high_generation());
  if (log == nullptr) {
    return absl::DataLossError(absl::StrCat("backup ", base.id(), " of unit ", spec->unit,
                                            " does not hold its high generation's log"));
  }
  spec->base_high_generation = base.high_generation();
  spec->base_high_log_sha256 = log->sha256();
  for (const auto& f : base.files()) {
    if (f.role() == "log") spec->base_log_sha256[f.generation()] = f.sha256();
  }
  return absl::OkStatus();
}

namespace {

// The verifier's last word, then the job's own hook with the summary.
class CommitHook : public repository::BackupObserver {
 public:
  CommitHook(repository::BackupObserver* inner,
             const std::function<absl::Status(const v1::Manifest&)>& hook)
      : inner_(inner), hook_(hook) {}
  absl::Status OnSegment(size_t file, uint64_t offset, absl::string_view data) override {
    return inner_->OnSegment(file, offset, data);
  }
  absl::Status BeforeCommit(v1::Manifest* manifest) override {
    RETURN_IF_ERROR(inner_->BeforeCommit(manifest));
    return hook_ ? hook_(repository::ChainSummaryOf(*manifest)) : absl::OkStatus();
  }

 private:
  repository::BackupObserver* inner_;
  const std::function<absl::Status(const v1::Manifest&)>& hook_;
};

}  // namespace

std::optional<v1::Manifest> UnacknowledgedBackupOf(const absl::Status& status) {
  auto payload = status.GetPayload(kUnacknowledgedBackupPayload);
  if (!payload) return std::nullopt;
  v1::Manifest summary;
  if (!summary.ParseFromString(std::string(*payload))) return std::nullopt;
  return summary;
}

absl::StatusOr<BackupJobResult> RunBackupJob(ShadowSession& session, SnapshotProvider& provider,
                                             const repository::Repository& repo,
                                             const BackupJobSpec& spec,
                                             repository::TransferControl* control,
                                             const ProgressFn& progress,
                                             const BackupJobOptions& options) {
  auto log = logging::Get("agent.backup");
  const absl::Time started = absl::Now();
  repository::TransferControl own_control;
  if (control == nullptr) control = &own_control;
  const bool follows = spec.type == v1::INCREMENTAL || spec.type == v1::DIFFERENTIAL;
  if (follows && (spec.base_high_generation == 0 || spec.base_high_log_sha256.size() != 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", spec.job, ": an ", BackupTypeTitle(spec.type),
                     " needs the high generation of the backup it follows and that log's hash"));
  }
  auto report = [&](const std::string& phase) {
    if (progress) progress(JobProgress{phase, control->bytes_done, 0, "", 0});
  };
  report("preparing");
  ASSIGN_OR_RETURN(BeganBackup began, session.BeginBackup(spec));
  DAGVAULT_CRASH_POINT("agent.backup.prepared");
  // From here on the writer holds the unit: every way out ends the session.
  auto fail = [&](const absl::Status& why, const v1::FreezeResponse& frozen) -> absl::Status {
    const std::string message =
        control->cancel ? std::string("cancelled") : std::string(why.message());
    auto ended = session.EndBackup(false, Components(frozen, false, message), 0, 0);
    if (!ended.ok()) {
      log->warn(
          "job {}: BackupComplete(failure) was not delivered ({}); the writer ends the "
          "session when its timeout passes",
          spec.job, ended.status().ToString());
    }
    const std::string prefix =
        absl::StrCat(BackupTypeTitle(spec.type), " backup of unit ", spec.unit,
                     " failed; nothing was truncated and no backup was recorded: ");
    if (control->cancel) return absl::CancelledError(absl::StrCat(prefix, "cancelled"));
    absl::Status out(why.code(), absl::StrCat(prefix, why.message()));
    // What the coordinator reads from a failure (a chain break) survives.
    why.ForEachPayload(
        [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
    return out;
  };
  if (control->cancel) return fail(absl::CancelledError("cancelled"), {});
  // The writer granted the unit to this job, so a snapshot folder beside
  // its files is what a crashed job left: remove it before taking anew.
  auto leftovers = RemoveLeftoverSnapshots(SnapshotDirsOf(began.unit));
  if (!leftovers.ok()) return fail(leftovers.status(), {});
  for (const auto& folder : *leftovers) {
    log->warn("job {}: removed snapshot folder {}, left by an earlier job that did not finish",
              spec.job, folder);
  }
  report("snapshot");
  auto copy = session.CreateSnapshot(provider);
  if (!copy.ok()) return fail(copy.status(), {});
  const v1::FreezeResponse& frozen = copy->frozen;

  BackupJobResult result;
  result.job = spec.job;
  result.unit = spec.unit;
  result.type = spec.type;
  result.node = began.unit.copy().node();
  result.writer_instance = began.writer_instance;
  result.low_generation = frozen.low_generation();
  result.high_generation = frozen.high_generation();
  result.freeze_window = copy->freeze_window;
  result.writer_frozen_for = copy->writer_frozen_for;
  result.warnings = copy->snapshot->warnings();

  // The snapshot's files, in the order the writer listed them.
  std::vector<repository::BackupFile> files;
  std::vector<std::string> sources;
  uint64_t total = 0;
  for (int i = 0; i < frozen.files_size(); ++i) {
    const auto& f = frozen.files(i);
    const SnapshotFile& snap = copy->snapshot->files()[static_cast<size_t>(i)];
    if (snap.source != f.path()) {
      return fail(
          absl::InternalError(absl::StrCat("the snapshot of ", f.path(), " is out of order")),
          frozen);
    }
    if (result.snapshot_provider.empty() || result.snapshot_provider == snap.provider) {
      result.snapshot_provider = snap.provider;
    } else {
      result.snapshot_provider = "mixed";
    }
    files.push_back({snap.path, ManifestNameFor(f), f.role(), f.component(), f.generation()});
    sources.push_back(f.path());
    total += snap.size;
  }

  UnitExpectations expect;
  expect.unit = spec.unit;
  expect.type = spec.type;
  expect.log_signature = frozen.log_signature();
  expect.database_signatures.assign(frozen.database_signatures().begin(),
                                    frozen.database_signatures().end());
  expect.checkpoint_generation = frozen.checkpoint_generation();
  expect.low_generation = frozen.low_generation();
  expect.high_generation = frozen.high_generation();
  if (follows) {
    expect.join_generation = spec.base_high_generation;
    expect.join_sha256 = spec.base_high_log_sha256;
    expect.chain_log_sha256 = spec.base_log_sha256;
  }
  auto verifier = UnitVerifier::Create(expect, files, sources);
  if (!verifier.ok()) return fail(verifier.status(), frozen);

  v1::Manifest header;
  header.set_unit(spec.unit);
  header.set_type(spec.type);
  header.set_source_node(result.node);
  header.set_source_copy(began.writer_instance == kReplicationWriter ? "passive" : "active");
  header.set_writer_instance(began.writer_instance);
  header.set_log_signature(frozen.log_signature());
  *header.mutable_database_signatures() = frozen.database_signatures();
  header.set_low_generation(frozen.low_generation());
  header.set_high_generation(frozen.high_generation());
  header.set_checkpoint_generation(frozen.checkpoint_generation());
  header.set_frozen_us(frozen.frozen_us());
  auto& labels = *header.mutable_labels();
  labels["job"] = spec.job;
  labels["snapshot_provider"] = result.snapshot_provider;
  labels["freeze_window_us"] = absl::StrCat(absl::ToInt64Microseconds(result.freeze_window));

  repository::BackupOptions backup = options.repository;
  CommitHook hook(verifier->get(), options.before_commit);
  backup.observer = &hook;
  backup.control = control;
  // .edb files under the same signatures: only the changed blocks are
  // stored. Logs are new data every time.
  backup.base_manifest = follows ? "" : BlockBase(repo, spec.unit, frozen, &result.warnings);
  const absl::Time transfer_started = absl::Now();
  const absl::Duration cpu_before = ProcessCpuTime();
  absl::StatusOr<v1::Manifest> manifest;
  {
    const UnitVerifier* v = verifier->get();
    ProgressTicker ticker(
        progress, "transferring", total, *control, [v] { return v->current_file(); },
        options.progress_every);
    manifest = repository::Backup(repo, files, header, backup);
  }
  result.transfer = absl::Now() - transfer_started;
  result.transfer_cpu = ProcessCpuTime() - cpu_before;
  (void)copy->snapshot->Remove();  // and by its destructor, whatever happened
  if (!manifest.ok()) return fail(manifest.status(), frozen);

  // The manifest is durable: now the writer may record the backup and
  // truncate.
  report("completing");
  DAGVAULT_CRASH_POINT("agent.backup.completing");
  auto completed = session.EndBackup(true, Components(frozen, true, ""), frozen.low_generation(),
                                     frozen.high_generation());
  if (!completed.ok()) {
    // Refused, or its answer lost (the writer's daemon died after it
    // truncated, say): the backup is kept and the summary travels with the
    // failure, so that the coordinator catalogues it.
    absl::Status failed(
        completed.status().code(),
        absl::StrCat("backup ", manifest->id(), " of unit ", spec.unit,
                     " is verified and in the repository, but BackupComplete was not "
                     "acknowledged (so the writer may or may not have recorded it and truncated "
                     "after it; the backup is kept): ",
                     completed.status().message()));
    failed.SetPayload(kUnacknowledgedBackupPayload,
                      absl::Cord(repository::ChainSummaryOf(*manifest).SerializeAsString()));
    return failed;
  }
  result.manifest = manifest->id();
  result.summary = repository::ChainSummaryOf(*manifest);
  result.base_manifest = manifest->base_manifest();
  result.logical_bytes = manifest->logical_bytes();
  result.new_bytes = manifest->new_bytes();
  result.stored_bytes = manifest->stored_bytes();
  result.verified = (*verifier)->summary();
  result.truncated.assign(completed->truncated().begin(), completed->truncated().end());
  result.elapsed = absl::Now() - started;
  log->info(
      "job {}: {} backup of {} from {} ({}): manifest {}, generations 0x{:08X}-0x{:08X}, "
      "freeze window {}, {} read, {} new",
      spec.job, BackupTypeTitle(spec.type), spec.unit, result.node, result.writer_instance,
      result.manifest, result.low_generation, result.high_generation,
      absl::FormatDuration(result.freeze_window), result.logical_bytes, result.new_bytes);
  return result;
}

dagvault::v1::BackupJobResult ResultMessageOf(const BackupJobResult& r) {
  dagvault::v1::BackupJobResult out;
  out.set_manifest(r.manifest);
  out.set_type(r.type);
  out.set_writer_instance(r.writer_instance);
  out.set_low_generation(r.low_generation);
  out.set_high_generation(r.high_generation);
  out.set_logical_bytes(r.logical_bytes);
  out.set_new_bytes(r.new_bytes);
  out.set_stored_bytes(r.stored_bytes);
  for (uint32_t g : r.truncated) out.add_truncated(g);
  out.set_freeze_window_us(absl::ToInt64Microseconds(r.freeze_window));
  out.set_elapsed_us(absl::ToInt64Microseconds(r.elapsed));
  out.set_pages_checked(r.verified.pages);
  for (const auto& w : r.warnings) out.add_warnings(w);
  return out;
}

}  // namespace dagvault::agent
