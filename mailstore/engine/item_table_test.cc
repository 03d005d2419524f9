// The page structures (B-tree, long values, space map) against a std::map
// model, over in-memory pages, for every page size.
#include "mailstore/engine/item_table.h"

#include <map>
#include <random>
#include <set>

#include "gtest/gtest.h"
#include "mailstore/engine/layout.h"
#include "mailstore/engine/memory_page_access.h"

namespace dagvault::mailstore {
namespace {

std::string MakeValue(std::mt19937_64& rng, size_t size) {
  std::string v(size, '\0');
  for (auto& c : v) c = static_cast<char>('a' + rng() % 26);
  return v;
}

class ItemTableTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    pages_ = std::make_unique<MemoryPageAccess>(GetParam());
    ASSERT_TRUE(FormatNewDatabase(*pages_).ok());
  }

  // Checks the whole structure: every tree page valid, every allocated page
  // reachable exactly once, and the meta counters right.
  void CheckStructure(const std::map<ItemKey, std::string>& model) {
    ItemTable table(*pages_, &hints_);
    std::set<PageNo> reachable = {kMetaPage, kRootPage};
    BTree tree(*pages_, nullptr);
    ASSERT_TRUE(tree.VisitPages([&](PageNo pgno, const uint8_t* page) {
                      reachable.insert(pgno);
                      BTreePage bp(page, GetParam());
                      if (!bp.is_leaf()) return absl::OkStatus();
                      for (int i = 0; i < bp.slot_count(); ++i) {
                        const uint8_t* rec = bp.Record(i);
                        if (rec[leaf_record::kKind] != leaf_record::kLong) continue;
                        PageNo p = LoadU32(rec + leaf_record::kLongFirstPage);
                        while (p != 0) {
                          EXPECT_TRUE(reachable.insert(p).second) << "page " << p << " twice";
                          p = LoadU32(pages_->pages().at(p)->data() + long_value_layout::kNextPage);
                        }
                      }
                      return absl::OkStatus();
                    })
                    .ok());
    SpaceMap space(*pages_, hints_);
    for (const auto& [pgno, page] : pages_->pages()) {
      if (PageTypeOf(page->data()) == PageType::kSpaceMap) continue;
      auto allocated = space.IsAllocated(pgno);
      ASSERT_TRUE(allocated.ok());
      EXPECT_EQ(*allocated, reachable.count(pgno) == 1) << "page " << pgno;
    }
    auto meta = table.Meta();
    ASSERT_TRUE(meta.ok());
    EXPECT_EQ(meta->item_count, model.size());
    uint64_t bytes = 0;
    for (const auto& [k, v] : model) bytes += v.size();
    EXPECT_EQ(meta->value_bytes, bytes);
    // Full scan equals the model.
    auto it = model.begin();
    ASSERT_TRUE(table
                    .ForEach([&](const ItemKey& key, absl::string_view value) {
                      EXPECT_NE(it, model.end());
                      EXPECT_EQ(key, it->first);
                      EXPECT_EQ(value, it->second) << key.ToString();
                      ++it;
                      return absl::OkStatus();
                    })
                    .ok());
    EXPECT_EQ(it, model.end());
  }

  std::unique_ptr<MemoryPageAccess> pages_;
  SpaceHints hints_;
};

TEST_P(ItemTableTest, RandomOperationsMatchModel) {
  std::mt19937_64 rng(GetParam());
  ItemTable table(*pages_, &hints_);
  std::map<ItemKey, std::string> model;
  const size_t big = MaxInlineValue(GetParam()) * 3;
  for (int op = 0; op < 4000; ++op) {
    ItemKey key{rng() % 8, rng() % 400};
    int choice = static_cast<int>(rng() % 10);
    if (choice < 6) {
      size_t size = rng() % 5 == 0 ? rng() % big : rng() % 300;
      std::string value = MakeValue(rng, size);
      ASSERT_TRUE(table.Put(key, value).ok());
      model[key] = value;
    } else if (choice < 9) {
      auto deleted = table.Delete(key);
      ASSERT_TRUE(deleted.ok());
      EXPECT_EQ(*deleted, model.erase(key) == 1);
    } else {
      auto got = table.Get(key);
      ASSERT_TRUE(got.ok());
      auto it = model.find(key);
      ASSERT_EQ(got->has_value(), it != model.end());
      if (it != model.end()) {
        EXPECT_EQ(**got, it->second);
      }
    }
    if (op % 1000 == 999) CheckStructure(model);
  }
  CheckStructure(model);
}

TEST_P(ItemTableTest, ListReturnsOneMailboxInOrder) {
  ItemTable table(*pages_, &hints_);
  for (uint64_t mb = 1; mb <= 3; ++mb) {
    for (uint64_t item = 0; item < 500; ++item) {
      ASSERT_TRUE(table.Put({mb, item * 2}, std::string(item % 50, 'x')).ok());
    }
  }
  auto list = table.List(2, 101, 10);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 10u);
  EXPECT_EQ((*list)[0].key, (ItemKey{2, 102}));
  EXPECT_EQ((*list)[9].key, (ItemKey{2, 120}));
  auto tail = table.List(3, 990, 100);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->size(), 5u);
}

TEST_P(ItemTableTest, DeletingEverythingLeavesAnEmptyRootAndFreesAllPages) {
  ItemTable table(*pages_, &hints_);
  std::mt19937_64 rng(3);
  std::vector<ItemKey> keys;
  for (uint64_t i = 0; i < 3000; ++i) {
    keys.push_back({i % 7, i});
    ASSERT_TRUE(table.Put(keys.back(), MakeValue(rng, i % 11 == 0 ? 20000 : 100)).ok());
  }
  auto meta = table.Meta();
  ASSERT_TRUE(meta.ok());
  EXPECT_GT(meta->tree_height, 1u);
  std::shuffle(keys.begin(), keys.end(), rng);
  for (const auto& k : keys) ASSERT_TRUE(*table.Delete(k));
  meta = table.Meta();
  EXPECT_EQ(meta->item_count, 0u);
  EXPECT_EQ(meta->tree_height, 1u);
  CheckStructure({});
}

TEST_P(ItemTableTest, OverwritingALongValueReusesItsPages) {
  ItemTable table(*pages_, &hints_);
  std::mt19937_64 rng(5);
  ASSERT_TRUE(table.Put({1, 1}, MakeValue(rng, 200000)).ok());
  const size_t pages_after_first = pages_->pages().size();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(table.Put({1, 1}, MakeValue(rng, 200000)).ok());
  EXPECT_EQ(pages_->pages().size(), pages_after_first);
}

TEST_P(ItemTableTest, RejectsOversizedValueWithoutChange) {
  ItemTable table(*pages_, &hints_);
  std::string huge(kMaxValueSize + 1, 'x');
  absl::Status s = table.Put({1, 1}, huge);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1/1"), std::string::npos);
  EXPECT_EQ(table.Meta()->item_count, 0u);
}

TEST_P(ItemTableTest, DetectsDamagedLongValueChain) {
  ItemTable table(*pages_, &hints_);
  std::mt19937_64 rng(9);
  ASSERT_TRUE(table.Put({4, 4}, MakeValue(rng, 50000)).ok());
  // Flip a data byte in one long-value page: the value CRC catches it.
  for (const auto& [pgno, page] : pages_->pages()) {
    if (PageTypeOf(page->data()) == PageType::kLongValue) {
      page->data()[long_value_layout::kData + 10] ^= 0x40;
      break;
    }
  }
  auto got = table.Get({4, 4});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(got.status().message().find("4/4"), std::string::npos) << got.status();
}

TEST_P(ItemTableTest, ImplausibleLongValueReferenceIsRefused) {
  ItemTable table(*pages_, &hints_);
  std::mt19937_64 rng(11);
  ASSERT_TRUE(table.Put({6, 6}, MakeValue(rng, 30000)).ok());
  // Make the leaf record claim a billion pages.
  uint8_t* root = *pages_->Write(kRootPage);
  BTreePage leaf(root, GetParam());
  const uint32_t off = static_cast<uint32_t>(leaf.Record(0) - root);
  StoreU32(root + off + leaf_record::kLongPageCount, 1000000000);
  auto got = table.Get({6, 6});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("claims"), std::string::npos) << got.status();
}

INSTANTIATE_TEST_SUITE_P(PageSizes, ItemTableTest, ::testing::Values(4096u, 8192u, 16384u, 32768u));

}  // namespace
}  // namespace dagvault::mailstore
