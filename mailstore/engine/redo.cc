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
  CachedPage cp{std::make_shared<PageBuffer>(page_size), true};
  RETURN_IF_ERROR(dbs_[db]->ReadPageRaw(pgno, cp.page->data()));
  // A damaged page is acceptable only if a full image overwrites it; the
  // delta path below refuses it.
  cp.valid = VerifyPage(cp.page->data(), page_size, pgno).ok();
  StoreU32(cp.page->data() + page_offsets::kChecksum, 0);
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
  current_generation_ = std::max(current_generation_, lsn.generation);
  touched_[db_index] = true;

  if (type == RecordType::kPageImage) {
    ASSIGN_OR_RETURN(PageImageBody image, DecodePageImage(view, page_size));
    ASSIGN_OR_RETURN(CachedPage * cp, GetPage(db_index, image.pgno));
    max_dbtime_[db_index] = std::max(max_dbtime_[db_index], image.dbtime_after);
    if (cp->valid && PageDbTime(cp->page->data()) >= image.dbtime_after) {
      skipped_++;
      return absl::OkStatus();
    }
    std::memcpy(cp->page->data(), image.page, page_size);
    StoreU32(cp->page->data() + page_offsets::kChecksum, 0);
    cp->valid = true;
    cp->dirty = true;
    applied_++;
  } else if (type == RecordType::kPageImageSparse) {
    ASSIGN_OR_RETURN(PageDeltaBody sparse, DecodePageDelta(view, page_size));
    ASSIGN_OR_RETURN(CachedPage * cp, GetPage(db_index, sparse.pgno));
    max_dbtime_[db_index] = std::max(max_dbtime_[db_index], sparse.dbtime_after);
    if (cp->valid && PageDbTime(cp->page->data()) >= sparse.dbtime_after) {
      skipped_++;
      return absl::OkStatus();
    }
    std::memset(cp->page->data(), 0, page_size);
    RETURN_IF_ERROR(ApplyPageDelta(sparse, cp->page->data(), page_size));
    cp->valid = true;
    cp->dirty = true;
    applied_++;
  } else {
    ASSIGN_OR_RETURN(PageDeltaBody delta, DecodePageDelta(view, page_size));
    ASSIGN_OR_RETURN(CachedPage * cp, GetPage(db_index, delta.pgno));
    max_dbtime_[db_index] = std::max(max_dbtime_[db_index], delta.dbtime_after);
    if (!cp->valid) {
      return absl::DataLossError(absl::StrFormat(
          "%s: page %u is damaged and the log record at %s holds only a change to it", db->path(),
          delta.pgno, lsn.ToString()));
    }
    const DbTime have = PageDbTime(cp->page->data());
    if (have >= delta.dbtime_after) {
      skipped_++;
      return absl::OkStatus();
    }
    if (have != delta.dbtime_before) {
      return absl::DataLossError(absl::StrFormat(
          "%s: page %u has dbtime %u but the log record at %s changes it from dbtime %u: a change "
          "is missing (a log or a page write was lost)",
          db->path(), delta.pgno, have, lsn.ToString(), delta.dbtime_before));
    }
    RETURN_IF_ERROR(ApplyPageDelta(delta, cp->page->data(), page_size));
    SetPageDbTime(cp->page->data(), delta.dbtime_after);
    cp->dirty = true;
    applied_++;
  }
  if (cache_.size() > max_cached_) return Flush(current_generation_);
  return absl::OkStatus();
}

absl::Status RedoApplier::Flush(Generation generation) {
  std::map<uint32_t, bool> dirty_dbs;
  for (const auto& [key, cp] : cache_) {
    if (cp.dirty) dirty_dbs[key.first] = true;
  }
  for (const auto& [db, unused] : dirty_dbs) {
    if (dbs_[db]->header().log_required_max < generation ||
        dbs_[db]->header().state != DbState::kDirtyShutdown) {
      RETURN_IF_ERROR(dbs_[db]->UpdateHeader([&](DbHeader& h) {
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
