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
  // dbs[i] is the database with index i, or null if it is not recovered.
  // start_generation is where replay begins: a database marked dirty by a
  // flush requires the logs from there.
  RedoApplier(std::vector<DatabaseFile*> dbs, Generation start_generation,
              size_t max_cached_pages = 32768)
      : dbs_(std::move(dbs)),
        start_generation_(start_generation),
        max_cached_(max_cached_pages),
        max_dbtime_(dbs_.size(), 0) {}

  // Applies one PageImage or PageDelta record. A delta whose dbtime_before
  // does not match the page means a missing change: the error names the
  // database, page and log position.
  absl::Status Apply(RecordType type, uint8_t db_index, Lsn lsn, const uint8_t* body,
                     uint32_t body_size);

  // Writes the changed pages and fsyncs. Headers first get
  // log_required_max raised to `generation`, so a crash half-way through
  // cannot leave a database that looks consistent at an older point.
  absl::Status Flush(Generation generation);

  uint64_t applied() const { return applied_; }
  uint64_t skipped() const { return skipped_; }
  uint64_t not_attached() const { return not_attached_; }
  DbTime max_dbtime(uint32_t db) const { return max_dbtime_[db]; }
  bool touched(uint32_t db) const { return touched_.count(db) != 0; }

 private:
  struct CachedPage {
    std::shared_ptr<PageBuffer> page;
    bool valid;  // passed verification (or was written by a record)
    bool dirty = false;
  };
  absl::StatusOr<CachedPage*> GetPage(uint32_t db, PageNo pgno);

  std::vector<DatabaseFile*> dbs_;
  Generation start_generation_;
  size_t max_cached_;
  std::map<std::pair<uint32_t, PageNo>, CachedPage> cache_;
  std::vector<DbTime> max_dbtime_;
  std::map<uint32_t, bool> touched_;
  Generation current_generation_ = 0;
  uint64_t applied_ = 0, skipped_ = 0, not_attached_ = 0;
};

}  // namespace dagvault::mailstore
