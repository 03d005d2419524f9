// Item-level restore in mailstored (issue 20), the two halves of Exchange's
// Recovery Database plus restore request:
//
//   - on the node holding the Recovery Database, SelectRecoveryItems walks
//     the chosen items (a mailbox's, all or some) a page at a time, with
//     their bytes; the first page checks that the mailbox and every listed
//     item are in the restore point, and names what is missing and what is
//     there instead;
//   - on the node holding the unit's active, mounted copy,
//     ApplyRestoredItems writes a page into production in one transaction,
//     by the conflict rule. That is the only way restored items reach
//     production: through the store, into the mounted active copy, so they
//     are logged and replicate to the passive copies like any write.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/replication.pb.h"
#include "dagvault/v1/writer.pb.h"
#include "mailstore/engine/engine.h"

namespace dagvault::mailstore {

inline constexpr uint64_t kDefaultItemPageBytes = 4ull << 20;

struct RecoveryItemPage {
  std::vector<dagvault::v1::RestoredItem> items;
  dagvault::v1::ItemCursor next;
  bool done = false;
};

// The selected items of `rdb` (named `rdb_name`, for messages) from
// `cursor` on: whole items up to `max_bytes` of values (one item per page
// where a single item is larger).
absl::StatusOr<RecoveryItemPage> SelectRecoveryItems(Engine& rdb, const std::string& rdb_name,
                                                     const dagvault::v1::ItemSelection& selection,
                                                     const dagvault::v1::ItemCursor& cursor,
                                                     uint64_t max_bytes);

// The highest item number of the selection's mailbox in `rdb` (0: none),
// for ApplyRestoredItemsRequest.keep_both_from.
absl::StatusOr<uint64_t> HighestItem(Engine& rdb, const dagvault::v1::ItemSelection& selection);

// Writes `request.items` into `engine` (the active copy of request.unit)
// in one transaction. Under every rule an item whose number already holds
// the same bytes is left alone; otherwise a free number gets the item,
// and a taken one is kept (skip), replaced (overwrite), or the item goes
// under the mailbox's next free number at or above keep_both_from (keep
// both; unless the same bytes already stand at or above it).
absl::StatusOr<dagvault::v1::ApplyRestoredItemsResponse> ApplyRestoredItems(
    Engine& engine, const dagvault::v1::ApplyRestoredItemsRequest& request);

}  // namespace dagvault::mailstore
