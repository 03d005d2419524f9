// The B+tree of one database, over a PageAccess. Leaves hold item records;
// internal pages hold separators. The root stays at page 3: when it splits,
// its contents move to a new child, as in ESE. Leaves that become empty are
// freed and unlinked from their parent; a root left with a single child
// takes that child's contents back.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mailstore/engine/btree_page.h"
#include "mailstore/engine/page_access.h"
#include "mailstore/engine/space_map.h"

namespace dagvault::mailstore {

class BTree {
 public:
  // `space` may be null for read-only use.
  BTree(PageAccess& access, SpaceMap* space) : access_(access), space_(space) {}

  // A copy of the leaf record with this key, if any.
  absl::StatusOr<std::optional<std::string>> Find(const uint8_t key[kKeySize]);
  // Inserts the record, or replaces the one with the same key. Returns the
  // replaced record.
  absl::StatusOr<std::optional<std::string>> Upsert(const uint8_t* record, uint32_t size);
  // Removes the record with this key; returns it.
  absl::StatusOr<std::optional<std::string>> Remove(const uint8_t key[kKeySize]);

  // Calls fn on each leaf record with key >= start, in key order, until fn
  // returns false or an error.
  using ScanFn = std::function<absl::StatusOr<bool>(const uint8_t* record, uint32_t size)>;
  absl::Status Scan(const uint8_t start[kKeySize], const ScanFn& fn);

  // Visits every page of the tree (for structural checks): fn(pgno, page).
  using VisitFn = std::function<absl::Status(PageNo, const uint8_t* page)>;
  absl::Status VisitPages(const VisitFn& fn);

 private:
  struct PathEntry {
    PageNo pgno;
    int slot;  // separator slot followed to the next level; -1 for leftmost
  };
  absl::StatusOr<std::vector<PathEntry>> Descend(const uint8_t key[kKeySize]);
  absl::Status InsertAt(std::vector<PathEntry>& path, size_t depth, const uint8_t* record,
                        uint32_t size);
  absl::Status RemoveChild(std::vector<PathEntry>& path, size_t depth);
  absl::Status CollapseRoot();
  absl::Status AdjustHeight(int delta);
  absl::Status VisitSubtree(PageNo pgno, int expected_level, const VisitFn& fn);

  PageAccess& access_;
  SpaceMap* space_;
};

}  // namespace dagvault::mailstore
