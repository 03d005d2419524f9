#include "mailstore/engine/btree_page.h"

#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_format.h"

namespace dagvault::mailstore {

std::string ItemKey::ToString() const { return absl::StrFormat("%u/%u", mailbox, item); }

uint32_t MaxRecordSize(uint32_t page_size) { return (page_size - btree_layout::kSlots) / 4 - 2; }

uint32_t MaxInlineValue(uint32_t page_size) {
  return MaxRecordSize(page_size) - leaf_record::kInlineData;
}

void BTreePage::Init(uint8_t* page, uint32_t page_size, PageNo pgno, uint8_t level,
                     PageNo leftmost) {
  InitPage(page, page_size, pgno, level == 0 ? PageType::kBTreeLeaf : PageType::kBTreeInternal);
  page[btree_layout::kLevel] = level;
  BTreePage p(page, page_size);
  p.SetHeapStart(page_size);
  p.set_leftmost(leftmost);
}

uint32_t BTreePage::HeapStart() const {
  // Stored as u16; a 32 KiB page stores 32768, which fits.
  return LoadU16(page_ + btree_layout::kHeapStart);
}

void BTreePage::SetHeapStart(uint32_t v) {
  StoreU16(page_ + btree_layout::kHeapStart, static_cast<uint16_t>(v));
}

uint32_t BTreePage::RecordSizeAt(const uint8_t* record, bool leaf) {
  if (!leaf) return kInternalRecordSize;
  if (record[leaf_record::kKind] == leaf_record::kLong) return leaf_record::kLongSize;
  return leaf_record::kInlineData + LoadU32(record + leaf_record::kInlineLength);
}

int BTreePage::LowerBound(const uint8_t key[kKeySize]) const {
  int lo = 0, hi = slot_count();
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (std::memcmp(Key(mid), key, kKeySize) < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

int BTreePage::Find(const uint8_t key[kKeySize]) const {
  int i = LowerBound(key);
  if (i < slot_count() && std::memcmp(Key(i), key, kKeySize) == 0) return i;
  return -1;
}

PageNo BTreePage::ChildFor(const uint8_t key[kKeySize], int* slot) const {
  // The last separator <= key leads to the child; none means the leftmost.
  int i = LowerBound(key);
  if (i < slot_count() && std::memcmp(Key(i), key, kKeySize) == 0) {
    *slot = i;
    return Child(i);
  }
  *slot = i - 1;
  return i == 0 ? leftmost() : Child(i - 1);
}

uint32_t BTreePage::ContiguousFree() const {
  return HeapStart() - (btree_layout::kSlots + 2 * slot_count());
}

uint32_t BTreePage::UsedBytes() const {
  return (page_size_ - HeapStart()) - LoadU16(page_ + btree_layout::kFragBytes);
}

void BTreePage::Insert(int i, const uint8_t* record, uint32_t size) {
  if (ContiguousFree() < size + 2) Compact();
  const uint16_t n = slot_count();
  const uint32_t start = HeapStart() - size;
  std::memcpy(page_ + start, record, size);
  SetHeapStart(start);
  uint8_t* slots = page_ + btree_layout::kSlots;
  std::memmove(slots + 2 * (i + 1), slots + 2 * i, 2 * (n - i));
  SetSlotOffset(i, static_cast<uint16_t>(start));
  StoreU16(page_ + btree_layout::kSlotCount, n + 1);
}

void BTreePage::Remove(int i) {
  const uint16_t n = slot_count();
  const uint32_t size = RecordSize(i);
  uint8_t* slots = page_ + btree_layout::kSlots;
  std::memmove(slots + 2 * i, slots + 2 * (i + 1), 2 * (n - i - 1));
  StoreU16(slots + 2 * (n - 1), 0);
  StoreU16(page_ + btree_layout::kSlotCount, n - 1);
  if (n == 1) {
    SetHeapStart(page_size_);
    StoreU16(page_ + btree_layout::kFragBytes, 0);
  } else {
    StoreU16(page_ + btree_layout::kFragBytes,
             static_cast<uint16_t>(LoadU16(page_ + btree_layout::kFragBytes) + size));
  }
}

bool BTreePage::ReplaceInPlace(int i, const uint8_t* record, uint32_t size) {
  const uint32_t old_size = RecordSize(i);
  if (size > old_size) return false;
  std::memcpy(page_ + SlotOffset(i), record, size);
  if (old_size > size) {
    StoreU16(page_ + btree_layout::kFragBytes,
             static_cast<uint16_t>(LoadU16(page_ + btree_layout::kFragBytes) + old_size - size));
  }
  return true;
}

void BTreePage::Compact() {
  const uint16_t n = slot_count();
  std::vector<uint8_t> heap;
  heap.reserve(page_size_);
  std::vector<uint32_t> sizes(n);
  for (int i = 0; i < n; ++i) {
    sizes[i] = RecordSize(i);
    heap.insert(heap.end(), Record(i), Record(i) + sizes[i]);
  }
  // Zero the old heap so stale bytes neither leak nor inflate deltas later.
  std::memset(page_ + btree_layout::kSlots + 2 * n, 0, page_size_ - (btree_layout::kSlots + 2 * n));
  uint32_t pos = page_size_;
  size_t src = heap.size();
  for (int i = n - 1; i >= 0; --i) {
    pos -= sizes[i];
    src -= sizes[i];
    std::memcpy(page_ + pos, heap.data() + src, sizes[i]);
    SetSlotOffset(i, static_cast<uint16_t>(pos));
  }
  SetHeapStart(pos);
  StoreU16(page_ + btree_layout::kFragBytes, 0);
}

void BTreePage::MoveTail(int from, BTreePage& right) {
  const uint16_t n = slot_count();
  for (int i = from; i < n; ++i) {
    right.Insert(right.slot_count(), Record(i), RecordSize(i));
  }
  for (int i = n - 1; i >= from; --i) Remove(i);
}

int BTreePage::SplitPoint() const {
  const uint16_t n = slot_count();
  uint32_t total = 0;
  for (int i = 0; i < n; ++i) total += RecordSize(i) + 2;
  uint32_t acc = 0;
  for (int i = 0; i < n; ++i) {
    acc += RecordSize(i) + 2;
    if (acc >= total / 2) return std::max(1, std::min<int>(i + 1, n - 1));
  }
  return n / 2;
}

absl::Status BTreePage::Validate(PageNo pgno) const {
  const uint16_t n = slot_count();
  const uint32_t heap = HeapStart();
  auto fail = [&](const std::string& what) {
    return absl::DataLossError(absl::StrFormat("page %u: %s", pgno, what));
  };
  if (btree_layout::kSlots + 2u * n > heap || heap > page_size_) {
    return fail(absl::StrFormat("slot array (%u slots) overlaps the record heap at %u", n, heap));
  }
  for (int i = 0; i < n; ++i) {
    const uint32_t off = SlotOffset(i);
    if (off < heap || off + kKeySize + 1 > page_size_) {
      return fail(absl::StrFormat("slot %d points outside the record heap (offset %u)", i, off));
    }
    if (off + RecordSize(i) > page_size_) {
      return fail(absl::StrFormat("record %d (offset %u, %u bytes) runs past the page end", i, off,
                                  RecordSize(i)));
    }
    if (is_leaf()) {
      const uint8_t kind = Record(i)[leaf_record::kKind];
      if (kind != leaf_record::kInline && kind != leaf_record::kLong) {
        return fail(absl::StrFormat("record %d has unknown kind %u", i, kind));
      }
    }
    if (i > 0 && std::memcmp(Key(i - 1), Key(i), kKeySize) >= 0) {
      return fail(absl::StrFormat("keys out of order at slot %d (%s after %s)", i,
                                  ItemKey::Decode(Key(i)).ToString(),
                                  ItemKey::Decode(Key(i - 1)).ToString()));
    }
  }
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
