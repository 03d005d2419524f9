// A write transaction. One runs at a time per unit (as in ESE, writes are
// serialised); it changes private copies of pages and, at commit, logs them
// and installs them into the cache in one step. Nothing of an aborted or
// crashed transaction ever reaches the log, so recovery needs no undo.
//
// Commit returns once the transaction's log records are durable. While one
// transaction waits for its fsync, the next one already runs: that is what
// lets group commit gather many commits into one fsync.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mailstore/engine/item_table.h"
#include "mailstore/engine/page_access.h"
#include "mailstore/format/types.h"

namespace dagvault::mailstore {

class Engine;

class Transaction {
 public:
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  absl::StatusOr<std::optional<std::string>> Get(uint32_t db, const ItemKey& key);
  absl::Status Put(uint32_t db, const ItemKey& key, absl::string_view value);
  absl::StatusOr<bool> Delete(uint32_t db, const ItemKey& key);
  absl::StatusOr<std::vector<ItemInfo>> List(uint32_t db, uint64_t mailbox, uint64_t start_item,
                                             size_t limit);

  // Makes the transaction durable. Returns the log position just past its
  // commit record. After an error in any operation, Commit fails and the
  // transaction is rolled back.
  absl::StatusOr<Lsn> Commit();
  // Discards every change. Safe to call more than once.
  void Abort();

 private:
  friend class Engine;
  class DbAccess;
  struct PrivatePage {
    std::shared_ptr<PageBuffer> current;
    PageRef original;  // null for pages created by this transaction
    bool fresh = false;
  };

  Transaction(Engine* engine, std::unique_lock<std::mutex> writer_lock);
  absl::Status CheckUsable(uint32_t db) const;
  // Records the first error of a mutating operation: the private pages may
  // be half-changed, so the transaction can only be rolled back.
  absl::Status Poison(absl::Status status);
  ItemTable Table(uint32_t db);
  void Release();

  Engine* engine_;
  std::unique_lock<std::mutex> writer_lock_;
  std::map<uint64_t, PrivatePage> pages_;  // ordered by (db, page): deterministic logs
  std::vector<std::unique_ptr<DbAccess>> access_;
  absl::Status poisoned_;
  bool done_ = false;
};

}  // namespace dagvault::mailstore
