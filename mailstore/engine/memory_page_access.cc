#include "mailstore/engine/memory_page_access.h"

#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace dagvault::mailstore {

absl::StatusOr<PageRef> MemoryPageAccess::Read(PageNo pgno) {
  auto it = pages_.find(pgno);
  if (it == pages_.end()) return PageRef(std::make_shared<PageBuffer>(page_size_));
  return PageRef(it->second);
}

absl::StatusOr<uint8_t*> MemoryPageAccess::Write(PageNo pgno) {
  auto it = pages_.find(pgno);
  if (it == pages_.end()) {
    return absl::DataLossError(absl::StrFormat("page %u was never written", pgno));
  }
  return it->second->data();
}

absl::StatusOr<uint8_t*> MemoryPageAccess::Create(PageNo pgno, PageType type) {
  auto page = std::make_shared<PageBuffer>(page_size_);
  InitPage(page->data(), page_size_, pgno, type);
  pages_[pgno] = page;
  return page->data();
}

absl::StatusOr<PageRef> FilePageReader::Read(PageNo pgno) {
  auto it = cache_.find(pgno);
  if (it != cache_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first;
  }
  auto page = std::make_shared<PageBuffer>(db_.page_size());
  RETURN_IF_ERROR(db_.ReadPage(pgno, page->data()));
  if (cache_.size() >= capacity_) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(pgno);
  cache_.emplace(pgno, std::make_pair(PageRef(page), lru_.begin()));
  return PageRef(page);
}

absl::StatusOr<uint8_t*> FilePageReader::Write(PageNo) {
  return absl::FailedPreconditionError("database opened read-only");
}

absl::StatusOr<uint8_t*> FilePageReader::Create(PageNo, PageType) {
  return absl::FailedPreconditionError("database opened read-only");
}

}  // namespace dagvault::mailstore
