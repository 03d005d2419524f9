#include "mailstore/engine/transaction.h"

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "mailstore/engine/engine.h"

namespace dagvault::mailstore {

// The view of one database through a transaction: its own private pages
// first, then the shared cache.
class Transaction::DbAccess : public PageAccess {
 public:
  DbAccess(Transaction* txn, uint32_t db) : txn_(txn), db_(db) {}
  uint32_t page_size() const override { return txn_->engine_->unit_.page_size; }

  absl::StatusOr<PageRef> Read(PageNo pgno) override {
    auto it = txn_->pages_.find(Key(pgno));
    if (it != txn_->pages_.end()) return PageRef(it->second.current);
    return txn_->engine_->cache_->Get(db_, pgno);
  }

  absl::StatusOr<uint8_t*> Write(PageNo pgno) override {
    auto it = txn_->pages_.find(Key(pgno));
    if (it != txn_->pages_.end()) return it->second.current->data();
    ASSIGN_OR_RETURN(PageRef original, txn_->engine_->cache_->Get(db_, pgno));
    if (IsZeroPage(original->data(), page_size())) {
      return absl::DataLossError(absl::StrFormat("%s: page %u is in use but was never written",
                                                 txn_->engine_->dbs_[db_]->path(), pgno));
    }
    PrivatePage& p = txn_->pages_[Key(pgno)];
    p.current = original->Clone();
    p.original = std::move(original);
    return p.current->data();
  }

  absl::StatusOr<uint8_t*> Create(PageNo pgno, PageType type) override {
    PrivatePage& p = txn_->pages_[Key(pgno)];
    // A page freed and allocated again in one transaction keeps its
    // original, but is logged whole like any new page.
    p.current = std::make_shared<PageBuffer>(page_size());
    p.fresh = true;
    InitPage(p.current->data(), page_size(), pgno, type);
    return p.current->data();
  }

 private:
  uint64_t Key(PageNo pgno) const { return (uint64_t{db_} << 32) | pgno; }
  Transaction* txn_;
  uint32_t db_;
};

Transaction::Transaction(Engine* engine, std::unique_lock<std::mutex> writer_lock)
    : engine_(engine), writer_lock_(std::move(writer_lock)) {
  for (uint32_t db = 0; db < engine_->dbs_.size(); ++db) {
    access_.push_back(std::make_unique<DbAccess>(this, db));
  }
}

Transaction::~Transaction() { Abort(); }

absl::Status Transaction::CheckUsable(uint32_t db) const {
  if (done_) return absl::FailedPreconditionError("transaction already ended");
  if (!poisoned_.ok()) return poisoned_;
  if (db >= access_.size()) {
    return absl::InvalidArgumentError(absl::StrFormat("unit %s has no database %u (it has %u)",
                                                      engine_->unit_.name, db, access_.size()));
  }
  return engine_->health();
}

absl::Status Transaction::Poison(absl::Status status) {
  if (!status.ok() && poisoned_.ok()) {
    poisoned_ = Annotate(status, "transaction rolled back");
  }
  return status;
}

ItemTable Transaction::Table(uint32_t db) { return ItemTable(*access_[db], &engine_->hints_[db]); }

absl::StatusOr<std::optional<std::string>> Transaction::Get(uint32_t db, const ItemKey& key) {
  RETURN_IF_ERROR(CheckUsable(db));
  return Table(db).Get(key);
}

absl::Status Transaction::Put(uint32_t db, const ItemKey& key, absl::string_view value) {
  RETURN_IF_ERROR(CheckUsable(db));
  if (value.size() > kMaxValueSize) {
    // Refused before anything changes, so the transaction stays usable.
    return absl::InvalidArgumentError(
        absl::StrFormat("item %s: value of %u bytes exceeds the %u-byte limit", key.ToString(),
                        value.size(), kMaxValueSize));
  }
  return Poison(Table(db).Put(key, value));
}

absl::StatusOr<bool> Transaction::Delete(uint32_t db, const ItemKey& key) {
  RETURN_IF_ERROR(CheckUsable(db));
  auto result = Table(db).Delete(key);
  if (!result.ok()) return Poison(result.status());
  return result;
}

absl::StatusOr<std::vector<ItemInfo>> Transaction::List(uint32_t db, uint64_t mailbox,
                                                        uint64_t start_item, size_t limit) {
  RETURN_IF_ERROR(CheckUsable(db));
  return Table(db).List(mailbox, start_item, limit);
}

absl::StatusOr<Lsn> Transaction::Commit() {
  if (done_) return absl::FailedPreconditionError("transaction already ended");
  if (!poisoned_.ok()) {
    absl::Status s = poisoned_;
    Abort();
    return s;
  }
  auto result = engine_->CommitTransaction(*this);
  if (!result.ok()) {
    Abort();
    return result.status();
  }
  return result;
}

void Transaction::Abort() {
  if (done_) return;
  if (!pages_.empty()) {
    // Allocation hints may point past pages this transaction took.
    for (auto& hints : engine_->hints_) hints.Reset();
  }
  Release();
}

void Transaction::Release() {
  pages_.clear();
  done_ = true;
  if (writer_lock_.owns_lock()) writer_lock_.unlock();
}

}  // namespace dagvault::mailstore
