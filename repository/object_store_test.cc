// The ObjectStore contract, run against every backend the tests have
// (repository_test_util.h: the filesystem always, S3 when a test server is
// up): what a repository module may rely on, whatever holds its objects.
#include "repository/object_store.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/filesystem_object_store.h"
#include "repository/repository_test_util.h"

namespace dagvault::repository {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

class ObjectStoreTest : public ::testing::TestWithParam<testing::Backend> {
 protected:
  void SetUp() override {
    auto store = testing::MakeTestStore(GetParam(), "objects");
    if (absl::IsUnavailable(store.status())) GTEST_SKIP() << store.status();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  const ObjectStore& store() const { return *store_.store; }

  testing::TestStore store_;
};

TEST_P(ObjectStoreTest, APutIfAbsentNeverReplacesAndNamesTheObject) {
  ASSERT_TRUE(store().PutIfAbsent("manifests/a.mf", "first").ok());
  const absl::Status again = store().PutIfAbsent("manifests/a.mf", "second");
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_THAT(std::string(again.message()), HasSubstr("manifests/a.mf"));
  EXPECT_EQ(*store().Get("manifests/a.mf"), "first");
  // Only a lock is ever replaced.
  ASSERT_TRUE(store().Replace("locks/s.lock", "one").ok());
  ASSERT_TRUE(store().Replace("locks/s.lock", "two").ok());
  EXPECT_EQ(*store().Get("locks/s.lock"), "two");
}

TEST_P(ObjectStoreTest, GetRangeAndHeadSeeTheBytesAndAMissingObjectIsNotFound) {
  const std::string data = "0123456789abcdef";
  ASSERT_TRUE(store().PutIfAbsent("packs/00/p", data).ok());
  EXPECT_EQ(*store().GetRange("packs/00/p", 4, 6), "456789");
  // Past the end: what there is; at the end: an error that says so.
  EXPECT_EQ(*store().GetRange("packs/00/p", 10, 100), "abcdef");
  const auto past = store().GetRange("packs/00/p", 16, 4);
  EXPECT_EQ(past.status().code(), absl::StatusCode::kOutOfRange) << past.status();
  auto head = store().Head("packs/00/p");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->size, data.size());
  EXPECT_GT(head->modified, absl::Now() - absl::Minutes(5));

  for (const auto& status :
       {store().Get("packs/00/none").status(), store().Head("packs/00/none").status(),
        store().GetRange("packs/00/none", 0, 1).status()}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("packs/00/none"));
  }
  // Deleting what is not there is no error; deleting twice neither.
  EXPECT_TRUE(store().Delete("packs/00/none").ok());
  EXPECT_TRUE(store().Delete("packs/00/p").ok());
  EXPECT_TRUE(store().Delete("packs/00/p").ok());
  EXPECT_EQ(store().Head("packs/00/p").status().code(), absl::StatusCode::kNotFound);
}

// GetRangeInto is GetRange without the copy: the same bytes wherever
// they lie in the buffer, for small ranges and for the 1 MiB and larger
// ones a filesystem reads by direct I/O, at aligned and unaligned
// offsets, up to the object's end; and the same errors.
TEST_P(ObjectStoreTest, GetRangeIntoSeesWhatGetRangeSees) {
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7919) >> 5);
  ASSERT_TRUE(store().PutIfAbsent("packs/00/big", data).ok());
  AlignedBuffer buffer;
  const std::vector<std::pair<uint64_t, uint64_t>> ranges = {{0, 10},
                                                             {4097, 100},
                                                             {0, 1 << 20},
                                                             {1, (1 << 20) + 5},
                                                             {12345, 2 << 20},
                                                             {(2 << 20) + 3, 8 << 20},
                                                             {data.size() - 1, 1}};
  for (const auto& [offset, length] : ranges) {
    SCOPED_TRACE(absl::StrCat(offset, "+", length));
    auto got = store().GetRangeInto("packs/00/big", offset, length, &buffer);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(absl::string_view(got->data(), got->size()) ==
                absl::string_view(data).substr(offset, length));
    auto whole = store().GetRange("packs/00/big", offset, length);
    ASSERT_TRUE(whole.ok()) << whole.status();
    EXPECT_TRUE(absl::string_view(got->data(), got->size()) == *whole);
    EXPECT_GE(got->data(), buffer.data());
    EXPECT_LE(got->data() + got->size(), buffer.data() + buffer.size());
  }
  const auto past = store().GetRangeInto("packs/00/big", data.size(), 4, &buffer);
  EXPECT_EQ(past.status().code(), absl::StatusCode::kOutOfRange) << past.status();
  const auto missing = store().GetRangeInto("packs/00/none", 0, 2 << 20, &buffer);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("packs/00/none"));
}

TEST_P(ObjectStoreTest, ListPagesThroughAPrefixInKeyOrder) {
  std::vector<std::string> keys;
  for (int i = 0; i < 25; ++i) {
    keys.push_back(absl::StrCat("packs/", i % 3, i % 3, "/", absl::StrFormat("%04d", i)));
    ASSERT_TRUE(store().PutIfAbsent(keys.back(), absl::StrCat("pack ", i)).ok());
  }
  ASSERT_TRUE(store().PutIfAbsent("index/s1.idx", "index").ok());
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store().List("packs/", token, 10);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->objects.size(), 10u);
    for (const auto& o : page->objects) seen.push_back(o.key);
    token = page->next_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(seen, keys);
  EXPECT_EQ(pages, 3);
  auto all = ListAll(store(), "packs/");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, SizeIs(25));
  EXPECT_EQ((*all)[0].size, std::string("pack 0").size());
  EXPECT_THAT(*ListAll(store(), "index/"), SizeIs(1));
  EXPECT_THAT(*ListAll(store(), "manifests/"), SizeIs(0));

  ASSERT_TRUE(store().DeleteMany({keys[0], keys[1], keys[2], "packs/99/none"}).ok());
  EXPECT_THAT(*ListAll(store(), "packs/"), SizeIs(22));
}

INSTANTIATE_TEST_SUITE_P(Backends, ObjectStoreTest, testing::Backends(), testing::BackendName);

// A filesystem's own leftovers: temporary files of writes that were cut
// off are not objects, and prune sweeps them once they are old.
TEST(FilesystemObjectStore, TemporaryFilesAreNotObjectsAndGoWhenOld) {
  ::dagvault::testing::TempDir dir("fs-store");
  FilesystemObjectStore store(dir.path());
  ASSERT_TRUE(store.PutIfAbsent("packs/aa/p", "pack").ok());
  ASSERT_TRUE(WriteFileAtomically(dir.Sub("packs/aa/p.123-abc.tmp"), "half").ok());
  EXPECT_THAT(*ListAll(store, "packs/"), SizeIs(1));
  EXPECT_EQ(store.Get("packs/aa/p.123-abc.tmp").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Get("../outside").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*store.RemoveIncomplete(absl::Now() - absl::Hours(1)), 0u);
  EXPECT_EQ(*store.RemoveIncomplete(absl::Now() + absl::Hours(1)), 1u);
  EXPECT_FALSE(PathExists(dir.Sub("packs/aa/p.123-abc.tmp")));
  // Nothing on a filesystem can hold an object against deletion.
  PutOptions locked;
  locked.retain_until = absl::Now() + absl::Hours(1);
  EXPECT_THAT(std::string(store.PutIfAbsent("manifests/m.mf", "m", locked).message()),
              HasSubstr("cannot lock objects"));
  // A key slot is its owner's alone.
  PutOptions owner_only;
  owner_only.owner_only = true;
  ASSERT_TRUE(store.PutIfAbsent("keys/k.key", "wrapped", owner_only).ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir.Sub("keys/k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace dagvault::repository
