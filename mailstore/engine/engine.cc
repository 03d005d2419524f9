#include "mailstore/engine/engine.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fault_injection.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "mailstore/engine/digest.h"
#include "mailstore/engine/page_diff.h"
#include "mailstore/engine/recovery.h"

namespace dagvault::mailstore {
namespace {

const uint8_t* ZeroPage() {
  static const uint8_t* zeros = new uint8_t[kMaxPageSize]();
  return zeros;
}

}  // namespace

// Read-only page access through the shared cache.
class Engine::CacheReader : public PageAccess {
 public:
  CacheReader(Engine* engine, uint32_t db) : engine_(engine), db_(db) {}
  uint32_t page_size() const override { return engine_->unit_.page_size; }
  absl::StatusOr<PageRef> Read(PageNo pgno) override { return engine_->cache_->Get(db_, pgno); }
  absl::StatusOr<uint8_t*> Write(PageNo) override {
    return absl::FailedPreconditionError("write outside a transaction");
  }
  absl::StatusOr<uint8_t*> Create(PageNo, PageType) override {
    return absl::FailedPreconditionError("write outside a transaction");
  }

 private:
  Engine* engine_;
  uint32_t db_;
};

Engine::Engine(ResolvedUnit unit, const EngineOptions& options)
    : unit_(std::move(unit)), options_(options), log_line_(logging::Get("mailstore.engine")) {}

Engine::~Engine() {
  StopLazyWriter();
  // Without Close() this is a crash as far as the files are concerned: the
  // databases stay DirtyShutdown and the next Open recovers.
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const dagvault::v1::UnitConfig& config,
                                                       const EngineOptions& options) {
  ASSIGN_OR_RETURN(ResolvedUnit unit, ResolveUnitConfig(config));
  RETURN_IF_ERROR(CreateDirectories(unit.system_dir));
  RETURN_IF_ERROR(CreateDirectories(unit.log_dir));
  for (const auto& db : unit.databases) RETURN_IF_ERROR(CreateDirectories(DirName(db.path)));
  std::vector<std::string> existing;
  for (const auto& db : unit.databases) {
    if (PathExists(db.path)) existing.push_back(db.path);
  }
  if (PathExists(unit.CheckpointPath())) existing.push_back(unit.CheckpointPath());
  ASSIGN_OR_RETURN(LogStreamListing logs, ListLogStream(unit.log_dir, unit.log_prefix));
  if (logs.current) existing.push_back(*logs.current);
  for (const auto& [gen, path] : logs.closed) existing.push_back(path);
  if (!existing.empty()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "unit ", unit.name, " cannot be created: ", existing.front(), " already exists"));
  }
  ASSIGN_OR_RETURN(Signature log_signature, Signature::Generate(*options.clock));
  for (size_t i = 0; i < unit.databases.size(); ++i) {
    DbHeader h;
    h.page_size = unit.page_size;
    ASSIGN_OR_RETURN(h.db_signature, Signature::Generate(*options.clock));
    h.log_signature = log_signature;
    h.state = DbState::kJustCreated;
    h.db_index = static_cast<uint32_t>(i);
    h.db_name = unit.databases[i].name;
    h.dbtime = kInitialDbTime;
    RETURN_IF_ERROR(DatabaseFile::Create(unit.databases[i].path, h));
  }
  return Open(config, options);
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const dagvault::v1::UnitConfig& config,
                                                     const EngineOptions& options) {
  ASSIGN_OR_RETURN(ResolvedUnit unit, ResolveUnitConfig(config));
  std::unique_ptr<Engine> engine(new Engine(std::move(unit), options));
  RETURN_IF_ERROR(engine->OpenFiles());
  RETURN_IF_ERROR(engine->AttachLogStream());
  engine->StartLazyWriter();
  return engine;
}

absl::Status Engine::OpenFiles() {
  ASSIGN_OR_RETURN(lock_file_, File::Open(unit_.LockPath(), O_RDWR | O_CREAT, 0600));
  if (::flock(lock_file_.fd(), LOCK_EX | LOCK_NB) != 0) {
    return absl::UnavailableError(absl::StrCat("unit ", unit_.name,
                                               " is in use by another process (lock held on ",
                                               unit_.LockPath(), ")"));
  }
  bool dirty = false;
  for (const auto& db : unit_.databases) {
    auto header = ReadDbHeaderFromPath(db.path);
    if (!header.ok()) return Annotate(header.status(), absl::StrCat("unit ", unit_.name));
    dirty = dirty || header->header.state == DbState::kDirtyShutdown;
  }
  if (dirty) {
    RecoveryRequest request;
    request.system_dir = unit_.system_dir;
    request.log_dir = unit_.log_dir;
    request.prefix = unit_.log_prefix;
    for (const auto& db : unit_.databases) request.db_paths.push_back(db.path);
    request.clock = options_.clock;
    request.lock_unit = false;  // held by this engine already
    log_line_->warn("[unit {}] not shut down cleanly: running soft recovery", unit_.name);
    auto report = Recover(request);
    if (!report.ok())
      return Annotate(report.status(), absl::StrCat("unit ", unit_.name, ": recovery failed"));
    for (const auto& note : report->notes) log_line_->warn("[unit {}] {}", unit_.name, note);
  }
  for (size_t i = 0; i < unit_.databases.size(); ++i) {
    ASSIGN_OR_RETURN(auto file, DatabaseFile::Open(unit_.databases[i].path, /*writable=*/true));
    const DbHeader h = file->header();
    if (h.page_size != unit_.page_size) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s: page size is %u, the unit is configured for %u", file->path(),
                          h.page_size, unit_.page_size));
    }
    if (h.db_index != i) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s is database %u of its unit, but is configured as databases[%u]",
                          file->path(), h.db_index, i));
    }
    if (h.db_name != unit_.databases[i].name) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s holds database \"%s\", but is configured as \"%s\"", file->path(),
                          h.db_name, unit_.databases[i].name));
    }
    if (i == 0) {
      log_signature_ = h.log_signature;
    } else if (h.log_signature != log_signature_) {
      return absl::FailedPreconditionError(
          absl::StrCat(file->path(), " belongs to another log stream than ", dbs_[0]->path()));
    }
    db_signatures_.push_back(h.db_signature);
    dbtime_.push_back(std::make_unique<std::atomic<DbTime>>(h.dbtime));
    dbs_.push_back(std::move(file));
  }
  hints_.resize(dbs_.size());
  const size_t cache_pages = std::max<size_t>(options_.cache_bytes / unit_.page_size, 256);
  cache_ = std::make_unique<BufferCache>(
      unit_.page_size, cache_pages,
      [this](uint32_t db, PageNo pgno, uint8_t* out) { return dbs_[db]->ReadPage(pgno, out); });
  return absl::OkStatus();
}

absl::Status Engine::CheckNoCommitsAfter(Lsn consistent, const LogStreamListing& listing) {
  std::vector<std::string> paths;
  for (const auto& [gen, path] : listing.closed) {
    if (gen >= consistent.generation) paths.push_back(path);
  }
  if (listing.current) paths.push_back(*listing.current);
  for (const auto& path : paths) {
    ASSIGN_OR_RETURN(LogFileScan scan, ScanLogFile(path));
    if (scan.header.log_signature != log_signature_) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " belongs to another log stream than unit ", unit_.name));
    }
    if (scan.header.generation < consistent.generation) continue;
    for (const auto& r : scan.records) {
      if (r.type == RecordType::kCommit && r.lsn >= consistent) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "unit %s: %s holds transactions committed after the databases' consistent point %s; "
            "they were not replayed. After a point-in-time recovery, move the later logs out of "
            "%s before starting the unit",
            unit_.name, path, consistent.ToString(), unit_.log_dir));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::AdoptOpenLog(const std::string& path, Generation highest_closed,
                                  Sha256Digest* hash, Generation* generation) {
  ASSIGN_OR_RETURN(LogFileScan scan, ScanLogFile(path));
  *generation = scan.header.generation;
  if (scan.header.log_signature != log_signature_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " belongs to another log stream than unit ", unit_.name));
  }
  RETURN_IF_ERROR(CheckOpenLog(scan));
  if (*generation <= highest_closed) {
    return absl::DataLossError(absl::StrFormat(
        "%s holds generation 0x%08X, but closed logs go up to 0x%08X: the log folder mixes files "
        "from different points in time",
        path, *generation, highest_closed));
  }
  if (!scan.sealed && scan.valid_end + RecordSpace(16) > scan.data.size()) {
    return absl::DataLossError(absl::StrCat(path, ": no room left to seal the log"));
  }
  if (!scan.sealed) {
    // Close the log where its valid records end: clear whatever a crash
    // left after them, then seal it.
    ASSIGN_OR_RETURN(File f, File::Open(path, O_RDWR));
    std::string tail(scan.data.size() - scan.valid_end, '\0');
    std::string seal_body = EncodeSealBody(
        SealBody{static_cast<uint32_t>(scan.records.size()), options_.clock->NowMicros()});
    std::string seal;
    AppendRecord(&seal, Lsn{scan.header.generation, scan.valid_end}, RecordType::kSeal, 0,
                 {absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(seal_body.data()),
                                            seal_body.size())});
    std::memcpy(tail.data(), seal.data(), seal.size());
    RETURN_IF_ERROR(f.WriteAt(scan.valid_end, tail.data(), tail.size()));
    RETURN_IF_ERROR(f.DataSync());
    std::memcpy(scan.data.data() + scan.valid_end, tail.data(), tail.size());
    scan.file_hash = Sha256::Of(scan.data);
  }
  *hash = scan.file_hash;
  DAGVAULT_CRASH_POINT("open.adopt.before_rename");
  return RenameDurably(path, JoinPath(unit_.log_dir, LogFileName(unit_.log_prefix, *generation)));
}

absl::Status Engine::AttachLogStream() {
  ASSIGN_OR_RETURN(LogStreamListing listing, ListLogStream(unit_.log_dir, unit_.log_prefix));
  if (listing.temp) RETURN_IF_ERROR(RemoveDurably(*listing.temp));
  Lsn consistent;
  for (const auto& db : dbs_) consistent = std::max(consistent, db->header().consistent_lsn);
  RETURN_IF_ERROR(CheckNoCommitsAfter(consistent, listing));

  // The next generation follows everything that exists or existed: the
  // open log, the closed logs, and the databases' consistent position.
  std::optional<Sha256Digest> prev_link;
  Generation last = listing.HighestClosed();
  if (listing.current) {
    Sha256Digest hash;
    Generation adopted = 0;
    RETURN_IF_ERROR(AdoptOpenLog(*listing.current, listing.HighestClosed(), &hash, &adopted));
    prev_link = hash;
    last = adopted;
  }
  const Generation next = std::max(last, consistent.generation) + 1;
  if (last < consistent.generation) {
    prev_link.reset();
    log_line_->warn(
        "[unit {}] the logs up to the consistent position {} are not in {}; starting "
        "generation 0x{:08X} with no link to an earlier one",
        unit_.name, consistent.ToString(), unit_.log_dir, next);
  } else if (!listing.current && last > 0) {
    // The link to the last closed generation: it must be ours and whole.
    ASSIGN_OR_RETURN(LogFileScan scan, ScanLogFile(listing.closed.back().second));
    if (scan.header.log_signature != log_signature_) {
      return absl::FailedPreconditionError(absl::StrCat(
          listing.closed.back().second, " belongs to another log stream than unit ", unit_.name));
    }
    RETURN_IF_ERROR(CheckClosedLog(scan));
    prev_link = scan.file_hash;
  }

  LogStreamOptions lo;
  lo.dir = unit_.log_dir;
  lo.prefix = unit_.log_prefix;
  lo.file_size = unit_.log_file_size;
  lo.page_size = unit_.page_size;
  lo.circular_logging = unit_.circular_logging;
  lo.signature = log_signature_;
  for (size_t i = 0; i < dbs_.size(); ++i) {
    lo.databases.push_back({static_cast<uint32_t>(i), db_signatures_[i]});
  }
  lo.clock = options_.clock;
  ASSIGN_OR_RETURN(log_, LogWriter::Start(lo, next, prev_link));

  std::string body = EncodeTermBody(TermBody{options_.clock->NowMicros()});
  std::vector<PendingRecord> start(1);
  start[0].type = RecordType::kStart;
  start[0].head = body;
  ASSIGN_OR_RETURN(LogWriter::Appended appended, log_->Append(start));
  RETURN_IF_ERROR(log_->WaitDurable(appended.end));

  const int64_t now = options_.clock->NowMicros();
  for (auto& db : dbs_) {
    RETURN_IF_ERROR(db->UpdateHeader([&](DbHeader& h) {
      h.state = DbState::kDirtyShutdown;
      h.log_required_min = next;
      h.log_required_max = next;
      h.log_committed = next;
      h.last_attach_lsn = appended.first;
      h.last_attach_time_us = now;
      h.checkpoint = appended.first;
    }));
  }
  checkpoint_.log_signature = log_signature_;
  checkpoint_.position = appended.first;
  checkpoint_.time_us = now;
  checkpoint_.databases = lo.databases;
  if (auto old = ReadCheckpointFile(unit_.CheckpointPath()); old.ok()) {
    checkpoint_.update_count = old->checkpoint.update_count;
  }
  RETURN_IF_ERROR(WriteCheckpointFile(unit_.CheckpointPath(), checkpoint_));
  log_line_->info("[unit {}] attached {} database(s); logging at generation 0x{:08X}", unit_.name,
                  dbs_.size(), next);
  return absl::OkStatus();
}

absl::Status Engine::Close(bool seal_log) {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (closed_) return absl::OkStatus();
  }
  std::unique_lock<std::mutex> writer(writer_mu_);
  frozen_ = false;
  {
    std::lock_guard<std::mutex> flush(flush_mu_);
    flush_frozen_ = false;
  }
  StopLazyWriter();
  // A failed engine closes without a clean shutdown: its databases stay
  // DirtyShutdown, and the unit's lock goes at once (not when the last
  // holder of the engine lets go), so that a new open recovers them from
  // the logs. Nothing writes through this engine again: every entry point
  // checks health(). Writers waiting for a thaw wake and see the failure.
  auto close_failed = [&](const absl::Status& failure) {
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      closed_ = true;
    }
    (void)lock_file_.Close();
    thawed_.notify_all();
    return failure;
  };
  absl::Status health_status = health();
  if (!health_status.ok()) return close_failed(health_status);
  absl::Status flushed = FlushCycle();
  if (flushed.ok() && cache_->dirty_count() != 0) flushed = FlushCycle();
  if (flushed.ok() && cache_->dirty_count() != 0) {
    flushed = absl::InternalError("pages still dirty after flushing for shutdown");
  }
  if (!flushed.ok()) {
    Fail(flushed);
    return close_failed(health());
  }
  // From the Term on, a failure takes the unit offline like a failed
  // flush: a second Close must not append a second Term to a log this one
  // may already have closed (the writer refuses it), and the lock must go
  // so that a new open recovers from the logs, which hold everything.
  Lsn end;
  absl::Status shut = [&]() -> absl::Status {
    std::vector<PendingRecord> term(1);
    term[0].type = RecordType::kTerm;
    term[0].head = EncodeTermBody(TermBody{options_.clock->NowMicros()});
    ASSIGN_OR_RETURN(LogWriter::Appended appended, log_->Append(term));
    end = appended.end;
    RETURN_IF_ERROR(log_->WaitDurable(end));

    const int64_t now = options_.clock->NowMicros();
    for (size_t i = 0; i < dbs_.size(); ++i) {
      RETURN_IF_ERROR(dbs_[i]->UpdateHeader([&](DbHeader& h) {
        MarkConsistent(h, end, now);
        h.log_committed = end.generation;
        h.dbtime = dbtime_[i]->load();
      }));
    }
    {
      std::lock_guard<std::mutex> flush(flush_mu_);
      checkpoint_.position = end;
      checkpoint_.time_us = now;
      RETURN_IF_ERROR(WriteCheckpointFile(unit_.CheckpointPath(), checkpoint_));
    }
    RETURN_IF_ERROR(seal_log ? log_->SealAndClose() : log_->Close());
    RETURN_IF_ERROR(FailPoint("engine.close.after_log_closed"));
    if (unit_.circular_logging && options_.circular_deletes) {
      ASSIGN_OR_RETURN(LogStreamListing listing, ListLogStream(unit_.log_dir, unit_.log_prefix));
      for (const auto& [gen, path] : listing.closed) {
        if (gen < end.generation) RETURN_IF_ERROR(RemoveDurably(path));
      }
    }
    return lock_file_.Close();
  }();
  if (!shut.ok()) {
    Fail(shut);
    return close_failed(health());
  }
  std::lock_guard<std::mutex> lock(state_mu_);
  closed_ = true;
  log_line_->info("[unit {}] clean shutdown at {}{}", unit_.name, end.ToString(),
                  seal_log ? ", log sealed" : "");
  thawed_.notify_all();
  return absl::OkStatus();
}

absl::Status Engine::health() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  if (!failed_.ok()) return failed_;
  if (closed_)
    return absl::FailedPreconditionError(absl::StrCat("unit ", unit_.name, " is closed"));
  return absl::OkStatus();
}

void Engine::Fail(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(state_mu_);
  if (failed_.ok()) {
    failed_ = Annotate(status, absl::StrCat("unit ", unit_.name, " is offline"));
    log_line_->error("[unit {}] {}", unit_.name, failed_);
  }
}

absl::StatusOr<std::unique_ptr<Transaction>> Engine::Begin() {
  RETURN_IF_ERROR(health());
  std::unique_lock<std::mutex> writer(writer_mu_);
  // A frozen unit holds writers here: they wait, they do not fail.
  thawed_.wait(writer, [&] { return !frozen_ || !health().ok(); });
  RETURN_IF_ERROR(health());
  return std::unique_ptr<Transaction>(new Transaction(this, std::move(writer)));
}

absl::StatusOr<std::optional<std::string>> Engine::Get(uint32_t db, const ItemKey& key) {
  RETURN_IF_ERROR(health());
  if (db >= dbs_.size()) return absl::InvalidArgumentError(absl::StrFormat("no database %u", db));
  std::shared_lock<std::shared_mutex> lock(install_mu_);
  CacheReader reader(this, db);
  return ItemTable(reader, nullptr).Get(key);
}

absl::StatusOr<std::vector<ItemInfo>> Engine::List(uint32_t db, uint64_t mailbox,
                                                   uint64_t start_item, size_t limit) {
  RETURN_IF_ERROR(health());
  if (db >= dbs_.size()) return absl::InvalidArgumentError(absl::StrFormat("no database %u", db));
  std::shared_lock<std::shared_mutex> lock(install_mu_);
  CacheReader reader(this, db);
  return ItemTable(reader, nullptr).List(mailbox, start_item, limit);
}

absl::StatusOr<std::optional<uint64_t>> Engine::FirstMailboxFrom(uint32_t db, uint64_t mailbox) {
  RETURN_IF_ERROR(health());
  if (db >= dbs_.size()) return absl::InvalidArgumentError(absl::StrFormat("no database %u", db));
  std::shared_lock<std::shared_mutex> lock(install_mu_);
  CacheReader reader(this, db);
  return ItemTable(reader, nullptr).FirstMailboxFrom(mailbox);
}

absl::StatusOr<MetaInfo> Engine::Meta(uint32_t db) {
  RETURN_IF_ERROR(health());
  if (db >= dbs_.size()) return absl::InvalidArgumentError(absl::StrFormat("no database %u", db));
  std::shared_lock<std::shared_mutex> lock(install_mu_);
  CacheReader reader(this, db);
  return ItemTable(reader, nullptr).Meta();
}

absl::StatusOr<Sha256Digest> Engine::Digest(uint32_t db, Lsn* appended) {
  ASSIGN_OR_RETURN(DigestResult result, DigestWithCounts(db, appended));
  return result.digest;
}

absl::StatusOr<DigestResult> Engine::DigestWithCounts(uint32_t db, Lsn* appended) {
  RETURN_IF_ERROR(health());
  if (db >= dbs_.size()) return absl::InvalidArgumentError(absl::StrFormat("no database %u", db));
  // Holding the install lock shared for the whole walk gives a digest of
  // one committed state; commits wait meanwhile. A commit appends its
  // records and installs its pages under the same lock held exclusively,
  // so the append position read here is exactly where that state ends.
  std::shared_lock<std::shared_mutex> lock(install_mu_);
  if (appended != nullptr) *appended = log_->append_lsn();
  CacheReader reader(this, db);
  ItemTable table(reader, nullptr);
  return DigestItems(table);
}

absl::Status Engine::Put(uint32_t db, const ItemKey& key, absl::string_view value) {
  ASSIGN_OR_RETURN(auto txn, Begin());
  RETURN_IF_ERROR(txn->Put(db, key, value));
  return txn->Commit().status();
}

absl::StatusOr<bool> Engine::Delete(uint32_t db, const ItemKey& key) {
  ASSIGN_OR_RETURN(auto txn, Begin());
  ASSIGN_OR_RETURN(bool existed, txn->Delete(db, key));
  RETURN_IF_ERROR(txn->Commit().status());
  return existed;
}

absl::Status Engine::RollLog() {
  RETURN_IF_ERROR(health());
  // Serialise with commits so that the roll falls between transactions.
  std::unique_lock<std::mutex> writer(writer_mu_);
  thawed_.wait(writer, [&] { return !frozen_ || !health().ok(); });
  // Again under the writer lock: a Close that held it meanwhile (a dismount
  // racing a replica's seed) has closed the log, and a roll now would
  // create the closed generation's file anew, over its records.
  RETURN_IF_ERROR(health());
  absl::Status s = log_->Roll();
  if (!s.ok()) Fail(s);
  return s;
}

absl::StatusOr<Lsn> Engine::CommitTransaction(Transaction& txn) {
  RETURN_IF_ERROR(health());
  if (txn.pages_.empty()) {
    txn.Release();
    return log_->append_lsn();
  }
  RETURN_IF_ERROR(WaitForDirtyRoom());
  const uint32_t page_size = unit_.page_size;
  struct Install {
    uint32_t db;
    PageNo pgno;
    PageRef page;
  };
  std::vector<PendingRecord> records;
  std::vector<Install> installs;
  records.reserve(txn.pages_.size() + 1);
  installs.reserve(txn.pages_.size());
  uint64_t full = 0, delta = 0, bytes = 0;
  LogWriter::Appended appended;
  {
    std::unique_lock<std::shared_mutex> install(install_mu_);
    for (auto& [key, page] : txn.pages_) {
      const uint32_t db = static_cast<uint32_t>(key >> 32);
      const PageNo pgno = static_cast<PageNo>(key);
      uint8_t* current = page.current->data();
      if (!page.fresh && std::memcmp(page.original->data(), current, page_size) == 0) continue;
      const DbTime before = page.fresh ? 0 : PageDbTime(page.original->data());
      // Above the page's own dbtime, whatever the counter says: redo relies
      // on every change of a page carrying a higher dbtime than the last.
      const DbTime after = std::max(dbtime_[db]->load(), before) + 1;
      dbtime_[db]->store(after);
      SetPageDbTime(current, after);
      PendingRecord r;
      r.db_index = static_cast<uint8_t>(db);
      // A page changed again within the lazy writer's epoch is logged as the
      // ranges that changed. Its first change in an epoch, and a new page,
      // are logged as an image (full-page writes: recovery can rebuild the
      // page even if its last write was torn), as the non-zero ranges when
      // that is smaller: most new pages are partly empty.
      const bool image = page.fresh || page.original->image_epoch != image_epoch_;
      std::optional<PageDiff> diff =
          image ? DiffPages(ZeroPage(), current, page_size, page_size - 64)
                : DiffPages(page.original->data(), current, page_size, page_size / 2);
      page.current->image_epoch = image ? image_epoch_ : page.original->image_epoch;
      if (diff) {
        r.type = image ? RecordType::kPageImageSparse : RecordType::kPageDelta;
        r.head.resize(kPageDeltaPrefixSize);
        EncodePageDeltaPrefix(pgno, diff->range_count, before, after,
                              reinterpret_cast<uint8_t*>(r.head.data()));
        r.head += diff->ranges;
        (image ? full : delta)++;
      } else {
        r.type = RecordType::kPageImage;
        page.current->image_epoch = image_epoch_;
        r.head.resize(kPageImagePrefixSize);
        EncodePageImagePrefix(pgno, after, reinterpret_cast<uint8_t*>(r.head.data()));
        r.data = current;
        r.data_len = page_size;
        r.keep = page.current;
        full++;
      }
      bytes += RecordSpace(r.body_size());
      records.push_back(std::move(r));
      installs.push_back({db, pgno, page.current});
    }
    if (records.empty()) {
      txn.Release();
      return log_->append_lsn();
    }
    PendingRecord commit;
    commit.type = RecordType::kCommit;
    commit.head = EncodeCommitBody(CommitBody{next_txn_seq_++, options_.clock->NowMicros(),
                                              static_cast<uint32_t>(records.size())});
    records.push_back(std::move(commit));
    auto placed = log_->Append(records);
    if (!placed.ok()) {
      Fail(placed.status());
      return placed.status();
    }
    appended = *placed;
    for (auto& i : installs)
      cache_->Install(i.db, i.pgno, std::move(i.page), appended.first, appended.end);
  }
  txn.Release();
  DAGVAULT_CRASH_POINT("commit.before_durable");
  absl::Status durable = log_->WaitDurable(appended.end);
  if (!durable.ok()) {
    Fail(durable);
    return durable;
  }
  std::lock_guard<std::mutex> lock(state_mu_);
  stats_.commits++;
  stats_.pages_logged_image += full;
  stats_.pages_logged_delta += delta;
  stats_.log_bytes += bytes;
  return appended.end;
}

absl::StatusOr<Engine::FreezeInfo> Engine::Freeze() {
  RETURN_IF_ERROR(health());
  FreezeInfo info;
  {
    // Waits for the running transaction; later ones wait in Begin.
    std::unique_lock<std::mutex> writer(writer_mu_);
    // Again under the writer lock, as in RollLog: a Close may have taken
    // it first.
    RETURN_IF_ERROR(health());
    if (frozen_)
      return absl::FailedPreconditionError(absl::StrCat("unit ", unit_.name, " is already frozen"));
    // The flush lock before the roll (writer, then flush, as Close takes
    // them): a flush cycle in progress finishes, and none starts between
    // the roll and the freeze. One that did would take its redo point in the
    // new generation and write that generation into the headers as required
    // (log_required_max), so the snapshot's databases would need a log that
    // no backup of the closed generations holds.
    std::lock_guard<std::mutex> flush(flush_mu_);
    info.closed_generation = log_->current_generation();
    absl::Status rolled = log_->Roll();
    if (!rolled.ok()) {
      Fail(rolled);
      return rolled;
    }
    frozen_ = true;
    flush_frozen_ = true;
    info.checkpoint = checkpoint_.position;
  }
  log_line_->info("[unit {}] frozen; generation 0x{:08X} closed", unit_.name,
                  info.closed_generation);
  return info;
}

absl::Status Engine::Thaw() {
  {
    std::lock_guard<std::mutex> writer(writer_mu_);
    if (!frozen_)
      return absl::FailedPreconditionError(absl::StrCat("unit ", unit_.name, " is not frozen"));
    frozen_ = false;
  }
  {
    std::lock_guard<std::mutex> flush(flush_mu_);
    flush_frozen_ = false;
  }
  thawed_.notify_all();
  log_line_->info("[unit {}] thawed", unit_.name);
  return absl::OkStatus();
}

bool Engine::frozen() const {
  std::lock_guard<std::mutex> writer(writer_mu_);
  return frozen_;
}

absl::Status Engine::RecordBackup(BackupType type, Generation low, Generation high, int64_t time_us,
                                  bool snapshot) {
  RETURN_IF_ERROR(health());
  const BackupRecord record{low, high, time_us, snapshot};
  for (auto& db : dbs_) {
    RETURN_IF_ERROR(db->UpdateHeader([&](DbHeader& h) {
      switch (type) {
        case BackupType::kFull:
          h.previous_full = record;
          break;
        case BackupType::kIncremental:
          h.previous_incremental = record;
          break;
        case BackupType::kDifferential:
          h.previous_differential = record;
          break;
        case BackupType::kCopy:
          h.previous_copy = record;
          break;
      }
    }));
  }
  return absl::OkStatus();
}

Lsn Engine::checkpoint() const {
  std::lock_guard<std::mutex> flush(flush_mu_);
  return checkpoint_.position;
}

absl::StatusOr<std::vector<Generation>> Engine::TruncateLogs(Generation through) {
  RETURN_IF_ERROR(health());
  // Under flush_mu_: the checkpoint cannot move (and circular deletion
  // cannot run) meanwhile.
  std::lock_guard<std::mutex> flush(flush_mu_);
  const Generation limit = std::min(through, checkpoint_.position.generation - 1);
  ASSIGN_OR_RETURN(LogStreamListing listing, ListLogStream(unit_.log_dir, unit_.log_prefix));
  std::vector<Generation> deleted;
  for (const auto& [gen, path] : listing.closed) {
    if (gen > limit) break;
    RETURN_IF_ERROR(RemoveDurably(path));
    deleted.push_back(gen);
  }
  if (!deleted.empty()) {
    log_line_->info("[unit {}] truncated logs 0x{:08X}-0x{:08X}", unit_.name, deleted.front(),
                    deleted.back());
  }
  return deleted;
}

EngineStats Engine::stats() const {
  EngineStats s;
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    s = stats_;
  }
  s.cache_pages = cache_->size();
  s.dirty_pages = cache_->dirty_count();
  s.durable = log_->durable_lsn();
  s.log_flushes = log_->flush_count();
  return s;
}

}  // namespace dagvault::mailstore
