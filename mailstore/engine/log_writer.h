// Appends transactions to the log stream with group commit.
//
// Committers place their records in memory under a short lock and get their
// log positions at once; then they wait for durability. One waiter at a time
// becomes the flusher: it writes everything placed so far and fdatasyncs
// once for the whole group. Records never span files: when the next record
// would not fit, the file gets a Seal record and is closed (fsync, rename to
// <prefix><gen>.log, directory fsync), and the next generation is created
// (written in full with zeros, fsync, rename into place) with the SHA-256
// of the closed file as its link hash.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "mailstore/engine/page_buffer.h"
#include "mailstore/format/log_format.h"

namespace dagvault::mailstore {

struct LogStreamOptions {
  std::string dir;
  std::string prefix;
  uint32_t file_size = kDefaultLogFileSize;
  uint32_t page_size = kDefaultPageSize;
  bool circular_logging = false;
  Signature signature;
  std::vector<AttachedDatabase> databases;
  Clock* clock = RealClock();
};

// One record to append. The body is `head` followed by `data_len` bytes at
// `data` (kept alive by `keep`), so page images are copied only once.
struct PendingRecord {
  RecordType type;
  uint8_t db_index = 0;
  std::string head;
  const uint8_t* data = nullptr;
  size_t data_len = 0;
  PageRef keep;
  size_t body_size() const { return head.size() + data_len; }
};

class LogWriter {
 public:
  // Creates generation `generation` as the open log <prefix>.log and starts
  // appending to it. prev_link is the SHA-256 of the previous generation's
  // file, if there is one.
  static absl::StatusOr<std::unique_ptr<LogWriter>> Start(LogStreamOptions options,
                                                          Generation generation,
                                                          std::optional<Sha256Digest> prev_link);
  ~LogWriter();

  struct Appended {
    Lsn first;  // position of the first record
    Lsn end;    // position just past the last record
  };
  // Places records (a whole transaction, commit included) in the log.
  // Durability needs WaitDurable(end). Fails only if the log has failed
  // or is closed.
  absl::StatusOr<Appended> Append(std::vector<PendingRecord>& records);
  absl::Status WaitDurable(Lsn lsn);
  // Makes everything appended so far durable.
  absl::Status Flush();
  // Seals and closes the current generation and opens the next one.
  absl::Status Roll();
  // Flushes and closes the open file without sealing it (after a Term).
  // From then on every Append and Roll is refused (FailedPrecondition):
  // the closed file keeps its records, however late a roll arrives.
  // Closing again does nothing but say why the first close failed, if it
  // did.
  absl::Status Close();
  // Seals the current generation and closes it under its generation name,
  // starting no successor: the stream can be continued by whichever copy
  // is activated next. Refuses what follows as Close does.
  absl::Status SealAndClose();

  Lsn append_lsn() const;
  Lsn durable_lsn() const;
  // When the first record still in the open generation was appended
  // (microseconds since the epoch, the log's clock); 0 while it holds none.
  int64_t open_generation_since_us() const;
  Generation current_generation() const;
  // The sticky error after a failed write; OK while healthy.
  absl::Status health() const;
  // How many times the log was written and synced: commits per flush is the
  // group-commit factor.
  uint64_t flush_count() const;

  // The largest record body that fits in a log file.
  static uint32_t MaxBodySize(uint32_t file_size);

 private:
  struct Segment {
    Generation generation;
    uint32_t offset;
    std::string bytes;
    bool seal_after = false;
  };

  friend class LogWriterTestPeer;

  explicit LogWriter(LogStreamOptions options) : options_(std::move(options)) {}
  // The sticky error after a failed write; FailedPrecondition naming the
  // stream once it is closed; else OK.
  absl::Status WritableLocked() const;
  void SealLocked(bool start_next = true);
  Segment& CurrentSegmentLocked();
  absl::Status WriteSegments(std::vector<Segment>& segments);
  absl::Status CreateFile(Generation generation);
  absl::Status CloseCurrentFile();

  const LogStreamOptions options_;

  mutable std::mutex mu_;
  std::condition_variable flushed_;
  Generation append_generation_ = 0;
  uint32_t append_offset_ = kLogHeaderSize;
  uint32_t records_in_generation_ = 0;
  int64_t first_record_us_ = 0;
  std::vector<Segment> pending_;
  bool flushing_ = false;
  Lsn durable_;
  absl::Status error_;
  bool closed_ = false;
  uint64_t flushes_ = 0;

  // Owned by whichever thread is the flusher (one at a time).
  File file_;
  Generation file_generation_ = 0;
  std::optional<Sha256Digest> last_closed_hash_;
  Sha256 running_hash_;
  uint32_t hashed_upto_ = 0;
  bool unsynced_ = false;
};

}  // namespace dagvault::mailstore
