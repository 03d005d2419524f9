// PageAccess implementations that are not transactions:
//  - MemoryPageAccess: pages in a map; used to format new databases and by
//    unit tests of the page structures.
//  - FilePageReader: read-only pages straight from an .edb file, verified,
//    with a small cache; used by digest, check --deep and offline tools.
#pragma once

#include <list>
#include <map>
#include <unordered_map>

#include "mailstore/engine/database_file.h"
#include "mailstore/engine/page_access.h"

namespace dagvault::mailstore {

class MemoryPageAccess : public PageAccess {
 public:
  explicit MemoryPageAccess(uint32_t page_size) : page_size_(page_size) {}
  uint32_t page_size() const override { return page_size_; }
  absl::StatusOr<PageRef> Read(PageNo pgno) override;
  absl::StatusOr<uint8_t*> Write(PageNo pgno) override;
  absl::StatusOr<uint8_t*> Create(PageNo pgno, PageType type) override;

  const std::map<PageNo, std::shared_ptr<PageBuffer>>& pages() const { return pages_; }

 private:
  uint32_t page_size_;
  std::map<PageNo, std::shared_ptr<PageBuffer>> pages_;
};

class FilePageReader : public PageAccess {
 public:
  explicit FilePageReader(const DatabaseFile& db, size_t cache_pages = 4096)
      : db_(db), capacity_(cache_pages) {}
  uint32_t page_size() const override { return db_.page_size(); }
  absl::StatusOr<PageRef> Read(PageNo pgno) override;
  absl::StatusOr<uint8_t*> Write(PageNo pgno) override;
  absl::StatusOr<uint8_t*> Create(PageNo pgno, PageType type) override;

 private:
  const DatabaseFile& db_;
  size_t capacity_;
  std::list<PageNo> lru_;
  std::unordered_map<PageNo, std::pair<PageRef, std::list<PageNo>::iterator>> cache_;
};

}  // namespace dagvault::mailstore
