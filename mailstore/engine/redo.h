// Applies logged page changes to database files, idempotently by dbtime.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "mailstore/engine/database_file.h"
#include "mailstore/engine/page_buffer.h"
#include "mailstore/format/log_format.h"

namespace dagvault::mailstore {

class RedoApplier {
 public:
  enum class Mode {
    // Check every record against the pages' dbtimes and checksums, as
    // applying would, but change nothing and write nothing.
    kDryRun,
    kApply,
  };

  // dbs[i] is the database with index i, or null if it is not recovered.
  // start_generation is where replay begins: a database marked dirty by a
  // flush requires the logs from there.
  RedoApplier(std::vector<DatabaseFile*> dbs, Generation start_generation, Mode mode,
              size_t max_cached_pages = 32768)
      : dbs_(std::move(dbs)),
        start_generation_(start_generation),
        mode_(mode),
        max_cached_(max_cached_pages),
        max_dbtime_(dbs_.size(), 0) {}

  // Applies one page record (image, sparse image or delta). A delta whose
  // dbtime_before does not match the page means a missing change; a delta
  // to a damaged page cannot be applied. Errors name the database, page
  // and log position.
  absl::Status Apply(RecordType type, uint8_t db_index, Lsn lsn, const uint8_t* body,
                     uint32_t body_size);

  // Writes the changed pages and fsyncs. Headers first get
  // log_required_max raised to `generation` and their dbtime reservation
  // raised, so a crash half-way through cannot leave a database that looks
  // consistent at an older point. Call it only between transactions, with
  // the generation of the last commit applied: a flush inside a
  // transaction would write half of it.
  absl::Status Flush(Generation generation);
  // True when the cached pages exceed the budget and a flush is due.
  bool ShouldFlush() const { return mode_ == Mode::kApply && cache_.size() > max_cached_; }

  uint64_t applied() const { return applied_; }
  uint64_t skipped() const { return skipped_; }
  uint64_t not_attached() const { return not_attached_; }
  DbTime max_dbtime(uint32_t db) const { return max_dbtime_[db]; }

 private:
  struct CachedPage {
    std::shared_ptr<PageBuffer> page;  // null in a dry run
    bool valid;                        // passed verification, or was rebuilt by an image
    DbTime dbtime;
    bool dirty = false;
  };
  absl::StatusOr<CachedPage*> GetPage(uint32_t db, PageNo pgno);

  std::vector<DatabaseFile*> dbs_;
  Generation start_generation_;
  Mode mode_;
  size_t max_cached_;
  std::map<std::pair<uint32_t, PageNo>, CachedPage> cache_;
  std::vector<DbTime> max_dbtime_;
  uint64_t applied_ = 0, skipped_ = 0, not_attached_ = 0;
};

}  // namespace dagvault::mailstore
