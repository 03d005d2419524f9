// Page allocation from bitmap pages: one bit per page, 1 = allocated. The
// lowest free page is taken first, so space freed by deletes is reused and
// the file grows only when every earlier page is in use.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "mailstore/engine/page_access.h"

namespace dagvault::mailstore {

// Per-database search hints, kept in memory between transactions. They only
// ever point at or before the first free bit; an abort resets them.
struct SpaceHints {
  uint32_t first_open_map = 0;
  std::vector<uint32_t> word_hint;
  void Reset() {
    first_open_map = 0;
    word_hint.clear();
  }
};

class SpaceMap {
 public:
  SpaceMap(PageAccess& access, SpaceHints& hints) : access_(access), hints_(hints) {}

  absl::StatusOr<PageNo> Allocate();
  // Clears the page's bit. Freeing a free page or a system page is a
  // DataLoss error: it means the structures disagree.
  absl::Status Free(PageNo pgno);
  absl::StatusOr<bool> IsAllocated(PageNo pgno);

  static bool IsSystemPage(PageNo pgno, uint32_t page_size);

 private:
  PageAccess& access_;
  SpaceHints& hints_;
};

// Writes the fixed pages of a new database (meta, empty root leaf, space map
// 0) through `access`.
absl::Status FormatNewDatabase(PageAccess& access);

}  // namespace dagvault::mailstore
