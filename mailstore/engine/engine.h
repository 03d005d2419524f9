// The mailstore engine for one unit: its databases, its log stream, the
// buffer cache, transactions, the lazy writer and the checkpoint.
//
//   auto engine = Engine::Open(config, options);      // soft recovery if needed
//   auto txn = (*engine)->Begin();
//   (*txn)->Put(0, ItemKey{mailbox, item}, value);
//   (*txn)->Commit();                                 // durable on return
//   (*engine)->Close();                               // clean shutdown
//
// Threading: any number of readers (Get, List, Digest) run alongside one
// writer transaction. A background thread (the lazy writer) writes dirty
// pages whose log records are durable, then advances the checkpoint.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "dagvault/v1/mailstore.pb.h"
#include "mailstore/engine/buffer_cache.h"
#include "mailstore/engine/database_file.h"
#include "mailstore/engine/digest.h"
#include "mailstore/engine/item_table.h"
#include "mailstore/engine/log_writer.h"
#include "mailstore/engine/space_map.h"
#include "mailstore/engine/transaction.h"
#include "mailstore/engine/unit_config.h"
#include "mailstore/format/checkpoint.h"

namespace spdlog {
class logger;
}

namespace dagvault::mailstore {

struct EngineOptions {
  size_t cache_bytes = 256ull << 20;
  // How often the lazy writer flushes dirty pages and advances the
  // checkpoint when nothing else wakes it.
  absl::Duration flush_interval = absl::Seconds(1);
  // Commits wait for the lazy writer when more of the cache than this is
  // dirty, so memory stays bounded under any load.
  double max_dirty_fraction = 0.5;
  Clock* clock = RealClock();
  // Circular logging: the engine deletes the closed logs below its
  // checkpoint itself. A replicated unit turns this off: its logs go only
  // once every copy has them (mailstored's truncation, as Exchange's
  // continuous replication circular logging).
  bool circular_deletes = true;
};

struct EngineStats {
  uint64_t commits = 0;
  uint64_t pages_logged_image = 0;  // new pages and whole images (sparse or not)
  uint64_t pages_logged_delta = 0;
  uint64_t log_bytes = 0;
  uint64_t log_flushes = 0;
  uint64_t pages_flushed = 0;
  uint64_t flush_cycles = 0;
  size_t cache_pages = 0;
  size_t dirty_pages = 0;
  Lsn checkpoint;
  Lsn last_redo_point;  // R of the latest lazy-writer cycle
  Lsn durable;
};

class Engine {
 public:
  // Creates a new unit: its folders, databases and first log generation.
  // Fails if any of its files exist already.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const dagvault::v1::UnitConfig& config,
                                                        const EngineOptions& options = {});
  // Opens an existing unit, running soft recovery first if it was not shut
  // down cleanly.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(const dagvault::v1::UnitConfig& config,
                                                      const EngineOptions& options = {});
  ~Engine();

  // Clean shutdown: flushes everything, writes a Term record and marks the
  // databases CleanShutdown. Without it (a crash, or the destructor), the
  // next Open recovers. With seal_log, the open log is also sealed and
  // closed under its generation name, so that another copy that has
  // replayed it can continue the stream (a switchover).
  absl::Status Close(bool seal_log = false);

  // Freeze for a snapshot: rolls the log so that the current generation
  // closes, then holds every write to the unit's files until Thaw. New
  // transactions wait in Begin (they do not fail); the lazy writer pauses.
  struct FreezeInfo {
    Generation closed_generation;  // the generation the roll closed
    Lsn checkpoint;                // everything logged before it is in the files
  };
  absl::StatusOr<FreezeInfo> Freeze();
  absl::Status Thaw();
  bool frozen() const;

  // Records a successful backup in every database header (the "previous
  // Full/Incremental/Differential/Copy backup" fields).
  enum class BackupType { kFull, kIncremental, kDifferential, kCopy };
  absl::Status RecordBackup(BackupType type, Generation low, Generation high, int64_t time_us,
                            bool snapshot);

  // Deletes closed logs up to and including `through`, but never one at or
  // above the checkpoint's generation (recovery needs those). The caller
  // decides the rest of the truncation rules. Returns the generations
  // deleted.
  absl::StatusOr<std::vector<Generation>> TruncateLogs(Generation through);
  Lsn checkpoint() const;
  // The header of a database as last written.
  DbHeader DatabaseHeader(uint32_t db) const { return dbs_[db]->header(); }
  const std::string& DatabasePath(uint32_t db) const { return dbs_[db]->path(); }
  uint32_t database_count() const { return static_cast<uint32_t>(dbs_.size()); }

  // Starts a write transaction, waiting for the current one to finish.
  absl::StatusOr<std::unique_ptr<Transaction>> Begin();

  // Reads outside a transaction see committed data.
  absl::StatusOr<std::optional<std::string>> Get(uint32_t db, const ItemKey& key);
  absl::StatusOr<std::vector<ItemInfo>> List(uint32_t db, uint64_t mailbox, uint64_t start_item,
                                             size_t limit);
  absl::StatusOr<MetaInfo> Meta(uint32_t db);
  // The lowest mailbox number >= `mailbox` that holds an item, if any.
  absl::StatusOr<std::optional<uint64_t>> FirstMailboxFrom(uint32_t db, uint64_t mailbox);
  // SHA-256 over every item of a database in key order (see digest.h).
  // `appended`, when given, receives the log position the digested state
  // ends at (the next record's): every record before it is in the digest,
  // none after it.
  absl::StatusOr<Sha256Digest> Digest(uint32_t db, Lsn* appended = nullptr);
  // The same walk, with the items and value bytes it covered.
  absl::StatusOr<DigestResult> DigestWithCounts(uint32_t db, Lsn* appended = nullptr);

  // Single-operation transactions.
  absl::Status Put(uint32_t db, const ItemKey& key, absl::string_view value);
  absl::StatusOr<bool> Delete(uint32_t db, const ItemKey& key);

  // Closes the current log generation and starts the next one.
  absl::Status RollLog();
  // Runs a lazy-writer cycle now: flush, advance the checkpoint.
  absl::Status FlushNow();

  const ResolvedUnit& unit() const { return unit_; }
  int DatabaseIndex(const std::string& name) const { return unit_.DatabaseIndex(name); }
  Generation current_generation() const { return log_->current_generation(); }
  Lsn durable_lsn() const { return log_->durable_lsn(); }
  int64_t open_generation_since_us() const { return log_->open_generation_since_us(); }
  EngineStats stats() const;
  // OK while healthy; the error that took the engine offline otherwise.
  absl::Status health() const;

 private:
  friend class Transaction;
  class CacheReader;

  Engine(ResolvedUnit unit, const EngineOptions& options);
  absl::Status OpenFiles();
  absl::Status AttachLogStream();
  absl::Status CheckNoCommitsAfter(Lsn consistent, const LogStreamListing& listing);
  // Seals the previous session's open log where its valid records end and
  // closes it, after checking it belongs to this unit and follows the
  // closed logs.
  absl::Status AdoptOpenLog(const std::string& path, Generation highest_closed, Sha256Digest* hash,
                            Generation* generation);
  void StartLazyWriter();
  void StopLazyWriter();
  void LazyWriterLoop();
  absl::Status FlushCycle();
  absl::Status AdvanceCheckpoint(Lsn candidate);
  absl::Status WaitForDirtyRoom();
  void Fail(const absl::Status& status);
  absl::StatusOr<Lsn> CommitTransaction(Transaction& txn);

  const ResolvedUnit unit_;
  const EngineOptions options_;
  std::shared_ptr<spdlog::logger> log_line_;

  File lock_file_;
  std::vector<std::unique_ptr<DatabaseFile>> dbs_;
  std::vector<SpaceHints> hints_;
  std::vector<std::unique_ptr<std::atomic<DbTime>>> dbtime_;
  std::vector<Signature> db_signatures_;
  Signature log_signature_;
  std::unique_ptr<BufferCache> cache_;
  std::unique_ptr<LogWriter> log_;

  // One write transaction at a time.
  mutable std::mutex writer_mu_;
  // Set while frozen (guarded by writer_mu_); Begin waits on thawed_.
  bool frozen_ = false;
  std::condition_variable thawed_;
  // Readers hold it shared; a commit holds it exclusively while it places
  // its records and installs its pages, so a reader never sees half a
  // commit, and the checkpoint never falls between the two.
  std::shared_mutex install_mu_;
  std::atomic<uint64_t> next_txn_seq_{1};
  // The lazy writer's current epoch (see PageBuffer::image_epoch). Written
  // and read only under install_mu_ held exclusively.
  uint64_t image_epoch_ = 1;

  // Checkpoint state, owned by the lazy writer (and Close).
  mutable std::mutex flush_mu_;
  Checkpoint checkpoint_;
  // Set while frozen (guarded by flush_mu_): flush cycles write nothing.
  bool flush_frozen_ = false;

  std::mutex lw_mu_;
  std::condition_variable lw_wake_;
  std::condition_variable lw_done_;
  bool lw_stop_ = false;
  bool lw_requested_ = false;
  uint64_t lw_cycles_ = 0;
  std::thread lazy_writer_;

  mutable std::mutex state_mu_;
  absl::Status failed_;
  bool closed_ = false;
  EngineStats stats_;
};

}  // namespace dagvault::mailstore
