#include "node-agent/jobs/log_archive.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "repository/chain.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;

std::string Gen(uint32_t g) { return absl::StrFormat("0x%08X", g); }

}  // namespace

std::string LogFilePath(const std::string& log_dir, const std::string& log_prefix,
                        uint32_t generation) {
  return JoinPath(log_dir, absl::StrFormat("%s%08X.log", log_prefix, generation));
}

absl::StatusOr<ArchiveBase> ArchiveBaseOf(const v1::Manifest& piece) {
  ArchiveBase base;
  base.manifest = piece.id();
  base.high_generation = piece.high_generation();
  base.log_signature = piece.log_signature();
  base.database_signatures.assign(piece.database_signatures().begin(),
                                  piece.database_signatures().end());
  for (const auto& f : piece.files()) {
    if (f.role() == "log") base.log_sha256[f.generation()] = f.sha256();
  }
  auto high = base.log_sha256.find(base.high_generation);
  if (high == base.log_sha256.end()) {
    return absl::DataLossError(absl::StrCat("backup ", piece.id(), " of unit ", piece.unit(),
                                            " does not hold its high generation's log"));
  }
  base.high_log_sha256 = high->second;
  return base;
}

absl::StatusOr<ArchiveBase> ArchiveBaseFromRepository(const repository::Repository& repo,
                                                      const std::string& unit) {
  ASSIGN_OR_RETURN(std::vector<v1::Manifest> manifests, repo.ReadManifestsOfUnit(unit));
  const std::vector<repository::Chain> chains = repository::AssembleChains(manifests, unit);
  if (chains.empty()) {
    return absl::NotFoundError(
        absl::StrCat("unit ", unit,
                     " has no Full backup in this repository: its logs are archived once one "
                     "starts a chain"));
  }
  const repository::Chain& c = chains.back();
  if (c.broken) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", unit, ": the newest chain (Full ", c.full->id(), ") ",
                     c.broken->reason, "; its logs are archived again after the next Full"));
  }
  const v1::Manifest* piece = !c.archived.empty()       ? c.archived.back()
                              : !c.incrementals.empty() ? c.incrementals.back()
                                                        : c.full;
  ASSIGN_OR_RETURN(ArchiveBase base, ArchiveBaseOf(*piece));
  const size_t recent = std::min<size_t>(c.archived.size(), 16);
  for (size_t i = c.archived.size() - recent; i < c.archived.size(); ++i) {
    base.recent_segments.push_back(repository::ChainSummaryOf(*c.archived[i]));
  }
  return base;
}

absl::StatusOr<LogArchiveResult> ArchiveLogs(const repository::Repository& repo,
                                             const LogArchiveSpec& spec, const ArchiveBase& base,
                                             repository::BackupOptions options) {
  if (spec.low_generation == 0 || spec.high_generation < spec.low_generation) {
    return absl::InvalidArgumentError(
        absl::StrCat("unit ", spec.unit, ": no log generations to archive (",
                     Gen(spec.low_generation), " to ", Gen(spec.high_generation), ")"));
  }
  if (spec.low_generation > base.high_generation + 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", spec.unit, ": the archive ends at generation ", Gen(base.high_generation), " (",
        base.manifest, "), so ", Gen(spec.low_generation), " cannot follow it: generations ",
        Gen(base.high_generation + 1), " to ", Gen(spec.low_generation - 1),
        " would be in no backup"));
  }
  std::vector<repository::BackupFile> files;
  std::vector<std::string> sources;
  for (uint32_t g = spec.low_generation; g <= spec.high_generation; ++g) {
    const std::string path = LogFilePath(spec.log_dir, spec.log_prefix, g);
    const std::string name = BaseName(path);
    if (!PathExists(path)) {
      return absl::NotFoundError(absl::StrCat("unit ", spec.unit, ": log generation ", Gen(g), " (",
                                              path, ") is not on ", spec.node,
                                              " (truncated, or not yet copied here)"));
    }
    files.push_back({path, JoinPath("logs", name), "log", "log", g});
    sources.push_back(path);
  }
  UnitExpectations expect;
  expect.unit = spec.unit;
  expect.type = v1::LOG_ARCHIVE;
  expect.log_signature = base.log_signature;
  expect.database_signatures = base.database_signatures;
  expect.low_generation = spec.low_generation;
  expect.high_generation = spec.high_generation;
  expect.join_generation = base.high_generation;
  expect.join_sha256 = base.high_log_sha256;
  expect.chain_log_sha256 = base.log_sha256;
  ASSIGN_OR_RETURN(std::unique_ptr<UnitVerifier> verifier,
                   UnitVerifier::Create(expect, files, sources));

  v1::Manifest header;
  header.set_unit(spec.unit);
  header.set_type(v1::LOG_ARCHIVE);
  header.set_source_node(spec.node);
  header.set_source_copy(spec.source_copy);
  header.set_log_signature(base.log_signature);
  for (const auto& s : base.database_signatures) header.add_database_signatures(s);
  header.set_low_generation(spec.low_generation);
  header.set_high_generation(spec.high_generation);
  // The segment's restore point time: its logs closed before now.
  header.set_frozen_us(absl::ToUnixMicros(absl::Now()));
  (*header.mutable_labels())["archive_follows"] = base.manifest;
  options.observer = verifier.get();
  options.base_manifest = "";  // logs are new data every time
  // Tests kill or slow an archiver here, before its segment is written.
  DAGVAULT_CRASH_POINT("agent.archive.upload");
  ASSIGN_OR_RETURN(v1::Manifest manifest, repository::Backup(repo, files, header, options));
  LogArchiveResult result;
  result.summary = repository::ChainSummaryOf(manifest);
  result.verified = verifier->summary();
  logging::Get("agent.archive")
      ->info("unit {}: log generations {} to {} archived from {} as {}", spec.unit,
             Gen(spec.low_generation), Gen(spec.high_generation), spec.node, manifest.id());
  return result;
}

}  // namespace dagvault::agent
