#include "mailstore/engine/recovery.h"

#include <sys/file.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "mailstore/engine/database_file.h"
#include "mailstore/engine/redo.h"
#include "mailstore/format/checkpoint.h"
#include "mailstore/format/log_format.h"

namespace dagvault::mailstore {
namespace {

struct BufferedRecord {
  RecordType type;
  uint8_t db_index;
  Lsn lsn;
  std::string body;
};

// The databases being recovered, indexed by their position in the unit.
struct DatabaseSet {
  std::vector<std::unique_ptr<DatabaseFile>> files;
  std::vector<DatabaseFile*> by_index;
  Signature log_signature;
};

absl::StatusOr<DatabaseSet> OpenDatabases(const std::vector<std::string>& paths) {
  if (paths.empty()) return absl::InvalidArgumentError("no database files given");
  DatabaseSet set;
  for (const auto& path : paths) {
    // A crash may have cut the last page of a dirty database short; the
    // log holds its image (see redo.cc), so such a file is accepted here.
    ASSIGN_OR_RETURN(auto header, ReadDbHeaderFromPath(path));
    ASSIGN_OR_RETURN(auto file, DatabaseFile::Open(path, /*writable=*/true,
                                                   header.header.state == DbState::kDirtyShutdown));
    const DbHeader h = file->header();
    if (set.files.empty()) {
      set.log_signature = h.log_signature;
    } else if (h.log_signature != set.log_signature) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " belongs to log stream ", h.log_signature.ToString(), " but ",
                       set.files.front()->path(), " belongs to ", set.log_signature.ToString(),
                       ": they are not databases of the same unit"));
    }
    if (h.db_index >= kMaxDatabasesPerUnit) {
      return absl::DataLossError(
          absl::StrFormat("%s: database index %u is out of range", path, h.db_index));
    }
    if (set.by_index.size() <= h.db_index) set.by_index.resize(h.db_index + 1, nullptr);
    if (set.by_index[h.db_index] != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s and %s are both database %u of the unit",
                          set.by_index[h.db_index]->path(), path, h.db_index));
    }
    set.by_index[h.db_index] = file.get();
    set.files.push_back(std::move(file));
  }
  return set;
}

std::string LogPath(const std::string& dir, const std::string& prefix, Generation g) {
  return JoinPath(dir, LogFileName(prefix, g));
}

// Checks everything about one log file that must hold before its records
// may be replayed.
absl::Status ValidateLog(const LogFileScan& scan, Generation expected, bool is_open_log,
                         const DatabaseSet& dbs, const std::optional<Sha256Digest>& prev_hash) {
  const LogHeader& h = scan.header;
  if (h.generation != expected) {
    return absl::DataLossError(absl::StrFormat("%s: holds generation 0x%08X, expected 0x%08X",
                                               scan.path, h.generation, expected));
  }
  if (h.log_signature != dbs.log_signature) {
    return absl::FailedPreconditionError(
        absl::StrCat(scan.path, " (generation ", GenerationHex(h.generation), "): log signature ",
                     h.log_signature.ToString(), " does not match the databases' log signature ",
                     dbs.log_signature.ToString(), ": this log belongs to another log stream"));
  }
  for (const DatabaseFile* db : dbs.by_index) {
    if (db == nullptr) continue;
    const DbHeader dh = db->header();
    const AttachedDatabase* attached = h.FindDatabase(dh.db_index);
    if (attached == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(db->path(), " is database ", dh.db_index, " of its unit, but ", scan.path,
                       " (generation ", GenerationHex(h.generation), ") lists no such database"));
    }
    if (attached->signature != dh.db_signature) {
      return absl::FailedPreconditionError(
          absl::StrCat(db->path(), " (database signature ", dh.db_signature.ToString(),
                       ") is not the database this log stream writes to: ", scan.path,
                       " (generation ", GenerationHex(h.generation), ") records database ",
                       dh.db_index, " with signature ", attached->signature.ToString()));
    }
  }
  if (prev_hash) {
    if (!h.has_prev_link || h.prev_link != *prev_hash) {
      return absl::DataLossError(absl::StrFormat(
          "%s: link hash does not match generation 0x%08X: the log streams diverged at generation "
          "0x%08X",
          scan.path, expected - 1, expected));
    }
  }
  return is_open_log ? CheckOpenLog(scan) : CheckClosedLog(scan);
}

struct StreamWalk {
  const RecoveryRequest& req;
  const LogStreamListing& listing;
  std::optional<Generation> current_gen;
  const DatabaseSet& dbs;
  Lsn start;
  Generation end_gen;
  std::optional<Sha256Digest> prev_hash;
};

// Reads generations start..end_gen in order, validating each, grouping page
// records by transaction, and hands committed transactions to the applier
// (which in a dry run checks them against the pages and writes nothing).
absl::Status WalkStream(const StreamWalk& w, RedoApplier& applier, RecoveryReport* report) {
  std::vector<BufferedRecord> txn;
  bool first_txn = true;
  std::optional<Sha256Digest> prev_hash = w.prev_hash;
  report->end = w.start;
  for (Generation g = w.start.generation; g <= w.end_gen; ++g) {
    const bool is_open = w.current_gen && *w.current_gen == g;
    const std::string path = is_open ? *w.listing.current : LogPath(w.req.log_dir, w.req.prefix, g);
    ASSIGN_OR_RETURN(LogFileScan scan, ScanLogFile(path));
    RETURN_IF_ERROR(ValidateLog(scan, g, is_open, w.dbs, prev_hash));
    for (const LogRecordView& r : scan.records) {
      if (r.lsn < w.start) continue;
      const Lsn after{g, r.lsn.offset + r.space};
      switch (r.type) {
        case RecordType::kPageImage:
        case RecordType::kPageDelta:
        case RecordType::kPageImageSparse:
          txn.push_back({r.type, r.db_index, r.lsn,
                         std::string(reinterpret_cast<const char*>(r.body), r.body_size)});
          break;
        case RecordType::kCommit: {
          ASSIGN_OR_RETURN(CommitBody commit, DecodeCommit(r));
          // Replay may start in the middle of the first transaction (hard
          // recovery starts at a generation boundary); its earlier records
          // are then already in the pages.
          const bool partial_ok = first_txn && txn.size() < commit.record_count;
          if (txn.size() != commit.record_count && !partial_ok) {
            return absl::DataLossError(
                absl::StrFormat("%s: commit at %s closes %u records, but %u precede it", path,
                                r.lsn.ToString(), commit.record_count, txn.size()));
          }
          for (const BufferedRecord& b : txn) {
            RETURN_IF_ERROR(applier.Apply(b.type, b.db_index, b.lsn,
                                          reinterpret_cast<const uint8_t*>(b.body.data()),
                                          static_cast<uint32_t>(b.body.size())));
          }
          txn.clear();
          first_txn = false;
          report->transactions++;
          report->end = after;
          // Bounded memory for long replays; only ever between transactions.
          if (applier.ShouldFlush()) RETURN_IF_ERROR(applier.Flush(g));
          break;
        }
        case RecordType::kSeal:
          if (txn.empty()) report->end = after;
          break;
        case RecordType::kTerm:
        case RecordType::kStart:
          report->records_discarded += txn.size();
          txn.clear();
          first_txn = false;
          report->end = after;
          break;
      }
    }
    report->log_bytes += scan.valid_end;
    prev_hash = scan.file_hash;
  }
  if (!txn.empty()) {
    report->records_discarded += txn.size();
    report->notes.push_back(absl::StrFormat(
        "%u records of a transaction that never committed were not replayed", txn.size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RecoveryReport> Recover(const RecoveryRequest& req) {
  auto logger = logging::Get("mailstore.recovery");
  const absl::Time started = absl::Now();
  RecoveryReport report;
  // The unit must not be running while its files are recovered.
  File lock;
  if (req.lock_unit && !req.system_dir.empty()) {
    const std::string lock_path = JoinPath(req.system_dir, absl::StrCat(req.prefix, ".lck"));
    ASSIGN_OR_RETURN(lock, File::Open(lock_path, O_RDWR | O_CREAT, 0600));
    if (::flock(lock.fd(), LOCK_EX | LOCK_NB) != 0) {
      return absl::UnavailableError(
          absl::StrCat("the unit is in use by another process (lock held on ", lock_path,
                       "); stop it before recovering its files"));
    }
  }
  ASSIGN_OR_RETURN(DatabaseSet dbs, OpenDatabases(req.db_paths));
  // A flush of an earlier recovery (or of a passive copy's replay) that a
  // crash interrupted is completed first: its pages are intact in the
  // double-write buffer. This is the one write made before validation; it
  // restores what was being written, and nothing else.
  std::optional<DoubleWriteBuffer> dwb;
  if (!req.system_dir.empty()) {
    dwb.emplace(JoinPath(req.system_dir, absl::StrCat(req.prefix, ".dwb")));
    ASSIGN_OR_RETURN(int repaired, dwb->Repair(dbs.by_index));
    if (repaired > 0) {
      report.notes.push_back(absl::StrFormat(
          "%d page(s) torn by an interrupted flush were restored from %s", repaired, dwb->path()));
    }
  }

  // What logs are there?
  ASSIGN_OR_RETURN(LogStreamListing listing, ListLogStream(req.log_dir, req.prefix));
  std::optional<Generation> current_gen;
  if (listing.current) {
    ASSIGN_OR_RETURN(File f, File::OpenReadOnly(*listing.current));
    std::string head(kLogHeaderSize, '\0');
    RETURN_IF_ERROR(f.ReadAt(0, head.data(), head.size()));
    auto header = DecodeLogHeader(reinterpret_cast<const uint8_t*>(head.data()), head.size());
    if (!header.ok()) return Annotate(header.status(), *listing.current);
    current_gen = header->generation;
  }
  const bool have_logs = !listing.closed.empty() || current_gen.has_value();
  const Generation lowest =
      listing.closed.empty() ? current_gen.value_or(0) : listing.LowestClosed();
  const Generation highest = current_gen.value_or(listing.HighestClosed());
  auto exists = [&](Generation g) {
    if (current_gen && *current_gen == g) return true;
    for (const auto& [gen, path] : listing.closed) {
      if (gen == g) return true;
    }
    return false;
  };

  // The checkpoint file must belong to these databases' stream; damage to
  // one of its copies is reported. Where replay starts is decided per
  // database from its own header, below.
  if (!req.system_dir.empty()) {
    const std::string chk_path = JoinPath(req.system_dir, CheckpointFileName(req.prefix));
    if (PathExists(chk_path)) {
      auto read = ReadCheckpointFile(chk_path);
      if (!read.ok()) {
        report.notes.push_back(
            absl::StrCat("checkpoint file unreadable (the database headers "
                         "hold their own checkpoints): ",
                         read.status().message()));
      } else {
        if (read->checkpoint.log_signature != dbs.log_signature) {
          return absl::FailedPreconditionError(absl::StrCat(
              chk_path, " belongs to log stream ", read->checkpoint.log_signature.ToString(),
              ", the databases to ", dbs.log_signature.ToString()));
        }
        for (int i = 0; i < 2; ++i) {
          if (!read->copy_status[i].ok()) {
            report.notes.push_back(absl::StrCat(chk_path, ": ", read->copy_status[i].message(),
                                                " (the other copy was used)"));
          }
        }
      }
    }
  }

  // Where each database starts: soft recovery at the checkpoint in its own
  // header (written before the checkpoint file, and travelling with the
  // file if it is restored from another point in time); hard recovery
  // (--hard) at the beginning of its lowest required generation; a clean
  // database at its consistent position.
  Lsn start{kMaxGeneration, 0};
  std::vector<RedoApplier::Database> starts(dbs.by_index.size());
  Generation need_max = 0;
  const DatabaseFile* need_max_db = nullptr;
  bool any_dirty = false;
  report.soft = !req.force_hard;
  for (const auto& file : dbs.files) {
    const DbHeader h = file->header();
    Lsn db_start;
    if (h.state == DbState::kDirtyShutdown) {
      any_dirty = true;
      const bool from_checkpoint = !req.force_hard && !h.checkpoint.IsZero();
      if (!from_checkpoint) report.soft = false;
      db_start = from_checkpoint ? h.checkpoint : Lsn{h.log_required_min, 0};
      if (h.log_required_max > need_max) {
        need_max = h.log_required_max;
        need_max_db = file.get();
      }
    } else {
      db_start = h.consistent_lsn.IsZero() ? Lsn{lowest, 0} : h.consistent_lsn;
    }
    starts[h.db_index] = RedoApplier::Database{file.get(), db_start};
    start = std::min(start, db_start);
  }

  if (!have_logs) {
    if (any_dirty) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "no log files with prefix %s in %s, but %s was not shut down cleanly and needs "
          "generations 0x%08X to 0x%08X",
          req.prefix, req.log_dir, need_max_db ? need_max_db->path() : "a database",
          start.generation, need_max));
    }
    report.nothing_to_do = true;
    report.notes.push_back("no logs and every database is consistent: nothing to replay");
    return report;
  }

  // Databases that hold everything through the end of the last closed log
  // (a passive copy's files, whose replay position is the first record of
  // the next generation) start past every log here. Walking that last log,
  // with each database skipping what it already holds, finds where it
  // ends: where they are consistent.
  if (any_dirty && start.generation == highest + 1 && start.offset == kLogHeaderSize &&
      !current_gen && exists(highest)) {
    start = Lsn{highest, kLogHeaderSize};
  }

  // The range to replay, and the checks that all of it is present.
  Generation end_gen = highest;
  if (req.to_generation) {
    const Generation g = *req.to_generation;
    if (g > highest) {
      return absl::NotFoundError(absl::StrFormat(
          "generation 0x%08X (%s) is not present: the logs in %s end at generation 0x%08X", g,
          LogFileName(req.prefix, g), req.log_dir, highest));
    }
    if (g < need_max) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s requires the logs up to generation 0x%08X to be consistent; recovery cannot stop at "
          "0x%08X",
          need_max_db->path(), need_max, g));
    }
    if (g < start.generation) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "recovery starts at generation 0x%08X, after the requested stop generation 0x%08X",
          start.generation, g));
    }
    end_gen = g;
  } else if (need_max > highest) {
    return absl::NotFoundError(absl::StrFormat(
        "%s requires generation 0x%08X (%s), but the logs in %s end at generation 0x%08X",
        need_max_db->path(), need_max, LogFileName(req.prefix, need_max), req.log_dir, highest));
  }
  if (start.generation > end_gen) {
    if (any_dirty) {
      return absl::NotFoundError(absl::StrFormat(
          "recovery must start at %s, but the logs in %s end at generation 0x%08X: the logs from "
          "generation 0x%08X are missing",
          start.ToString(), req.log_dir, highest, highest + 1));
    }
    report.nothing_to_do = true;
    report.start = report.end = start;
    report.notes.push_back("the databases are already consistent with every log present");
    return report;
  }
  for (Generation g = start.generation; g <= end_gen; ++g) {
    if (!exists(g)) {
      return absl::NotFoundError(absl::StrFormat(
          "generation 0x%08X (%s) is missing from %s: recovery needs every generation from 0x%08X "
          "to 0x%08X",
          g, LogFileName(req.prefix, g), req.log_dir, start.generation, end_gen));
    }
  }
  if (current_gen && listing.HighestClosed() >= *current_gen) {
    return absl::DataLossError(
        absl::StrFormat("%s holds generation 0x%08X, but closed logs go up to 0x%08X",
                        *listing.current, *current_gen, listing.HighestClosed()));
  }

  logger->info("[recover {}] {} recovery of {} database(s) from {} to generation 0x{:08X}",
               req.prefix, report.soft ? "soft" : "hard", dbs.files.size(), start.ToString(),
               end_gen);

  // The link hash of the generation before the first one replayed, if that
  // log is still here, so that the first link is checked too.
  std::optional<Sha256Digest> prev_hash;
  if (start.generation > 0 && exists(start.generation - 1) &&
      !(current_gen && *current_gen == start.generation - 1)) {
    ASSIGN_OR_RETURN(std::string data,
                     ReadFileToString(LogPath(req.log_dir, req.prefix, start.generation - 1)));
    prev_hash = Sha256::Of(data);
  }

  // Two passes over the same logs: the first checks everything (headers,
  // signatures, links, seals, transaction framing, and every record against
  // the pages' dbtimes and checksums) and writes nothing, so a refused
  // recovery leaves the databases as they were; the second applies.
  StreamWalk walk{req, listing, current_gen, dbs, start, end_gen, prev_hash};
  RedoApplier checker(starts, start.generation, RedoApplier::Mode::kDryRun);
  RecoveryReport dry_run;
  RETURN_IF_ERROR(WalkStream(walk, checker, &dry_run));
  RETURN_IF_ERROR(checker.Finish());
  const Lsn end = dry_run.end;
  RedoApplier applier(starts, start.generation, RedoApplier::Mode::kApply, dwb ? &*dwb : nullptr);
  RETURN_IF_ERROR(WalkStream(walk, applier, &report));
  RETURN_IF_ERROR(applier.Flush(end_gen));

  for (const auto& file : dbs.files) {
    ASSIGN_OR_RETURN(bool partial, file->HasPartialLastPage());
    if (partial) {
      return absl::InternalError(absl::StrCat(file->path(),
                                              " still ends in part of a page after "
                                              "recovery, which the dry run said it rebuilds"));
    }
  }

  // Every database is now consistent at `end`.
  const int64_t now = req.clock->NowMicros();
  for (const auto& file : dbs.files) {
    const uint32_t index = file->header().db_index;
    RETURN_IF_ERROR(file->UpdateHeader([&](DbHeader& h) {
      MarkConsistent(h, end, now);
      h.log_committed = std::max(h.log_committed, end_gen);
      h.dbtime = std::max(h.dbtime, applier.max_dbtime(index));
    }));
  }
  if (!req.system_dir.empty()) {
    Checkpoint chk;
    chk.log_signature = dbs.log_signature;
    chk.position = end;
    chk.time_us = now;
    for (const auto& file : dbs.files) {
      const DbHeader h = file->header();
      chk.databases.push_back({h.db_index, h.db_signature});
    }
    const std::string chk_path = JoinPath(req.system_dir, CheckpointFileName(req.prefix));
    if (auto old = ReadCheckpointFile(chk_path); old.ok()) {
      chk.update_count = old->checkpoint.update_count;
    }
    RETURN_IF_ERROR(
        WriteCheckpointFile(JoinPath(req.system_dir, CheckpointFileName(req.prefix)), chk));
  }

  report.start = start;
  report.end = end;
  report.first_generation = start.generation;
  report.last_generation = end_gen;
  report.records_applied = applier.applied();
  report.records_skipped = applier.skipped();
  report.records_superseded = applier.superseded();
  report.records_not_attached = applier.not_attached();
  report.seconds = absl::ToDoubleSeconds(absl::Now() - started);
  logger->info(
      "[recover {}] replayed {} transactions ({} page records applied, {} already present) up to "
      "{} in {:.3f}s",
      req.prefix, report.transactions, report.records_applied, report.records_skipped,
      end.ToString(), report.seconds);
  return report;
}

}  // namespace dagvault::mailstore
