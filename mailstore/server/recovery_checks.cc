#include "mailstore/server/recovery_checks.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "mailstore/format/edb_header.h"
#include "mailstore/tools/check.h"

namespace dagvault::mailstore {

namespace v1 = dagvault::v1;

namespace {

// Mailboxes the sample draws from, at most: enough to spread it over a
// large database, few enough that listing them stays quick.
constexpr size_t kMaxSampledMailboxes = 100000;
constexpr size_t kMaxListedItems = 10000;

}  // namespace

std::vector<v1::DatabaseCheck> CheckRecoveredFiles(const std::vector<RecoveredFile>& files) {
  std::vector<v1::DatabaseCheck> out;
  CheckOptions options;
  options.deep = true;
  for (const RecoveredFile& f : files) {
    v1::DatabaseCheck& check = out.emplace_back();
    check.set_database(f.database);
    auto header = ReadDbHeaderFromPath(f.path);
    if (!header.ok()) {
      check.add_problems(absl::StrCat("database ", f.database, ": ", header.status().message()));
      continue;
    }
    if (header->header.state != DbState::kCleanShutdown) {
      check.add_problems(absl::StrCat("database ", f.database, " (", f.path, ") is in state ",
                                      DbStateName(header->header.state),
                                      " after recovery, not CleanShutdown"));
    }
    auto report = CheckFiles({f.path}, options);
    if (!report.ok()) {
      check.add_problems(absl::StrCat("database ", f.database, ": ", report.status().message()));
      continue;
    }
    for (const FileCheck& fc : report->files) {
      if (header->header.page_size != 0) check.set_pages(fc.bytes / header->header.page_size);
      for (const std::string& e : fc.errors) {
        check.add_problems(absl::StrCat("database ", f.database, ": ", e));
      }
      if (fc.errors_not_listed != 0) {
        check.add_problems(absl::StrCat("database ", f.database, ": ", fc.errors_not_listed,
                                        " more damaged places not listed"));
      }
      // Pages allocated but unused (leaked by a crash) do no harm, and the
      // other warnings say why the deep check could not run: that is the
      // state problem above, already named.
      for (const std::string& w : fc.warnings) check.add_notes(w);
    }
  }
  return out;
}

void ReadMountedDatabase(Engine& engine, uint32_t index, const v1::RecoveryDatabaseChecks& checks,
                         v1::DatabaseCheck* check) {
  const std::string& name = check->database();
  auto problem = [&](const std::string& what) {
    check->add_problems(absl::StrCat("database ", name, ": ", what));
  };
  auto walked = engine.DigestWithCounts(index);
  if (!walked.ok()) {
    problem(absl::StrCat("reading every item for the content digest failed: ",
                         walked.status().message()));
    return;
  }
  check->set_sha256(DigestToHex(walked->digest));
  check->set_items(walked->items);
  check->set_value_bytes(walked->value_bytes);
  auto meta = engine.Meta(index);
  if (!meta.ok()) {
    problem(absl::StrCat("its counters cannot be read: ", meta.status().message()));
  } else if (meta->item_count != walked->items || meta->value_bytes != walked->value_bytes) {
    problem(absl::StrFormat(
        "its counters say %u items and %u value bytes, but the tree holds %u items and %u bytes",
        meta->item_count, meta->value_bytes, walked->items, walked->value_bytes));
  }
  if (checks.sample_items() == 0 || walked->items == 0) return;
  std::vector<uint64_t> mailboxes;
  for (uint64_t from = 0; mailboxes.size() < kMaxSampledMailboxes;) {
    auto next = engine.FirstMailboxFrom(index, from);
    if (!next.ok()) {
      problem(absl::StrCat("listing its mailboxes failed: ", next.status().message()));
      return;
    }
    if (!next->has_value()) break;
    mailboxes.push_back(**next);
    if (**next == UINT64_MAX) break;
    from = **next + 1;
  }
  if (mailboxes.empty()) {
    problem(absl::StrFormat("it holds %u items but no mailbox is listed", walked->items));
    return;
  }
  std::mt19937_64 random(checks.seed() ^ (uint64_t{index} * 0x9E3779B97F4A7C15ULL));
  uint32_t sampled = 0;
  for (uint32_t i = 0; i < checks.sample_items(); ++i) {
    const uint64_t mailbox = mailboxes[random() % mailboxes.size()];
    auto listed = engine.List(index, mailbox, 0, kMaxListedItems);
    if (!listed.ok()) {
      problem(absl::StrCat("listing mailbox ", mailbox, " failed: ", listed.status().message()));
      continue;
    }
    if (listed->empty()) {
      problem(absl::StrCat("mailbox ", mailbox, " is listed but holds no item"));
      continue;
    }
    const ItemInfo& item = (*listed)[random() % listed->size()];
    auto value = engine.Get(index, item.key);
    if (!value.ok()) {
      problem(absl::StrCat("item ", item.key.item, " of mailbox ", mailbox,
                           " cannot be read: ", value.status().message()));
      continue;
    }
    if (!value->has_value()) {
      problem(absl::StrCat("item ", item.key.item, " of mailbox ", mailbox,
                           " is listed but not found by its key"));
      continue;
    }
    if ((*value)->size() != item.size) {
      problem(absl::StrFormat("item %u of mailbox %u is listed with %u bytes, but reads %u",
                              item.key.item, mailbox, item.size, (*value)->size()));
      continue;
    }
    ++sampled;
  }
  check->set_sampled_items(sampled);
}

}  // namespace dagvault::mailstore
