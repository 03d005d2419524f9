#include "mailstore/engine/buffer_cache.h"

#include "common/status_macros.h"

namespace dagvault::mailstore {

BufferCache::BufferCache(uint32_t page_size, size_t capacity_pages, Loader loader)
    : page_size_(page_size),
      capacity_(std::max<size_t>(capacity_pages, 64)),
      loader_(std::move(loader)) {}

void BufferCache::TouchLocked(uint64_t key, Frame& frame) {
  if (frame.dirty) return;
  if (frame.in_lru) {
    lru_.splice(lru_.begin(), lru_, frame.lru_it);
  } else {
    lru_.push_front(key);
    frame.lru_it = lru_.begin();
    frame.in_lru = true;
  }
}

void BufferCache::RemoveFromLruLocked(Frame& frame) {
  if (!frame.in_lru) return;
  lru_.erase(frame.lru_it);
  frame.in_lru = false;
}

void BufferCache::EvictLocked() {
  while (frames_.size() > capacity_ && !lru_.empty()) {
    uint64_t key = lru_.back();
    lru_.pop_back();
    frames_.erase(key);
  }
}

absl::StatusOr<PageRef> BufferCache::Get(uint32_t db, PageNo pgno) {
  const uint64_t key = Key(db, pgno);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = frames_.find(key);
    if (it != frames_.end()) {
      TouchLocked(key, it->second);
      return it->second.page;
    }
  }
  // Read outside the lock. A page absent from the cache is clean on disk,
  // and only a commit changes pages; commits exclude readers (the engine's
  // install lock), so nothing can change this page while it is read.
  auto page = std::make_shared<PageBuffer>(page_size_);
  RETURN_IF_ERROR(loader_(db, pgno, page->data()));
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = frames_.try_emplace(key);
  if (inserted) {
    it->second.page = page;
    TouchLocked(key, it->second);
    EvictLocked();
  }
  return it->second.page;
}

void BufferCache::Install(uint32_t db, PageNo pgno, PageRef page, Lsn first_lsn, Lsn last_lsn) {
  const uint64_t key = Key(db, pgno);
  std::lock_guard<std::mutex> lock(mu_);
  Frame& frame = frames_[key];
  frame.page = std::move(page);
  frame.version++;
  frame.last_lsn = last_lsn;
  if (!frame.dirty) {
    frame.dirty = true;
    frame.rec_lsn = first_lsn;
    dirty_++;
    RemoveFromLruLocked(frame);
  } else if (frame.flushing && !frame.changed_while_flushing) {
    frame.changed_while_flushing = true;
    frame.rec_lsn_pending = first_lsn;
  }
}

std::vector<BufferCache::DirtyPage> BufferCache::BeginFlush() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DirtyPage> out;
  out.reserve(dirty_);
  for (auto& [key, frame] : frames_) {
    if (!frame.dirty || frame.flushing) continue;
    frame.flushing = true;
    frame.changed_while_flushing = false;
    out.push_back(DirtyPage{static_cast<uint32_t>(key >> 32), static_cast<PageNo>(key), frame.page,
                            frame.last_lsn, frame.version});
  }
  return out;
}

void BufferCache::EndFlush(const std::vector<DirtyPage>& pages) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& p : pages) {
    auto it = frames_.find(Key(p.db, p.pgno));
    if (it == frames_.end()) continue;
    Frame& frame = it->second;
    frame.flushing = false;
    if (frame.version == p.version) {
      frame.dirty = false;
      dirty_--;
      TouchLocked(it->first, frame);
    } else if (frame.changed_while_flushing) {
      // The written image is older than the cached one; the page stays
      // dirty from the first change made after the snapshot.
      frame.rec_lsn = frame.rec_lsn_pending;
      frame.changed_while_flushing = false;
    }
  }
  EvictLocked();
}

std::optional<Lsn> BufferCache::OldestDirtyLsn() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<Lsn> oldest;
  for (const auto& [key, frame] : frames_) {
    if (frame.dirty && (!oldest || frame.rec_lsn < *oldest)) oldest = frame.rec_lsn;
  }
  return oldest;
}

size_t BufferCache::dirty_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dirty_;
}

size_t BufferCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return frames_.size();
}

void BufferCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  frames_.clear();
  lru_.clear();
  dirty_ = 0;
}

}  // namespace dagvault::mailstore
