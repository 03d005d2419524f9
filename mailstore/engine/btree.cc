#include "mailstore/engine/btree.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "mailstore/engine/layout.h"

namespace dagvault::mailstore {
namespace {

constexpr int kMaxDepth = 32;

bool IsTreePage(const uint8_t* page) {
  PageType t = PageTypeOf(page);
  return t == PageType::kBTreeLeaf || t == PageType::kBTreeInternal;
}

absl::Status NotTreePage(PageNo pgno, const uint8_t* page) {
  return absl::DataLossError(absl::StrFormat("page %u: expected a B-tree page, found a %s page",
                                             pgno, PageTypeName(PageTypeOf(page))));
}

}  // namespace

absl::StatusOr<std::vector<BTree::PathEntry>> BTree::Descend(const uint8_t key[kKeySize]) {
  std::vector<PathEntry> path;
  PageNo pgno = kRootPage;
  for (int depth = 0; depth < kMaxDepth; ++depth) {
    ASSIGN_OR_RETURN(PageRef page, access_.Read(pgno));
    if (!IsTreePage(page->data())) return NotTreePage(pgno, page->data());
    BTreePage bp(page->data(), access_.page_size());
    if (bp.is_leaf()) {
      path.push_back({pgno, -1});
      return path;
    }
    int slot;
    PageNo child = bp.ChildFor(key, &slot);
    path.push_back({pgno, slot});
    pgno = child;
  }
  return absl::DataLossError(absl::StrFormat("B-tree deeper than %d levels (a cycle?)", kMaxDepth));
}

absl::StatusOr<std::optional<std::string>> BTree::Find(const uint8_t key[kKeySize]) {
  ASSIGN_OR_RETURN(auto path, Descend(key));
  ASSIGN_OR_RETURN(PageRef leaf, access_.Read(path.back().pgno));
  BTreePage bp(leaf->data(), access_.page_size());
  int i = bp.Find(key);
  if (i < 0) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(bp.Record(i)), bp.RecordSize(i));
}

absl::StatusOr<std::optional<std::string>> BTree::Upsert(const uint8_t* record, uint32_t size) {
  if (size > MaxRecordSize(access_.page_size())) {
    return absl::InvalidArgumentError(absl::StrFormat("record of %u bytes is too large", size));
  }
  ASSIGN_OR_RETURN(auto path, Descend(record));
  const PageNo leaf_pgno = path.back().pgno;
  ASSIGN_OR_RETURN(uint8_t * leaf, access_.Write(leaf_pgno));
  BTreePage bp(leaf, access_.page_size());
  std::optional<std::string> old;
  int i = bp.Find(record);
  if (i >= 0) {
    old.emplace(reinterpret_cast<const char*>(bp.Record(i)), bp.RecordSize(i));
    if (bp.ReplaceInPlace(i, record, size)) return old;
    bp.Remove(i);
  }
  RETURN_IF_ERROR(InsertAt(path, path.size() - 1, record, size));
  return old;
}

absl::Status BTree::InsertAt(std::vector<PathEntry>& path, size_t depth, const uint8_t* record,
                             uint32_t size) {
  const uint32_t page_size = access_.page_size();
  ASSIGN_OR_RETURN(uint8_t * page, access_.Write(path[depth].pgno));
  BTreePage bp(page, page_size);
  if (bp.CanInsert(size)) {
    bp.Insert(bp.LowerBound(record), record, size);
    return absl::OkStatus();
  }
  if (space_ == nullptr) return absl::FailedPreconditionError("read-only B-tree");

  if (depth == 0) {
    // Root split: move the root's contents into a new child and make the
    // root an internal page above it; then split that child normally.
    ASSIGN_OR_RETURN(PageNo child, space_->Allocate());
    ASSIGN_OR_RETURN(uint8_t * cpage, access_.Create(child, PageTypeOf(page)));
    std::memcpy(cpage + kPageHeaderSize, page + kPageHeaderSize, page_size - kPageHeaderSize);
    const uint8_t level = bp.level();
    BTreePage::Init(page, page_size, kRootPage, static_cast<uint8_t>(level + 1), child);
    // The child now holds the slots the root had, so the slot followed
    // within the root is the slot to follow within the child.
    const int child_slot = path[0].slot;
    path[0].slot = -1;
    path.insert(path.begin() + 1, PathEntry{child, child_slot});
    RETURN_IF_ERROR(AdjustHeight(+1));
    return InsertAt(path, 1, record, size);
  }

  ASSIGN_OR_RETURN(PageNo right_pgno, space_->Allocate());
  ASSIGN_OR_RETURN(uint8_t * right_page, access_.Create(right_pgno, PageTypeOf(page)));
  BTreePage::Init(right_page, page_size, right_pgno, bp.level(), 0);
  BTreePage right(right_page, page_size);
  bp.MoveTail(bp.SplitPoint(), right);

  uint8_t separator[kInternalRecordSize];
  std::memcpy(separator, right.Key(0), kKeySize);
  StoreU32(separator + kKeySize, right_pgno);
  if (!bp.is_leaf()) {
    // In an internal split the first separator of the right half moves up;
    // its child becomes the right page's leftmost child.
    right.set_leftmost(right.Child(0));
    right.Remove(0);
  }
  BTreePage& target = std::memcmp(record, separator, kKeySize) >= 0 ? right : bp;
  if (!target.CanInsert(size)) {
    return absl::InternalError(absl::StrFormat("split of page %u left no room for a %u-byte record",
                                               path[depth].pgno, size));
  }
  target.Insert(target.LowerBound(record), record, size);
  return InsertAt(path, depth - 1, separator, kInternalRecordSize);
}

absl::StatusOr<std::optional<std::string>> BTree::Remove(const uint8_t key[kKeySize]) {
  ASSIGN_OR_RETURN(auto path, Descend(key));
  ASSIGN_OR_RETURN(PageRef leaf_ro, access_.Read(path.back().pgno));
  int i = BTreePage(leaf_ro->data(), access_.page_size()).Find(key);
  if (i < 0) return std::nullopt;
  ASSIGN_OR_RETURN(uint8_t * leaf, access_.Write(path.back().pgno));
  BTreePage bp(leaf, access_.page_size());
  std::optional<std::string> old(std::in_place, reinterpret_cast<const char*>(bp.Record(i)),
                                 bp.RecordSize(i));
  bp.Remove(i);
  if (bp.slot_count() == 0 && path.size() > 1) {
    if (space_ == nullptr) return absl::FailedPreconditionError("read-only B-tree");
    RETURN_IF_ERROR(RemoveChild(path, path.size() - 1));
  }
  return old;
}

// Unlinks the (now empty) page path[depth] from its parent and frees it.
absl::Status BTree::RemoveChild(std::vector<PathEntry>& path, size_t depth) {
  const PageNo child = path[depth].pgno;
  const size_t parent_depth = depth - 1;
  ASSIGN_OR_RETURN(uint8_t * parent, access_.Write(path[parent_depth].pgno));
  BTreePage bp(parent, access_.page_size());
  const int slot = path[parent_depth].slot;
  bool parent_empty = false;
  if (slot >= 0) {
    bp.Remove(slot);
  } else if (bp.slot_count() > 0) {
    bp.set_leftmost(bp.Child(0));
    bp.Remove(0);
  } else {
    parent_empty = true;
  }
  RETURN_IF_ERROR(space_->Free(child));

  if (parent_empty) {
    if (parent_depth == 0) {
      // The whole tree is empty: the root becomes an empty leaf.
      BTreePage::Init(parent, access_.page_size(), kRootPage, 0, 0);
      ASSIGN_OR_RETURN(PageRef meta, access_.Read(kMetaPage));
      return AdjustHeight(1 - static_cast<int>(LoadU32(meta->data() + meta_layout::kTreeHeight)));
    }
    return RemoveChild(path, parent_depth);
  }
  if (parent_depth == 0) return CollapseRoot();
  return absl::OkStatus();
}

absl::Status BTree::CollapseRoot() {
  const uint32_t page_size = access_.page_size();
  for (;;) {
    ASSIGN_OR_RETURN(uint8_t * root, access_.Write(kRootPage));
    BTreePage bp(root, page_size);
    if (bp.is_leaf() || bp.slot_count() > 0) return absl::OkStatus();
    const PageNo child = bp.leftmost();
    ASSIGN_OR_RETURN(PageRef cpage, access_.Read(child));
    std::memcpy(root + kPageHeaderSize, cpage->data() + kPageHeaderSize,
                page_size - kPageHeaderSize);
    root[page_offsets::kType] = cpage->data()[page_offsets::kType];
    RETURN_IF_ERROR(space_->Free(child));
    RETURN_IF_ERROR(AdjustHeight(-1));
  }
}

absl::Status BTree::AdjustHeight(int delta) {
  ASSIGN_OR_RETURN(uint8_t * meta, access_.Write(kMetaPage));
  StoreU32(
      meta + meta_layout::kTreeHeight,
      static_cast<uint32_t>(static_cast<int>(LoadU32(meta + meta_layout::kTreeHeight)) + delta));
  return absl::OkStatus();
}

absl::Status BTree::Scan(const uint8_t start[kKeySize], const ScanFn& fn) {
  struct Frame {
    PageRef page;
    int next;  // next separator slot whose child to visit
  };
  const uint32_t page_size = access_.page_size();
  std::vector<Frame> stack;
  // Descend to the leaf that may hold `start`, remembering where to resume.
  PageNo pgno = kRootPage;
  bool first_leaf = true;
  for (;;) {
    ASSIGN_OR_RETURN(PageRef page, access_.Read(pgno));
    if (!IsTreePage(page->data())) return NotTreePage(pgno, page->data());
    BTreePage bp(page->data(), page_size);
    if (!bp.is_leaf()) {
      if (stack.size() >= kMaxDepth) return absl::DataLossError("B-tree too deep (a cycle?)");
      int slot = -1;
      PageNo child = first_leaf ? bp.ChildFor(start, &slot) : bp.leftmost();
      stack.push_back({page, slot + 1});
      pgno = child;
      continue;
    }
    for (int i = first_leaf ? bp.LowerBound(start) : 0; i < bp.slot_count(); ++i) {
      ASSIGN_OR_RETURN(bool more, fn(bp.Record(i), bp.RecordSize(i)));
      if (!more) return absl::OkStatus();
    }
    first_leaf = false;
    // Climb to the nearest ancestor with an unvisited child.
    for (;;) {
      if (stack.empty()) return absl::OkStatus();
      Frame& top = stack.back();
      BTreePage parent(top.page->data(), page_size);
      if (top.next < parent.slot_count()) {
        pgno = parent.Child(top.next++);
        break;
      }
      stack.pop_back();
    }
  }
}

absl::Status BTree::VisitPages(const VisitFn& fn) {
  ASSIGN_OR_RETURN(PageRef root, access_.Read(kRootPage));
  if (!IsTreePage(root->data())) return NotTreePage(kRootPage, root->data());
  return VisitSubtree(kRootPage, BTreePage(root->data(), access_.page_size()).level(), fn);
}

absl::Status BTree::VisitSubtree(PageNo pgno, int expected_level, const VisitFn& fn) {
  ASSIGN_OR_RETURN(PageRef page, access_.Read(pgno));
  if (!IsTreePage(page->data())) return NotTreePage(pgno, page->data());
  BTreePage bp(page->data(), access_.page_size());
  if (bp.level() != expected_level) {
    return absl::DataLossError(
        absl::StrFormat("page %u: level %u, expected %d", pgno, bp.level(), expected_level));
  }
  RETURN_IF_ERROR(bp.Validate(pgno));
  RETURN_IF_ERROR(fn(pgno, page->data()));
  if (bp.is_leaf()) return absl::OkStatus();
  RETURN_IF_ERROR(VisitSubtree(bp.leftmost(), expected_level - 1, fn));
  for (int i = 0; i < bp.slot_count(); ++i) {
    RETURN_IF_ERROR(VisitSubtree(bp.Child(i), expected_level - 1, fn));
  }
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
