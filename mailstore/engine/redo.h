// Applies logged page changes to database files, idempotently by dbtime.
//
// Recovery runs the same records through two appliers: a dry run, which
// decides everything and writes nothing, then the real one. Both decide
// from the same per-page state (valid, dbtime, the 32-byte page header),
// kept for the whole replay, so the real pass can refuse nothing the dry
// run accepted.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "common/uncached_io.h"
#include "mailstore/engine/database_file.h"
#include "mailstore/engine/double_write.h"
#include "mailstore/format/log_format.h"
#include "mailstore/format/page.h"

namespace dagvault::mailstore {

class RedoApplier {
 public:
  enum class Mode {
    // Check every record against the pages, as applying would; write nothing.
    kDryRun,
    kApply,
  };

  struct Database {
    DatabaseFile* file = nullptr;  // null: this index is not being recovered
    // Records before this position are already in the file (its header's
    // checkpoint, or consistent position) and are skipped.
    Lsn start;
  };

  // start_generation is where replay begins: a database marked dirty by a
  // flush requires the logs from there.
  // With a double-write buffer, a flush puts the pages it writes there
  // first, so that a page torn by a crash is repaired before the next
  // replay; except the pages an image record rebuilt since the last
  // flush, at or after the latest place a later replay could start from
  // (the header's checkpoint for a soft one, log_required_min for a hard
  // one, this one's start): a torn one of those is rebuilt again by that
  // image, which the replay after the crash applies again. No flush moves
  // those places past a record of the run: recovery's flushes leave the
  // checkpoint alone, and a passive copy raises it only after the batch's
  // last flush. Images are most of a mail store's log (new items), so
  // most pages are written once, not twice.
  RedoApplier(std::vector<Database> dbs, Generation start_generation, Mode mode,
              DoubleWriteBuffer* dwb = nullptr, size_t max_cached_pages = 32768);

  // Applies one page record (image, sparse image or delta).
  // - A record the page already holds (by dbtime) is skipped.
  // - A delta to a damaged page is skipped while the page waits for an
  //   image later in the log (a torn page is rebuilt by its image);
  //   Finish() refuses if none came.
  // - A delta whose dbtime_before is not the page's is a missing change.
  // - A record that would leave a page with another page number, or an
  //   invalid type or format, is refused.
  // Errors name the database, page and log position.
  absl::Status Apply(RecordType type, uint8_t db_index, Lsn lsn, const uint8_t* body,
                     uint32_t body_size);

  // After the last record: refuses pages still waiting for an image, and a
  // last page cut short that nothing rebuilt (a truncated file, not a crash).
  absl::Status Finish();

  // Writes the changed pages and fsyncs. Headers first get
  // log_required_max raised to `generation` and their dbtime reservation
  // raised, so a crash half-way through cannot leave a database that looks
  // consistent at an older point. Call it only between transactions, with
  // the generation of the last commit applied.
  absl::Status Flush(Generation generation);
  bool ShouldFlush() const { return mode_ == Mode::kApply && buffers_.size() > max_cached_; }

  uint64_t applied() const { return applied_; }
  uint64_t skipped() const { return skipped_; }
  uint64_t superseded() const { return superseded_; }
  uint64_t not_attached() const { return not_attached_; }
  DbTime max_dbtime(uint32_t db) const { return max_dbtime_[db]; }

 private:
  struct PageState {
    bool valid = false;
    DbTime dbtime = 0;
    std::array<uint8_t, kPageHeaderSize> head{};
    bool awaiting_image = false;
    Lsn first_waiting_delta;
  };
  using Key = std::pair<uint32_t, PageNo>;

  absl::StatusOr<PageState*> State(uint32_t db, PageNo pgno);
  // The page's buffer, marked dirty; `imaged` when an image record is
  // about to rebuild it.
  absl::StatusOr<uint8_t*> Buffer(uint32_t db, PageNo pgno, bool imaged);

  // Page-sized slots carved from 2 MiB slabs (huge pages where the kernel
  // gives them) and all reused after each flush. A replay reads and
  // changes tens of thousands of pages between flushes: a fresh aligned,
  // zeroed allocation for each, faulted in page by page, took half of a
  // replay's time (perf, 119 generations onto a 5.9 GiB database).
  class PageArena {
   public:
    uint8_t* Allocate(uint32_t size);
    void Reset() { used_ = offset_ = 0; }  // every slot free again; the slabs are kept

   private:
    std::vector<AlignedBuffer> slabs_;
    size_t used_ = 0;    // slabs before slabs_[used_] are full
    size_t offset_ = 0;  // in slabs_[used_]
  };

  std::vector<Database> dbs_;
  Generation start_generation_;
  Mode mode_;
  DoubleWriteBuffer* dwb_;
  size_t max_cached_;
  std::map<Key, PageState> states_;
  struct Buffered {
    uint8_t* page = nullptr;  // in arena_
    bool dirty = false;
    // An image record (whole or sparse) was applied since the last flush:
    // the log rebuilds this page (the double-write buffer is not needed).
    bool imaged = false;
  };
  std::map<Key, Buffered> buffers_;  // apply mode: pages read or changed since a flush
  PageArena arena_;                  // buffers_' pages
  AlignedBuffer scratch_;            // a dry run's page, read for its state only
  std::vector<DbTime> max_dbtime_;
  std::vector<Lsn> rebuild_from_;  // per database: images from here rebuild a page
  uint64_t applied_ = 0, skipped_ = 0, superseded_ = 0, not_attached_ = 0;
};

}  // namespace dagvault::mailstore
