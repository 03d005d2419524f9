// Items of one database: (mailbox, item id) -> value. Small values live in
// the leaf; larger ones on long-value pages. The meta page counts items and
// value bytes, which `check --deep` cross-checks against the tree.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mailstore/engine/btree.h"
#include "mailstore/engine/btree_page.h"
#include "mailstore/engine/layout.h"
#include "mailstore/engine/page_access.h"
#include "mailstore/engine/space_map.h"

namespace dagvault::mailstore {

struct ItemInfo {
  ItemKey key;
  uint64_t size = 0;
};

struct MetaInfo {
  uint64_t item_count = 0;
  uint64_t value_bytes = 0;
  uint32_t tree_height = 0;
  uint32_t space_map_count = 0;
};

class ItemTable {
 public:
  // `hints` is null for read-only access.
  ItemTable(PageAccess& access, SpaceHints* hints);

  absl::StatusOr<std::optional<std::string>> Get(const ItemKey& key);
  absl::Status Put(const ItemKey& key, absl::string_view value);
  // Returns false when there was no such item.
  absl::StatusOr<bool> Delete(const ItemKey& key);
  // Items of a mailbox with id >= start_item, at most `limit` of them.
  absl::StatusOr<std::vector<ItemInfo>> List(uint64_t mailbox, uint64_t start_item, size_t limit);
  // The lowest mailbox number >= `mailbox` that holds an item, if any.
  absl::StatusOr<std::optional<uint64_t>> FirstMailboxFrom(uint64_t mailbox);
  // Every item with its value, in key order.
  using ItemFn = std::function<absl::Status(const ItemKey&, absl::string_view value)>;
  absl::Status ForEach(const ItemFn& fn);

  absl::StatusOr<MetaInfo> Meta();

 private:
  absl::StatusOr<std::string> ValueOf(const uint8_t* record);
  absl::Status AddToMeta(int64_t items, int64_t bytes);

  PageAccess& access_;
  std::optional<SpaceMap> space_;
  BTree tree_;
};

// Length of the value a leaf record describes.
uint64_t RecordValueLength(const uint8_t* record);

}  // namespace dagvault::mailstore
