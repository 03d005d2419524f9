#include "mailstore/server/item_restore.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/evp.h"
#include "common/status_macros.h"

namespace dagvault::mailstore {
namespace {

namespace v1 = dagvault::v1;

constexpr size_t kListPage = 1000;
constexpr size_t kMailboxesNamed = 12;

// The database indexes a selection covers, in order.
absl::StatusOr<std::vector<uint32_t>> SelectedDatabases(const Engine& rdb,
                                                        const std::string& rdb_name,
                                                        const v1::ItemSelection& selection) {
  std::vector<uint32_t> out;
  if (selection.database().empty()) {
    for (uint32_t i = 0; i < rdb.database_count(); ++i) out.push_back(i);
    return out;
  }
  const int i = rdb.DatabaseIndex(selection.database());
  if (i < 0) {
    std::vector<std::string> names;
    for (const auto& d : rdb.unit().databases) names.push_back(d.name);
    return absl::NotFoundError(absl::StrCat("the restore point (recovery database ", rdb_name,
                                            ") has no database ", selection.database(),
                                            "; its databases: ", absl::StrJoin(names, ", ")));
  }
  out.push_back(static_cast<uint32_t>(i));
  return out;
}

// Every item number of `mailbox` in database `db`.
absl::StatusOr<std::vector<uint64_t>> ItemsOf(Engine& engine, uint32_t db, uint64_t mailbox) {
  std::vector<uint64_t> out;
  uint64_t next = 0;
  while (true) {
    ASSIGN_OR_RETURN(auto page, engine.List(db, mailbox, next, kListPage));
    for (const auto& i : page) out.push_back(i.key.item);
    if (page.size() < kListPage || page.back().key.item == UINT64_MAX) return out;
    next = page.back().key.item + 1;
  }
}

// "mailboxes 3, 7, 12, …" holding items in the selected databases.
absl::StatusOr<std::string> MailboxesHeld(Engine& rdb, const std::vector<uint32_t>& dbs) {
  std::set<uint64_t> held;
  for (uint32_t db : dbs) {
    uint64_t from = 0;
    while (held.size() < kMailboxesNamed * dbs.size()) {
      ASSIGN_OR_RETURN(std::optional<uint64_t> m, rdb.FirstMailboxFrom(db, from));
      if (!m) break;
      held.insert(*m);
      if (*m == UINT64_MAX) break;
      from = *m + 1;
    }
  }
  if (held.empty()) return std::string("it holds no item at all");
  std::vector<std::string> names;
  for (uint64_t m : held) {
    if (names.size() == kMailboxesNamed) {
      names.push_back("…");
      break;
    }
    names.push_back(absl::StrCat(m));
  }
  return absl::StrCat("mailboxes holding items there: ", absl::StrJoin(names, ", "));
}

// The first page's check: the mailbox and every listed item are there.
absl::Status CheckSelection(Engine& rdb, const std::string& rdb_name,
                            const v1::ItemSelection& selection, const std::vector<uint32_t>& dbs) {
  std::set<uint64_t> present;
  for (uint32_t db : dbs) {
    ASSIGN_OR_RETURN(std::vector<uint64_t> items, ItemsOf(rdb, db, selection.mailbox()));
    present.insert(items.begin(), items.end());
  }
  const std::string where =
      absl::StrCat(" at this restore point (recovery database ", rdb_name,
                   selection.database().empty() ? std::string("")
                                                : absl::StrCat(", database ", selection.database()),
                   ")");
  if (present.empty()) {
    ASSIGN_OR_RETURN(std::string held, MailboxesHeld(rdb, dbs));
    return absl::NotFoundError(
        absl::StrCat("mailbox ", selection.mailbox(), " holds no item", where, "; ", held));
  }
  std::vector<std::string> missing;
  for (uint64_t item : selection.items()) {
    if (present.count(item) == 0) missing.push_back(absl::StrCat(item));
  }
  if (!missing.empty()) {
    return absl::NotFoundError(
        absl::StrCat(missing.size() == 1 ? "item " : "items ", absl::StrJoin(missing, ", "),
                     missing.size() == 1 ? " is" : " are", " not in mailbox ", selection.mailbox(),
                     where, "; it holds ", present.size(), " item(s) there, numbered ",
                     *present.begin(), " to ", *present.rbegin()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RecoveryItemPage> SelectRecoveryItems(Engine& rdb, const std::string& rdb_name,
                                                     const v1::ItemSelection& selection,
                                                     const v1::ItemCursor& cursor,
                                                     uint64_t max_bytes) {
  if (max_bytes == 0) max_bytes = kDefaultItemPageBytes;
  ASSIGN_OR_RETURN(std::vector<uint32_t> dbs, SelectedDatabases(rdb, rdb_name, selection));
  if (cursor.database_index() == 0 && cursor.next_item() == 0) {
    RETURN_IF_ERROR(CheckSelection(rdb, rdb_name, selection, dbs));
  }
  std::vector<uint64_t> listed(selection.items().begin(), selection.items().end());
  std::sort(listed.begin(), listed.end());
  listed.erase(std::unique(listed.begin(), listed.end()), listed.end());

  RecoveryItemPage page;
  uint64_t bytes = 0;
  for (uint32_t i = cursor.database_index(); i < dbs.size(); ++i) {
    const uint32_t db = dbs[i];
    uint64_t next = i == cursor.database_index() ? cursor.next_item() : 0;
    // The numbers from `next` on, a listing page at a time (never the
    // whole mailbox again for each page of items).
    while (true) {
      std::vector<uint64_t> numbers;
      bool last_listing = true;
      if (!listed.empty()) {
        numbers.assign(std::lower_bound(listed.begin(), listed.end(), next), listed.end());
      } else {
        ASSIGN_OR_RETURN(auto listing, rdb.List(db, selection.mailbox(), next, kListPage));
        for (const auto& e : listing) numbers.push_back(e.key.item);
        last_listing = listing.size() < kListPage;
      }
      for (uint64_t number : numbers) {
        ASSIGN_OR_RETURN(std::optional<std::string> value,
                         rdb.Get(db, ItemKey{selection.mailbox(), number}));
        if (!value) continue;  // a listed number held by another database
        if (bytes + value->size() > max_bytes && !page.items.empty()) {
          // Whole items only: this one starts the next page.
          page.next.set_database_index(i);
          page.next.set_next_item(number);
          return page;
        }
        v1::RestoredItem& item = page.items.emplace_back();
        item.set_database(rdb.unit().databases[db].name);
        item.set_mailbox(selection.mailbox());
        item.set_item(number);
        bytes += value->size();
        item.set_value(std::move(*value));
      }
      if (last_listing || numbers.empty() || numbers.back() == UINT64_MAX) break;
      next = numbers.back() + 1;
    }
  }
  page.done = true;
  return page;
}

absl::StatusOr<uint64_t> HighestItem(Engine& rdb, const v1::ItemSelection& selection) {
  uint64_t highest = 0;
  for (uint32_t db = 0; db < rdb.database_count(); ++db) {
    ASSIGN_OR_RETURN(std::vector<uint64_t> items, ItemsOf(rdb, db, selection.mailbox()));
    if (!items.empty()) highest = std::max(highest, items.back());
  }
  return highest;
}

absl::StatusOr<v1::ApplyRestoredItemsResponse> ApplyRestoredItems(
    Engine& engine, const v1::ApplyRestoredItemsRequest& request) {
  v1::ApplyRestoredItemsResponse response;
  v1::ItemCounts& counts = *response.mutable_counts();
  ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, engine.Begin());
  // Keep both: the next free number per (database, mailbox), found once,
  // above production's highest and the restore point's (keep_both_from),
  // so that a kept copy never takes a number a restored item still to
  // come has; and the SHA-256 of what already stands from keep_both_from
  // on, so a copy kept by an earlier run is not kept again.
  struct KeptRange {
    uint64_t next_free = 0;
    std::set<Sha256Digest> held;
  };
  std::map<std::pair<uint32_t, uint64_t>, KeptRange> kept_ranges;
  bool wrote = false;
  for (const v1::RestoredItem& item : request.items()) {
    const int found = engine.DatabaseIndex(item.database());
    if (found < 0) {
      txn->Abort();
      return absl::NotFoundError(absl::StrCat("unit ", request.unit(), " has no database ",
                                              item.database(), " to restore item ", item.item(),
                                              " of mailbox ", item.mailbox(), " into"));
    }
    const uint32_t db = static_cast<uint32_t>(found);
    const uint64_t mailbox = request.other_mailbox() ? request.target_mailbox() : item.mailbox();
    counts.set_found(counts.found() + 1);
    auto existing = txn->Get(db, ItemKey{mailbox, item.item()});
    if (!existing.ok()) return existing.status();
    auto put = [&](uint64_t number) -> absl::Status {
      RETURN_IF_ERROR(txn->Put(db, ItemKey{mailbox, number}, item.value()));
      counts.set_bytes(counts.bytes() + item.value().size());
      wrote = true;
      return absl::OkStatus();
    };
    if (!existing->has_value()) {
      RETURN_IF_ERROR(put(item.item()));
      counts.set_copied(counts.copied() + 1);
    } else if (**existing == item.value()) {
      counts.set_skipped_identical(counts.skipped_identical() + 1);
    } else if (request.conflict() == v1::ITEM_CONFLICT_SKIP) {
      counts.set_skipped_existing(counts.skipped_existing() + 1);
    } else if (request.conflict() == v1::ITEM_CONFLICT_OVERWRITE) {
      RETURN_IF_ERROR(put(item.item()));
      counts.set_overwritten(counts.overwritten() + 1);
    } else {
      auto [it, first] = kept_ranges.try_emplace({db, mailbox});
      KeptRange& range = it->second;
      if (first) {
        uint64_t highest = 0;
        uint64_t from = 0;
        while (true) {
          ASSIGN_OR_RETURN(auto listed, txn->List(db, mailbox, from, kListPage));
          for (const auto& e : listed) {
            if (e.key.item < request.keep_both_from()) continue;
            ASSIGN_OR_RETURN(auto value, txn->Get(db, e.key));
            if (value) range.held.insert(Sha256::Of(*value));
          }
          if (!listed.empty()) highest = listed.back().key.item;
          if (listed.size() < kListPage || highest == UINT64_MAX) break;
          from = highest + 1;
        }
        range.next_free =
            highest == UINT64_MAX ? 0 : std::max(highest + 1, request.keep_both_from());
      }
      if (range.held.count(Sha256::Of(item.value())) != 0) {
        // Kept beside it already (an earlier run). Only what stood before
        // this request counts: two restored items with the same bytes are
        // both kept.
        counts.set_skipped_identical(counts.skipped_identical() + 1);
        continue;
      }
      if (range.next_free == 0) {  // past the highest number there is
        return absl::ResourceExhaustedError(absl::StrCat(
            "mailbox ", mailbox, " of unit ", request.unit(), " has no free item number left"));
      }
      const uint64_t number = range.next_free++;
      RETURN_IF_ERROR(put(number));
      counts.set_kept_both(counts.kept_both() + 1);
      v1::RestoredItem* kept = response.add_kept_both();
      kept->set_database(item.database());
      kept->set_mailbox(mailbox);
      kept->set_item(item.item());
      kept->set_stored_as(number);
    }
  }
  if (!wrote) {
    txn->Abort();
    return response;
  }
  ASSIGN_OR_RETURN(Lsn lsn, txn->Commit());
  response.set_generation(lsn.generation);
  return response;
}

}  // namespace dagvault::mailstore
