#include "mailstore/engine/redo.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/fault_injection.h"
#include "common/status_macros.h"
#include "mailstore/engine/layout.h"

namespace dagvault::mailstore {
namespace {

// Applies ranges that fall (partly) inside the first `size` bytes.
void ApplyRangesToPrefix(const PageDeltaBody& d, uint8_t* out, uint32_t size) {
  uint32_t pos = 0;
  for (uint16_t i = 0; i < d.range_count; ++i) {
    const uint32_t off = LoadU16(d.ranges + pos);
    const uint32_t len = LoadU16(d.ranges + pos + 2);
    if (off < size) std::memcpy(out + off, d.ranges + pos + 4, std::min(len, size - off));
    pos += 4 + len;
  }
}

}  // namespace

RedoApplier::RedoApplier(std::vector<Database> dbs, Generation start_generation, Mode mode,
                         DoubleWriteBuffer* dwb, size_t max_cached_pages)
    : dbs_(std::move(dbs)),
      start_generation_(start_generation),
      mode_(mode),
      dwb_(dwb),
      max_cached_(max_cached_pages),
      max_dbtime_(dbs_.size(), 0) {
  // The latest place any later replay could start from: a soft one at the
  // header's checkpoint, a hard one at log_required_min, this one at its
  // start. No flush of this run moves either header field past a record
  // of this run, so an image from here on is replayed again after a crash.
  for (const Database& db : dbs_) {
    Lsn from = db.start;
    if (db.file != nullptr) {
      const DbHeader h = db.file->header();
      from = std::max({from, h.checkpoint, Lsn{h.log_required_min, 0}});
    }
    rebuild_from_.push_back(from);
  }
}

uint8_t* RedoApplier::PageArena::Allocate(uint32_t size) {
  constexpr size_t kSlab = 2 << 20;
  const size_t need = (size + kDirectIoAlignment - 1) / kDirectIoAlignment * kDirectIoAlignment;
  if (used_ < slabs_.size() && offset_ + need > slabs_[used_].size()) {
    ++used_;
    offset_ = 0;
  }
  if (used_ == slabs_.size()) {
    slabs_.emplace_back();
    slabs_.back().resize(std::max(kSlab, need));
  }
  uint8_t* slot = reinterpret_cast<uint8_t*>(slabs_[used_].data()) + offset_;
  offset_ += need;
  return slot;
}

absl::StatusOr<RedoApplier::PageState*> RedoApplier::State(uint32_t db, PageNo pgno) {
  const Key key{db, pgno};
  auto it = states_.find(key);
  if (it != states_.end()) return &it->second;
  DatabaseFile* file = dbs_[db].file;
  const uint32_t page_size = file->page_size();
  uint8_t* page;
  if (mode_ == Mode::kApply) {
    page = arena_.Allocate(page_size);
  } else {
    scratch_.resize(page_size);
    page = reinterpret_cast<uint8_t*>(scratch_.data());
  }
  bool complete = true;
  RETURN_IF_ERROR(file->ReadPageForRedo(pgno, page, &complete));
  PageState state;
  // A damaged or cut-short page can only be rebuilt by an image.
  state.valid = complete && VerifyPage(page, page_size, pgno).ok();
  state.dbtime = PageDbTime(page);
  std::memcpy(state.head.data(), page, kPageHeaderSize);
  if (mode_ == Mode::kApply) {
    StoreU32(page + page_offsets::kChecksum, 0);
    buffers_[key] = Buffered{page, false};
  }
  return &states_.emplace(key, state).first->second;
}

absl::StatusOr<uint8_t*> RedoApplier::Buffer(uint32_t db, PageNo pgno, bool imaged) {
  const Key key{db, pgno};
  auto it = buffers_.find(key);
  if (it == buffers_.end()) {
    // Written by an earlier flush: the file holds exactly the state's page.
    uint8_t* page = arena_.Allocate(dbs_[db].file->page_size());
    bool complete = true;
    RETURN_IF_ERROR(dbs_[db].file->ReadPageForRedo(pgno, page, &complete));
    StoreU32(page + page_offsets::kChecksum, 0);
    it = buffers_.emplace(key, Buffered{page, false}).first;
  }
  it->second.dirty = true;
  it->second.imaged = it->second.imaged || imaged;
  return it->second.page;
}

absl::Status RedoApplier::Apply(RecordType type, uint8_t db_index, Lsn lsn, const uint8_t* body,
                                uint32_t body_size) {
  if (db_index >= dbs_.size() || dbs_[db_index].file == nullptr) {
    not_attached_++;
    return absl::OkStatus();
  }
  if (lsn < dbs_[db_index].start) {
    skipped_++;  // before this database's own checkpoint: already in the file
    return absl::OkStatus();
  }
  DatabaseFile* db = dbs_[db_index].file;
  const uint32_t page_size = db->page_size();
  const LogRecordView view{type, db_index, lsn, body, body_size, 0};
  auto refuse = [&](PageNo pgno, const std::string& what) {
    return absl::DataLossError(absl::StrFormat("%s: page %u: log record at %s: %s", db->path(),
                                               pgno, lsn.ToString(), what));
  };

  PageNo pgno;
  DbTime before = 0, after;
  const uint8_t* image = nullptr;       // a whole image
  std::optional<PageDeltaBody> ranges;  // a delta or a sparse image
  if (type == RecordType::kPageImage) {
    ASSIGN_OR_RETURN(PageImageBody whole, DecodePageImage(view, page_size));
    pgno = whole.pgno;
    after = whole.dbtime_after;
    image = whole.page;
  } else {
    ASSIGN_OR_RETURN(ranges, DecodePageDelta(view, page_size));
    pgno = ranges->pgno;
    before = ranges->dbtime_before;
    after = ranges->dbtime_after;
    if (type == RecordType::kPageDelta && after <= before) {
      return refuse(pgno, "its dbtime does not increase");
    }
  }
  if (pgno < kMetaPage) return refuse(pgno, "it would overwrite a header copy");
  const bool is_image = type != RecordType::kPageDelta;
  ASSIGN_OR_RETURN(PageState * state, State(db_index, pgno));
  max_dbtime_[db_index] = std::max(max_dbtime_[db_index], after);

  if (state->valid && state->dbtime >= after) {
    skipped_++;  // the page already holds this change
    return absl::OkStatus();
  }
  if (!is_image) {
    if (!state->valid) {
      // Torn or damaged: an image later in the log rebuilds it; Finish()
      // refuses if none comes.
      if (!state->awaiting_image) {
        state->awaiting_image = true;
        state->first_waiting_delta = lsn;
      }
      superseded_++;
      return absl::OkStatus();
    }
    if (state->dbtime != before) {
      return refuse(pgno, absl::StrFormat("the page has dbtime %u but the record changes it from "
                                          "dbtime %u: a change is missing (a log or a page write "
                                          "was lost)",
                                          state->dbtime, before));
    }
  }

  // The page's header after the change, decided the same way in both modes.
  std::array<uint8_t, kPageHeaderSize> head = state->head;
  if (image != nullptr) {
    std::memcpy(head.data(), image, kPageHeaderSize);
  } else {
    if (is_image) head.fill(0);
    ApplyRangesToPrefix(*ranges, head.data(), kPageHeaderSize);
    SetPageDbTime(head.data(), after);
  }
  const uint8_t page_type = head[page_offsets::kType];
  if (PagePgno(head.data()) != pgno || PageDbTime(head.data()) != after || page_type == 0 ||
      page_type > kMaxPageType || head[page_offsets::kFormat] != kPageFormatVersion) {
    return refuse(pgno, absl::StrFormat("it would leave a page claiming to be page %u, dbtime %u, "
                                        "type %u, format %u",
                                        PagePgno(head.data()), PageDbTime(head.data()), page_type,
                                        head[page_offsets::kFormat]));
  }

  if (mode_ == Mode::kApply) {
    ASSIGN_OR_RETURN(uint8_t * page,
                     Buffer(db_index, pgno, is_image && lsn >= rebuild_from_[db_index]));
    if (image != nullptr) {
      std::memcpy(page, image, page_size);
    } else {
      if (is_image) std::memset(page, 0, page_size);
      RETURN_IF_ERROR(ApplyPageDelta(*ranges, page, page_size));
      SetPageDbTime(page, after);
    }
    StoreU32(page + page_offsets::kChecksum, 0);
  }
  state->valid = true;
  state->dbtime = after;
  state->head = head;
  state->awaiting_image = false;
  applied_++;
  return absl::OkStatus();
}

absl::Status RedoApplier::Finish() {
  for (const auto& [key, state] : states_) {
    if (state.awaiting_image) {
      return absl::DataLossError(absl::StrFormat(
          "%s: page %u is damaged, and the log from %s holds only changes to it, no image to "
          "rebuild it from",
          dbs_[key.first].file->path(), key.second, state.first_waiting_delta.ToString()));
    }
  }
  for (uint32_t db = 0; db < dbs_.size(); ++db) {
    DatabaseFile* file = dbs_[db].file;
    if (file == nullptr) continue;
    ASSIGN_OR_RETURN(uint64_t pages, file->PageCount());
    ASSIGN_OR_RETURN(bool partial, file->HasPartialLastPage());
    if (!partial) continue;
    auto it = states_.find(Key{db, static_cast<PageNo>(pages)});
    if (it == states_.end() || !it->second.valid) {
      return absl::DataLossError(absl::StrFormat(
          "%s is cut short in page %u and the log does not rebuild that page: the file was "
          "truncated, not torn by a crash",
          file->path(), pages));
    }
  }
  return absl::OkStatus();
}

absl::Status RedoApplier::Flush(Generation generation) {
  if (mode_ == Mode::kDryRun) return absl::OkStatus();
  std::map<uint32_t, DbTime> dirty_dbs;  // database -> highest dbtime about to be written
  for (const auto& [key, buffered] : buffers_) {
    if (buffered.dirty) {
      dirty_dbs[key.first] = std::max(dirty_dbs[key.first], states_.at(key).dbtime);
    }
  }
  for (const auto& [db, high_dbtime] : dirty_dbs) {
    DatabaseFile* file = dbs_[db].file;
    const DbHeader current = file->header();
    if (current.log_required_max < generation || current.state != DbState::kDirtyShutdown ||
        current.dbtime < high_dbtime) {
      RETURN_IF_ERROR(file->UpdateHeader([&](DbHeader& h) {
        h.dbtime = std::max(h.dbtime, high_dbtime);
        if (h.state != DbState::kDirtyShutdown) {
          h.state = DbState::kDirtyShutdown;
          h.log_required_min = start_generation_;
        }
        h.log_required_max = std::max(h.log_required_max, generation);
      }));
    }
  }
  std::vector<DoubleWriteBuffer::Entry> entries;  // the pages only the buffer could repair
  if (dwb_ != nullptr) {
    for (const auto& [key, buffered] : buffers_) {
      if (buffered.dirty && !buffered.imaged) {
        entries.push_back({key.first, key.second, buffered.page});
      }
    }
  }
  if (!entries.empty()) {
    RETURN_IF_ERROR(dwb_->Write(entries, dbs_[entries.front().db_index].file->page_size()));
  }
  // For tests: a flush stopped here has the double-write buffer written and
  // no page in place, as a crash would leave it.
  RETURN_IF_ERROR(FailPoint("redo.flush.after_double_write"));
  for (const auto& [key, buffered] : buffers_) {
    if (!buffered.dirty) continue;
    RETURN_IF_ERROR(dbs_[key.first].file->WritePage(key.second, buffered.page));
    // For tests: killed with some pages in place and others not.
    DAGVAULT_CRASH_POINT("redo.flush.page_written");
  }
  for (const auto& [db, unused] : dirty_dbs) RETURN_IF_ERROR(dbs_[db].file->Sync());
  // Emptied after every flush that wrote pages, also when none went
  // through it: it may still hold pages of a flush a crash interrupted
  // (Repair restores, but does not empty), which a later repair would put
  // back over newer ones.
  if (dwb_ != nullptr && !dirty_dbs.empty()) RETURN_IF_ERROR(dwb_->Clear());
  buffers_.clear();
  arena_.Reset();
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
