#include "coordinator/cli/repo_command.h"

#include <cstdio>
#include <iomanip>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/cli_args.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "repository/backup.h"
#include "repository/check.h"
#include "repository/cli_support.h"
#include "repository/prune.h"
#include "repository/repository.h"
#include "repository/restore.h"

namespace dagvault::cli {
namespace {

using repository::Repository;
using repository::Secret;

using repository::OpenRepositoryFromArgs;
using repository::SecretFromArgs;
std::string Bytes(uint64_t n) { return repository::HumanBytes(n); }
std::string Time(int64_t us) { return repository::HumanTime(us); }

absl::StatusOr<int> Workers(const CliArgs& args) {
  ASSIGN_OR_RETURN(uint64_t w, args.GetUint("workers", 0));
  return static_cast<int>(w);
}

absl::Status Init(const CliArgs& args, std::ostream& out) {
  auto root = args.Get("repo");
  if (!root) return absl::InvalidArgumentError("--repo PATH is required");
  ASSIGN_OR_RETURN(Secret secret,
                   SecretFromArgs(args, "passphrase-file", "key-file", "DAGVAULT_PASSPHRASE"));
  repository::InitOptions options;
  ASSIGN_OR_RETURN(uint64_t level, args.GetUint("zstd-level", 1));
  options.zstd_level = static_cast<int>(level);
  ASSIGN_OR_RETURN(uint64_t stale, args.GetUint("lock-stale-seconds", 0));
  if (stale > 86400) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lock-stale-seconds ", stale, " is more than a day"));
  }
  options.lock_stale_seconds = static_cast<uint32_t>(stale);
  ASSIGN_OR_RETURN(uint64_t lock_days, args.GetUint("object-lock-days", 0));
  if (lock_days > 36500) {
    return absl::InvalidArgumentError(
        absl::StrCat("--object-lock-days ", lock_days, " is more than a hundred years"));
  }
  options.object_lock_days = static_cast<uint32_t>(lock_days);
  ASSIGN_OR_RETURN(Repository repo, Repository::Init(*root, secret, options));
  out << "created repository " << repo.config().id() << " at " << *root << " (key slot "
      << repo.opened_slot() << ")"
      << (options.object_lock_days > 0
              ? absl::StrCat("; every backup is immutable for ", options.object_lock_days,
                             " days (Object Lock)")
              : "")
      << "\n";
  return absl::OkStatus();
}

absl::Status Key(const CliArgs& args, std::ostream& out) {
  const auto& pos = args.positional();
  const std::string what = pos.size() > 1 ? pos[1] : "";
  ASSIGN_OR_RETURN(Repository repo, OpenRepositoryFromArgs(args));
  if (what == "list") {
    ASSIGN_OR_RETURN(auto slots, repo.ListKeys());
    for (const auto& s : slots) {
      out << s.slot() << "  "
          << (s.kind() == dagvault::v1::WrappedKey::PASSPHRASE ? "passphrase" : "key-file")
          << "  created " << Time(s.created_us())
          << (s.slot() == repo.opened_slot() ? "  (opened this time)" : "") << "\n";
    }
    return absl::OkStatus();
  }
  if (what == "add") {
    ASSIGN_OR_RETURN(Secret secret, SecretFromArgs(args, "new-passphrase-file", "new-key-file",
                                                   "DAGVAULT_NEW_PASSPHRASE"));
    ASSIGN_OR_RETURN(std::string slot, repo.AddKey(secret));
    out << "added key slot " << slot << "\n";
    return absl::OkStatus();
  }
  if (what == "remove" && pos.size() == 3) {
    RETURN_IF_ERROR(repo.RemoveKey(pos[2]));
    out << "removed key slot " << pos[2] << "\n";
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("key: use key list, key add, or key remove SLOT");
}

absl::Status BackupCmd(const CliArgs& args, std::ostream& out) {
  ASSIGN_OR_RETURN(Repository repo, OpenRepositoryFromArgs(args));
  dagvault::v1::Manifest header;
  header.set_unit(args.GetOr("unit", ""));
  if (header.unit().empty()) return absl::InvalidArgumentError("--unit is required");
  ASSIGN_OR_RETURN(auto type, repository::ParseBackupType(args.GetOr("type", "full")));
  header.set_type(type);
  header.set_source_node(args.GetOr("source-node", ""));
  header.set_writer_instance(args.GetOr("writer-instance", ""));
  for (const auto& label : args.GetAll("label")) {
    std::pair<std::string, std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
    (*header.mutable_labels())[kv.first] = kv.second;
  }
  std::vector<repository::BackupFile> files;
  for (const auto& spec : args.GetAll("file")) {
    std::vector<std::string> parts = absl::StrSplit(spec, ':');
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--file ", spec, ": expected ROLE:PATH or ROLE:PATH:NAME"));
    }
    files.push_back({parts[1], parts.size() == 3 ? parts[2] : BaseName(parts[1]), parts[0], "", 0});
  }
  if (files.empty()) return absl::InvalidArgumentError("give at least one --file ROLE:PATH");
  repository::BackupOptions options;
  ASSIGN_OR_RETURN(options.workers, Workers(args));
  const std::string base = args.GetOr("base", "auto");
  options.base_manifest = base == "none" ? "" : base;
  ASSIGN_OR_RETURN(auto m, repository::Backup(repo, files, header, options));
  const double seconds = (m.finished_us() - m.started_us()) / 1e6;
  out << "manifest " << m.id() << ": " << m.files_size() << " files, " << Bytes(m.logical_bytes())
      << " read, " << Bytes(m.new_bytes()) << " new, " << Bytes(m.stored_bytes()) << " stored, in "
      << absl::StrFormat("%.2f s", seconds)
      << (m.base_manifest().empty()
              ? ""
              : absl::StrCat(" (blocks compared with ", m.base_manifest(), ")"))
      << "\n";
  return absl::OkStatus();
}

absl::Status RestoreCmd(const CliArgs& args, std::ostream& out) {
  if (args.positional().size() != 2) return absl::InvalidArgumentError("restore: give a MANIFEST");
  auto to = args.Get("to");
  if (!to) return absl::InvalidArgumentError("restore: --to DIR is required");
  ASSIGN_OR_RETURN(Repository repo, OpenRepositoryFromArgs(args));
  repository::RestoreOptions options;
  ASSIGN_OR_RETURN(options.workers, Workers(args));
  options.files = args.GetAll("file");
  options.overwrite = args.Has("overwrite");
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(auto r, repository::Restore(repo, args.positional()[1], *to, options));
  out << "restored " << r.files << " files, " << Bytes(r.bytes) << ", to " << *to << " in "
      << absl::StrFormat("%.2f s", absl::ToDoubleSeconds(absl::Now() - start))
      << "; every file matched its digest\n";
  return absl::OkStatus();
}

absl::Status Ls(const CliArgs& args, std::ostream& out) {
  ASSIGN_OR_RETURN(Repository repo, OpenRepositoryFromArgs(args));
  ASSIGN_OR_RETURN(auto ids, repo.ListManifests());
  out << absl::StrFormat("%-32s %-12s %-12s %-10s %6s %10s %10s\n", "MANIFEST", "UNIT", "TYPE",
                         "SOURCE", "FILES", "LOGICAL", "NEW");
  for (const auto& id : ids) {
    auto m = repo.ReadManifest(id);
    if (!m.ok()) {
      out << id << "  (does not open: " << m.status().message() << ")\n";
      continue;
    }
    if (args.Has("unit") && m->unit() != args.GetOr("unit", "")) continue;
    out << absl::StrFormat("%-32s %-12s %-12s %-10s %6d %10s %10s\n", m->id(), m->unit(),
                           dagvault::v1::BackupType_Name(m->type()), m->source_node(),
                           m->files_size(), Bytes(m->logical_bytes()), Bytes(m->new_bytes()));
  }
  return absl::OkStatus();
}

absl::Status Show(const CliArgs& args, std::ostream& out) {
  if (args.positional().size() != 2) return absl::InvalidArgumentError("show: give a MANIFEST");
  ASSIGN_OR_RETURN(Repository repo, OpenRepositoryFromArgs(args));
  ASSIGN_OR_RETURN(auto m, repo.ReadManifest(args.positional()[1]));
  out << "manifest   " << m.id() << "\nunit       " << m.unit() << "\ntype       "
      << dagvault::v1::BackupType_Name(m.type()) << "\nsource     " << m.source_node() << " "
      << m.source_copy() << "\nwriter     " << m.writer_instance() << "\ngenerations "
      << m.low_generation() << ".." << m.high_generation() << "\nbase       "
      << (m.base_manifest().empty() ? "-" : m.base_manifest()) << "\nstarted    "
      << Time(m.started_us()) << "\nfinished   " << Time(m.finished_us()) << "\nlogical    "
      << Bytes(m.logical_bytes()) << "\nnew        " << Bytes(m.new_bytes()) << "\nstored     "
      << Bytes(m.stored_bytes()) << "\nfiles:\n";
  for (const auto& f : m.files()) {
    out << absl::StrFormat(
        "  %-10s %-28s %12s  %s  %s\n", f.role(), f.name(), Bytes(f.size()),
        absl::BytesToHexString(f.tree_sha256().empty() ? f.sha256() : f.tree_sha256())
            .substr(0, 16),
        f.has_block_map() ? absl::StrCat("block map: ", f.block_map().block_size() / 1024,
                                         " KiB blocks, ", f.new_blocks(), " new")
                          : absl::StrCat(f.chunks_size(), " chunks"));
  }
  return absl::OkStatus();
}

absl::Status StatsCmd(const CliArgs& args, std::ostream& out) {
  ASSIGN_OR_RETURN(Repository repo, OpenRepositoryFromArgs(args));
  ASSIGN_OR_RETURN(auto s, repository::Stats(repo));
  out << "manifests          " << s.manifests << " (" << s.files << " files)\n"
      << "logical bytes      " << Bytes(s.logical_bytes) << "\n"
      << "unique chunk data  " << Bytes(s.chunk_plaintext_bytes) << " in " << s.chunks
      << " chunks\n"
      << "stored bytes       " << Bytes(s.pack_bytes) << " in " << s.packs << " packs\n"
      << absl::StrFormat("dedup ratio        %.2f\ncompression ratio  %.2f\n", s.dedup_ratio(),
                         s.compression_ratio());
  return absl::OkStatus();
}

absl::Status CheckCmd(const CliArgs& args, std::ostream& out, bool* clean) {
  ASSIGN_OR_RETURN(Repository repo, OpenRepositoryFromArgs(args));
  repository::CheckOptions options;
  options.read_data = args.Has("read-data");
  ASSIGN_OR_RETURN(auto r, repository::Check(repo, options));
  for (const auto& w : r.warnings) out << "warning: " << w << "\n";
  for (const auto& e : r.errors) out << "error: " << e << "\n";
  out << "checked " << r.index_files << " index files, " << r.packs << " packs (" << r.chunks
      << " chunks), " << r.manifests << " manifests"
      << (options.read_data ? absl::StrCat(", read ", Bytes(r.bytes_read)) : "") << ": "
      << (r.clean() ? "no errors" : absl::StrCat(r.errors.size(), " errors")) << "\n";
  *clean = r.clean();
  return absl::OkStatus();
}

absl::Status PruneCmd(const CliArgs& args, std::ostream& out) {
  if (!args.Has("keep-manifests")) {
    return absl::InvalidArgumentError(
        "prune: --keep-manifests is required (every manifest not named is removed)");
  }
  ASSIGN_OR_RETURN(Repository repo, OpenRepositoryFromArgs(args));
  repository::PruneOptions options;
  for (const auto& list : args.GetAll("keep-manifests")) {
    for (absl::string_view id : absl::StrSplit(list, ',', absl::SkipEmpty())) {
      options.keep_manifests.emplace_back(id);
    }
  }
  ASSIGN_OR_RETURN(options.repack_below, args.GetDouble("repack-below", 0.5));
  if (args.Has("pack-grace")) {
    ASSIGN_OR_RETURN(uint64_t grace, args.GetUint("pack-grace", 0));
    options.pack_grace = absl::Seconds(grace);
  }
  ASSIGN_OR_RETURN(auto r, repository::Prune(repo, options));
  out << "removed " << r.manifests_removed << " manifests and " << r.packs_removed << " packs ("
      << r.chunks_removed << " chunks), repacked " << r.packs_repacked << " into "
      << r.packs_written << "; " << Bytes(r.bytes_before) << " -> " << Bytes(r.bytes_after)
      << (r.packs_kept_young > 0
              ? absl::StrCat("; ", r.packs_kept_young,
                             " unreferenced packs are younger than the grace period and stay")
              : "")
      << "\n";
  if (r.packs_marked + r.packs_waiting > 0) {
    out << r.packs_marked << " unreferenced packs marked now, " << r.packs_waiting
        << " marked earlier: a prune after the grace period removes those still unreferenced\n";
  }
  if (!r.manifests_retained.empty() || r.packs_retained + r.index_files_retained > 0) {
    out << "kept under retention (Object Lock) until " << FormatUtc(r.retained_until)
        << " at the latest: " << r.manifests_retained.size() << " manifests, " << r.packs_retained
        << " packs, " << r.index_files_retained
        << " index files; a prune after that removes them\n";
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunRepoCommand(const CliArgs& args, std::ostream& out, bool* clean) {
  const std::string& command = args.positional()[0];
  if (command == "init") return Init(args, out);
  if (command == "key") return Key(args, out);
  if (command == "backup") return BackupCmd(args, out);
  if (command == "restore") return RestoreCmd(args, out);
  if (command == "ls") return Ls(args, out);
  if (command == "show") return Show(args, out);
  if (command == "stats") return StatsCmd(args, out);
  if (command == "check") return CheckCmd(args, out, clean);
  if (command == "prune") return PruneCmd(args, out);
  return absl::InvalidArgumentError(absl::StrCat("unknown command ", command));
}

}  // namespace dagvault::cli
