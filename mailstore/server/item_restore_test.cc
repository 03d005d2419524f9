// Item-level restore's two halves on real engines: the Recovery
// Database's side (which items, in pages, and what is named when they are
// not there) and production's (one transaction, by the conflict rule).
#include "mailstore/server/item_restore.h"

#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mailstore/engine/engine_test_util.h"

namespace dagvault::mailstore {
namespace {

namespace v1 = dagvault::v1;
using dagvault::testing::TempDir;
using ::testing::HasSubstr;
using testing::MakeUnitConfig;
using testing::TestEngineOptions;

std::string Value(uint64_t mailbox, uint64_t item) {
  return std::string(1000 + item, static_cast<char>('a' + (mailbox + item) % 26));
}

class ItemRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rdb = Engine::Create(MakeUnitConfig(rdb_dir_.path(), 2), TestEngineOptions());
    ASSERT_TRUE(rdb.ok()) << rdb.status();
    rdb_ = std::move(*rdb);
    auto prod = Engine::Create(MakeUnitConfig(prod_dir_.path(), 2), TestEngineOptions());
    ASSERT_TRUE(prod.ok()) << prod.status();
    prod_ = std::move(*prod);
    // The restore point: mailbox 7 holds items 0..9 in db0 and 100..101 in
    // db1; mailbox 8 holds item 0.
    for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(rdb_->Put(0, {7, i}, Value(7, i)).ok());
    for (uint64_t i = 100; i < 102; ++i) ASSERT_TRUE(rdb_->Put(1, {7, i}, Value(7, i)).ok());
    ASSERT_TRUE(rdb_->Put(0, {8, 0}, Value(8, 0)).ok());
  }
  void TearDown() override {
    if (rdb_) (void)rdb_->Close();
    if (prod_) (void)prod_->Close();
  }

  // Every selected item, page by page, as the writer's callers walk them.
  std::vector<v1::RestoredItem> All(const v1::ItemSelection& s, uint64_t page_bytes, int* pages) {
    std::vector<v1::RestoredItem> out;
    v1::ItemCursor cursor;
    *pages = 0;
    while (true) {
      auto page = SelectRecoveryItems(*rdb_, "u1-RDB", s, cursor, page_bytes);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) return out;
      ++*pages;
      out.insert(out.end(), page->items.begin(), page->items.end());
      if (page->done) return out;
      cursor = page->next;
    }
  }

  v1::ApplyRestoredItemsResponse Apply(const std::vector<v1::RestoredItem>& items,
                                       v1::ItemConflict conflict, uint64_t keep_both_from = 0) {
    v1::ApplyRestoredItemsRequest r;
    r.set_unit("u1");
    r.set_conflict(conflict);
    r.set_keep_both_from(keep_both_from);
    for (const auto& i : items) *r.add_items() = i;
    auto applied = ApplyRestoredItems(*prod_, r);
    EXPECT_TRUE(applied.ok()) << applied.status();
    return applied.ok() ? *applied : v1::ApplyRestoredItemsResponse();
  }

  TempDir rdb_dir_{"rdb"}, prod_dir_{"prod"};
  std::unique_ptr<Engine> rdb_, prod_;
};

TEST_F(ItemRestoreTest, AMailboxIsWalkedInPagesOfWholeItemsAcrossItsDatabases) {
  v1::ItemSelection s;
  s.set_mailbox(7);
  int pages = 0;
  auto items = All(s, 3000, &pages);
  ASSERT_EQ(items.size(), 12u);
  EXPECT_GT(pages, 3);  // items of 1,000 to 1,101 bytes, 3,000 bytes a page
  EXPECT_EQ(items[0].database(), "db0");
  EXPECT_EQ(items[11].database(), "db1");
  EXPECT_EQ(items[11].item(), 101u);
  EXPECT_EQ(items[11].value(), Value(7, 101));
  // Some items, of one database; a page smaller than an item holds one.
  s.set_database("db0");
  s.add_items(9);
  s.add_items(3);
  items = All(s, 10, &pages);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].item(), 3u);
  EXPECT_EQ(pages, 2);
}

TEST_F(ItemRestoreTest, WhatIsNotInTheRestorePointIsNamedWithWhatIs) {
  v1::ItemSelection s;
  s.set_mailbox(5);
  auto none = SelectRecoveryItems(*rdb_, "u1-RDB", s, {}, 0);
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr("mailbox 5 holds no item at this restore point (recovery database "
                        "u1-RDB); mailboxes holding items there: 7, 8"));
  s.set_mailbox(7);
  s.add_items(4);
  s.add_items(55);
  auto missing = SelectRecoveryItems(*rdb_, "u1-RDB", s, {}, 0);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("item 55 is not in mailbox 7"));
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("it holds 12 item(s) there, numbered 0 to 101"));
  s.set_database("db9");
  auto db = SelectRecoveryItems(*rdb_, "u1-RDB", s, {}, 0);
  EXPECT_THAT(std::string(db.status().message()), HasSubstr("has no database db9"));
}

TEST_F(ItemRestoreTest, EachConflictRuleAndIdenticalItemsAreLeftAlone) {
  v1::ItemSelection s;
  s.set_mailbox(7);
  s.set_database("db0");
  int pages = 0;
  const auto items = All(s, 0, &pages);
  ASSERT_EQ(items.size(), 10u);
  // Production: 0 as restored, 1 changed since, the rest deleted.
  ASSERT_TRUE(prod_->Put(0, {7, 0}, Value(7, 0)).ok());
  ASSERT_TRUE(prod_->Put(0, {7, 1}, "newer mail").ok());

  auto skip = Apply(items, v1::ITEM_CONFLICT_SKIP);
  EXPECT_EQ(skip.counts().found(), 10u);
  EXPECT_EQ(skip.counts().copied(), 8u);
  EXPECT_EQ(skip.counts().skipped_identical(), 1u);
  EXPECT_EQ(skip.counts().skipped_existing(), 1u);
  EXPECT_NE(skip.generation(), 0u);
  EXPECT_EQ(**prod_->Get(0, {7, 1}), "newer mail");
  EXPECT_EQ(**prod_->Get(0, {7, 9}), Value(7, 9));
  // Again: nothing to write, no commit.
  auto again = Apply(items, v1::ITEM_CONFLICT_SKIP);
  EXPECT_EQ(again.counts().copied(), 0u);
  EXPECT_EQ(again.generation(), 0u);

  // Keep both: above production's highest (9) and the restore point's
  // (101, which a later page may still bring): 102.
  auto both = Apply({items[1]}, v1::ITEM_CONFLICT_KEEP_BOTH, 102);
  ASSERT_EQ(both.kept_both_size(), 1);
  EXPECT_EQ(both.kept_both(0).stored_as(), 102u);
  EXPECT_EQ(**prod_->Get(0, {7, 102}), Value(7, 1));
  EXPECT_EQ(**prod_->Get(0, {7, 1}), "newer mail");
  // Again: the copy kept is there, so nothing is kept twice.
  auto both_again = Apply({items[1]}, v1::ITEM_CONFLICT_KEEP_BOTH, 102);
  EXPECT_EQ(both_again.counts().kept_both(), 0u);
  EXPECT_EQ(both_again.counts().skipped_identical(), 1u);
  EXPECT_FALSE(prod_->Get(0, {7, 103})->has_value());

  // Two restored items with the same bytes, both conflicting: both kept.
  ASSERT_TRUE(prod_->Put(0, {7, 2}, "newer 2").ok());
  ASSERT_TRUE(prod_->Put(0, {7, 3}, "newer 3").ok());
  v1::RestoredItem twin2 = items[2], twin3 = items[3];
  twin2.set_value("same bytes");
  twin3.set_value("same bytes");
  auto twins = Apply({twin2, twin3}, v1::ITEM_CONFLICT_KEEP_BOTH, 102);
  EXPECT_EQ(twins.counts().kept_both(), 2u);

  auto over = Apply({items[1]}, v1::ITEM_CONFLICT_OVERWRITE);
  EXPECT_EQ(over.counts().overwritten(), 1u);
  EXPECT_EQ(**prod_->Get(0, {7, 1}), Value(7, 1));

  // Into another mailbox, and a database production does not have.
  v1::ApplyRestoredItemsRequest other;
  other.set_unit("u1");
  other.set_other_mailbox(true);
  other.set_target_mailbox(70);
  *other.add_items() = items[2];
  auto moved = ApplyRestoredItems(*prod_, other);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(**prod_->Get(0, {70, 2}), Value(7, 2));
  other.mutable_items(0)->set_database("db9");
  EXPECT_THAT(std::string(ApplyRestoredItems(*prod_, other).status().message()),
              HasSubstr("unit u1 has no database db9"));
}

}  // namespace
}  // namespace dagvault::mailstore
