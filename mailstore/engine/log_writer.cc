#include "mailstore/engine/log_writer.h"

#include <fcntl.h>

#include <cstring>

#include "absl/strings/str_format.h"
#include "common/fault_injection.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::mailstore {
namespace {

const uint32_t kSealSpace = RecordSpace(16);

// A static block of zeros for filling new log files and hashing their tails.
const std::string& Zeros() {
  static const std::string* zeros = new std::string(1 << 20, '\0');
  return *zeros;
}

}  // namespace

uint32_t LogWriter::MaxBodySize(uint32_t file_size) {
  return file_size - kLogHeaderSize - kSealSpace - kRecordHeaderSize - kRecordAlignment;
}

absl::StatusOr<std::unique_ptr<LogWriter>> LogWriter::Start(LogStreamOptions options,
                                                            Generation generation,
                                                            std::optional<Sha256Digest> prev_link) {
  std::unique_ptr<LogWriter> writer(new LogWriter(std::move(options)));
  writer->last_closed_hash_ = prev_link;
  RETURN_IF_ERROR(writer->CreateFile(generation));
  std::lock_guard<std::mutex> lock(writer->mu_);
  writer->append_generation_ = generation;
  writer->append_offset_ = kLogHeaderSize;
  writer->durable_ = Lsn{generation, kLogHeaderSize};
  return writer;
}

LogWriter::~LogWriter() = default;

LogWriter::Segment& LogWriter::CurrentSegmentLocked() {
  if (pending_.empty() || pending_.back().generation != append_generation_) {
    pending_.push_back(Segment{append_generation_, append_offset_, {}, false});
  }
  return pending_.back();
}

void LogWriter::SealLocked(bool start_next) {
  Segment& seg = CurrentSegmentLocked();
  SealBody body{records_in_generation_, options_.clock->NowMicros()};
  std::string encoded = EncodeSealBody(body);
  AppendRecord(&seg.bytes, Lsn{append_generation_, append_offset_}, RecordType::kSeal, 0,
               {absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(encoded.data()),
                                          encoded.size())});
  seg.seal_after = true;
  append_generation_++;
  append_offset_ = kLogHeaderSize;
  records_in_generation_ = 0;
  first_record_us_ = 0;
  // An empty segment makes the flusher create the next file right away.
  if (start_next) CurrentSegmentLocked();
}

absl::Status LogWriter::WritableLocked() const {
  if (!error_.ok()) return error_;
  if (!closed_) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrFormat("log stream %s in %s is closed: nothing more may be written to it",
                      options_.prefix, options_.dir));
}

absl::StatusOr<LogWriter::Appended> LogWriter::Append(std::vector<PendingRecord>& records) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(WritableLocked());
  // Check every record before placing any: a transaction is placed whole
  // or not at all.
  for (const PendingRecord& r : records) {
    if (r.body_size() > MaxBodySize(options_.file_size)) {
      return absl::InternalError(absl::StrFormat(
          "log record of %u bytes cannot fit in a %u-byte log", r.body_size(), options_.file_size));
    }
  }
  Appended result;
  bool first = true;
  for (const PendingRecord& r : records) {
    const uint32_t space = RecordSpace(r.body_size());
    if (append_offset_ + space + kSealSpace > options_.file_size) SealLocked();
    Segment& seg = CurrentSegmentLocked();
    const Lsn lsn{append_generation_, append_offset_};
    AppendRecord(
        &seg.bytes, lsn, r.type, r.db_index,
        {absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(r.head.data()), r.head.size()),
         absl::Span<const uint8_t>(r.data, r.data_len)});
    append_offset_ += space;
    // The oldest record the open generation holds: what a time-based roll
    // (archive_roll_seconds) measures.
    if (records_in_generation_++ == 0) first_record_us_ = options_.clock->NowMicros();
    if (first) {
      result.first = lsn;
      first = false;
    }
  }
  result.end = Lsn{append_generation_, append_offset_};
  return result;
}

absl::Status LogWriter::WaitDurable(Lsn target) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (!error_.ok()) return error_;
    if (durable_ >= target) return absl::OkStatus();
    if (flushing_) {
      flushed_.wait(lock);
      continue;
    }
    // Become the flusher for everything placed so far.
    flushing_ = true;
    std::vector<Segment> segments;
    segments.swap(pending_);
    const Lsn end{append_generation_, append_offset_};
    lock.unlock();
    absl::Status status = WriteSegments(segments);
    lock.lock();
    flushing_ = false;
    flushes_++;
    if (status.ok()) {
      durable_ = end;
    } else {
      error_ = Annotate(status, "log write failed; the unit must be restarted and recovered");
    }
    flushed_.notify_all();
  }
}

absl::Status LogWriter::Flush() { return WaitDurable(append_lsn()); }

absl::Status LogWriter::Roll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(WritableLocked());
    SealLocked();
  }
  return Flush();
}

absl::Status LogWriter::SealAndClose() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(WritableLocked());
    SealLocked(/*start_next=*/false);
    closed_ = true;
  }
  return Flush();
}

absl::Status LogWriter::Close() {
  {
    // Closed first, so that nothing is placed after the flush below.
    std::lock_guard<std::mutex> lock(mu_);
    // Closed already: OK, or why the first close failed.
    if (closed_) return error_;
    closed_ = true;
  }
  RETURN_IF_ERROR(Flush());
  return file_.Close();
}

int64_t LogWriter::open_generation_since_us() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_record_us_;
}

Lsn LogWriter::append_lsn() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Lsn{append_generation_, append_offset_};
}

Lsn LogWriter::durable_lsn() const {
  std::lock_guard<std::mutex> lock(mu_);
  return durable_;
}

Generation LogWriter::current_generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return append_generation_;
}

uint64_t LogWriter::flush_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return flushes_;
}

absl::Status LogWriter::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

absl::Status LogWriter::WriteSegments(std::vector<Segment>& segments) {
  for (Segment& seg : segments) {
    if (!file_.is_open() || file_generation_ != seg.generation) {
      // Only a segment that starts a generation gets a new file: one that
      // continues a generation whose file is not open would have that
      // file created anew over the records it already holds.
      if (seg.offset != kLogHeaderSize) {
        return absl::InternalError(absl::StrFormat(
            "log generation %u of %s in %s is not open, and records at offset %u continue it: "
            "refusing to create its file again over its records",
            seg.generation, options_.prefix, options_.dir, seg.offset));
      }
      RETURN_IF_ERROR(CreateFile(seg.generation));
    }
    if (!seg.bytes.empty()) {
      // Records are written back to back, so the running hash can follow;
      // checked before the write, which would otherwise land anyway.
      if (seg.offset != hashed_upto_) {
        return absl::InternalError(absl::StrFormat(
            "log generation %u of %s in %s: a segment at %u does not follow %u", seg.generation,
            options_.prefix, options_.dir, seg.offset, hashed_upto_));
      }
      RETURN_IF_ERROR(file_.WriteAt(seg.offset, seg.bytes.data(), seg.bytes.size()));
      DAGVAULT_CRASH_POINT("log.write.before_sync");
      running_hash_.Update(seg.bytes);
      hashed_upto_ += static_cast<uint32_t>(seg.bytes.size());
      unsynced_ = true;
    }
    if (seg.seal_after) RETURN_IF_ERROR(CloseCurrentFile());
  }
  if (unsynced_ && file_.is_open()) {
    RETURN_IF_ERROR(file_.DataSync());
    unsynced_ = false;
  }
  return absl::OkStatus();
}

absl::Status LogWriter::CreateFile(Generation generation) {
  LogHeader header;
  header.generation = generation;
  header.file_size = options_.file_size;
  header.log_signature = options_.signature;
  header.created_us = options_.clock->NowMicros();
  header.has_prev_link = last_closed_hash_.has_value();
  if (last_closed_hash_) header.prev_link = *last_closed_hash_;
  header.circular_logging = options_.circular_logging;
  header.page_size = options_.page_size;
  header.databases = options_.databases;
  const std::string encoded = EncodeLogHeader(header);

  const std::string tmp = JoinPath(options_.dir, TempLogName(options_.prefix));
  const std::string current = JoinPath(options_.dir, CurrentLogName(options_.prefix));
  {
    ASSIGN_OR_RETURN(File f, File::Open(tmp, O_RDWR | O_CREAT | O_TRUNC));
    RETURN_IF_ERROR(f.WriteAt(0, encoded.data(), encoded.size()));
    // Real zeros rather than a sparse file: later fdatasyncs then flush data
    // only, and the bytes after the last record read as zero.
    for (uint32_t off = kLogHeaderSize; off < options_.file_size;) {
      const uint32_t n = std::min<uint32_t>(options_.file_size - off, Zeros().size());
      RETURN_IF_ERROR(f.WriteAt(off, Zeros().data(), n));
      off += n;
    }
    RETURN_IF_ERROR(f.Sync());
  }
  DAGVAULT_CRASH_POINT("log.create.before_rename");
  RETURN_IF_ERROR(RenameDurably(tmp, current));
  ASSIGN_OR_RETURN(file_, File::Open(current, O_RDWR));
  file_generation_ = generation;
  running_hash_.Finish();  // discard any previous state
  running_hash_.Update(encoded);
  hashed_upto_ = kLogHeaderSize;
  unsynced_ = false;
  return absl::OkStatus();
}

absl::Status LogWriter::CloseCurrentFile() {
  RETURN_IF_ERROR(file_.DataSync());
  unsynced_ = false;
  DAGVAULT_CRASH_POINT("log.roll.after_seal");
  for (uint32_t off = hashed_upto_; off < options_.file_size;) {
    const uint32_t n = std::min<uint32_t>(options_.file_size - off, Zeros().size());
    running_hash_.Update(Zeros().data(), n);
    off += n;
  }
  last_closed_hash_ = running_hash_.Finish();
  RETURN_IF_ERROR(file_.Close());
  const std::string current = JoinPath(options_.dir, CurrentLogName(options_.prefix));
  const std::string closed = JoinPath(options_.dir, LogFileName(options_.prefix, file_generation_));
  RETURN_IF_ERROR(RenameDurably(current, closed));
  DAGVAULT_CRASH_POINT("log.roll.after_rename");
  file_generation_ = 0;
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
