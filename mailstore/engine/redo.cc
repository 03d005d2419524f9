#include "mailstore/engine/redo.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "mailstore/format/page.h"

namespace dagvault::mailstore {

absl::StatusOr<RedoApplier::CachedPage*> RedoApplier::GetPage(uint32_t db, PageNo pgno) {
  auto key = std::make_pair(db, pgno);
  auto it = cache_.find(key);
  if (it != cache_.end()) return &it->second;
  const uint32_t page_size = dbs_[db]->page_size();
  auto buffer = std::make_shared<PageBuffer>(page_size);
  bool complete = true;
  RETURN_IF_ERROR(dbs_[db]->ReadPageForRedo(pgno, buffer->data(), &complete));
  // A damaged or cut-short page is acceptable only if an image overwrites
  // it; the delta path below refuses it.
  CachedPage cp;
  cp.valid = complete && VerifyPage(buffer->data(), page_size, pgno).ok();
  cp.dbtime = PageDbTime(buffer->data());
  StoreU32(buffer->data() + page_offsets::kChecksum, 0);
  if (mode_ == Mode::kApply) cp.page = std::move(buffer);
  return &cache_.emplace(key, std::move(cp)).first->second;
}

absl::Status RedoApplier::Apply(RecordType type, uint8_t db_index, Lsn lsn, const uint8_t* body,
                                uint32_t body_size) {
  if (db_index >= dbs_.size() || dbs_[db_index] == nullptr) {
    not_attached_++;
    return absl::OkStatus();
  }
  DatabaseFile* db = dbs_[db_index];
  const uint32_t page_size = db->page_size();
  LogRecordView view{type, db_index, lsn, body, body_size, 0};
  auto mismatch = [&](PageNo pgno, const char* what) {
    return absl::DataLossError(absl::StrFormat("log record at %s for page %u of %s: %s",
                                               lsn.ToString(), pgno, db->path(), what));
  };

  PageNo pgno;
  DbTime before = 0, after;
  const uint8_t* image = nullptr;       // whole image
  std::optional<PageDeltaBody> ranges;  // delta or sparse image
  if (type == RecordType::kPageImage) {
    ASSIGN_OR_RETURN(PageImageBody body_image, DecodePageImage(view, page_size));
    pgno = body_image.pgno;
    after = body_image.dbtime_after;
    image = body_image.page;
    if (PagePgno(image) != pgno || PageDbTime(image) != after) {
      return mismatch(pgno, "the image's own page number or dbtime disagrees with the record");
    }
  } else {
    ASSIGN_OR_RETURN(ranges, DecodePageDelta(view, page_size));
    pgno = ranges->pgno;
    before = ranges->dbtime_before;
    after = ranges->dbtime_after;
    if (after <= before) return mismatch(pgno, "dbtime does not increase");
  }
  const bool is_image = type != RecordType::kPageDelta;
  ASSIGN_OR_RETURN(CachedPage * cp, GetPage(db_index, pgno));
  max_dbtime_[db_index] = std::max(max_dbtime_[db_index], after);

  if (cp->valid && cp->dbtime >= after) {
    skipped_++;  // the page already holds this change
    return absl::OkStatus();
  }
  if (!is_image) {
    if (!cp->valid) {
      return absl::DataLossError(absl::StrFormat(
          "%s: page %u is damaged and the log record at %s holds only a change to it", db->path(),
          pgno, lsn.ToString()));
    }
    if (cp->dbtime != before) {
      return absl::DataLossError(absl::StrFormat(
          "%s: page %u has dbtime %u but the log record at %s changes it from dbtime %u: a change "
          "is missing (a log or a page write was lost)",
          db->path(), pgno, cp->dbtime, lsn.ToString(), before));
    }
  }
  if (cp->page != nullptr) {
    uint8_t* page = cp->page->data();
    if (image != nullptr) {
      std::memcpy(page, image, page_size);
    } else {
      if (is_image) std::memset(page, 0, page_size);
      RETURN_IF_ERROR(ApplyPageDelta(*ranges, page, page_size));
      SetPageDbTime(page, after);
    }
    StoreU32(page + page_offsets::kChecksum, 0);
    if (is_image && PagePgno(page) != pgno) {
      return mismatch(pgno, "the rebuilt page carries another page number");
    }
  }
  cp->valid = true;
  cp->dbtime = after;
  cp->dirty = true;
  applied_++;
  return absl::OkStatus();
}

absl::Status RedoApplier::Flush(Generation generation) {
  if (mode_ == Mode::kDryRun) return absl::OkStatus();
  std::map<uint32_t, DbTime> dirty_dbs;  // database -> highest dbtime about to be written
  for (const auto& [key, cp] : cache_) {
    if (cp.dirty) dirty_dbs[key.first] = std::max(dirty_dbs[key.first], cp.dbtime);
  }
  for (const auto& [db, high_dbtime] : dirty_dbs) {
    const DbHeader current = dbs_[db]->header();
    if (current.log_required_max < generation || current.state != DbState::kDirtyShutdown ||
        current.dbtime < high_dbtime) {
      RETURN_IF_ERROR(dbs_[db]->UpdateHeader([&](DbHeader& h) {
        h.dbtime = std::max(h.dbtime, high_dbtime);
        if (h.state != DbState::kDirtyShutdown) {
          h.state = DbState::kDirtyShutdown;
          h.log_required_min = start_generation_;
        }
        h.log_required_max = std::max(h.log_required_max, generation);
      }));
    }
  }
  for (auto& [key, cp] : cache_) {
    if (!cp.dirty) continue;
    RETURN_IF_ERROR(dbs_[key.first]->WritePage(key.second, cp.page->data()));
    cp.dirty = false;
  }
  for (const auto& [db, unused] : dirty_dbs) RETURN_IF_ERROR(dbs_[db]->Sync());
  cache_.clear();
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
