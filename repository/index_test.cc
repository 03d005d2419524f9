#include "repository/index.h"

#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/filesystem_object_store.h"

namespace dagvault::repository {
namespace {

using ::testing::HasSubstr;

class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto keys = RepositoryKeys::Generate();
    ASSERT_TRUE(keys.ok());
    keys_ = *std::move(keys);
  }
  PackInfo WritePack(int first, int count) {
    PackWriter writer(keys_, store_);
    for (int i = first; i < first + count; ++i) {
      const std::string plain = absl::StrCat("chunk number ", i, std::string(500, 'x'));
      const ChunkId id = keys_.Id(plain);
      EXPECT_TRUE(
          writer.Add(id, *SealChunk(keys_, id, plain), static_cast<uint32_t>(plain.size())).ok());
      plains_[ChunkIdHex(id)] = plain;
    }
    return *writer.Finish();
  }
  dagvault::testing::TempDir dir_{"index"};
  FilesystemObjectStore store_{dir_.path()};
  RepositoryKeys keys_;
  std::map<std::string, std::string> plains_;
};

TEST_F(IndexTest, EachSessionsIndexFileIsLoadedAndFindsEveryChunk) {
  const PackInfo a = WritePack(0, 20), b = WritePack(20, 20), c = WritePack(40, 20);
  // Two writing sessions, each with its own index file; the same chunk in
  // two packs is kept once.
  const PackInfo again = WritePack(0, 5);
  ASSERT_TRUE(WriteIndexFile(keys_, store_, "session-1", {a, b}).ok());
  ASSERT_TRUE(WriteIndexFile(keys_, store_, "session-2", {c, again}).ok());
  auto index = LoadIndex(keys_, store_);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->chunk_count(), 60u);
  EXPECT_EQ(index->pack_count(), 4u);
  for (const auto& [hex, plain] : plains_) {
    const ChunkId id = keys_.Id(plain);
    auto loc = index->Find(id);
    ASSERT_TRUE(loc.has_value()) << hex;
    auto read = ReadPackedChunk(keys_, store_, PackKey(*loc->pack), loc->chunk);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(*read, plain);
  }
  EXPECT_FALSE(index->Contains(keys_.Id("never written")));
}

TEST_F(IndexTest, ADamagedOrRenamedIndexFileIsNamed) {
  ASSERT_TRUE(WriteIndexFile(keys_, store_, "s1", {WritePack(0, 3)}).ok());
  const std::string path = store_.Name("index/s1.idx");
  std::string data = *store_.Get("index/s1.idx");
  data[data.size() / 2] ^= 0x04;
  ASSERT_TRUE(store_.Replace("index/s1.idx", data).ok());
  auto damaged = LoadIndex(keys_, store_);
  ASSERT_FALSE(damaged.ok());
  EXPECT_THAT(std::string(damaged.status().message()),
              HasSubstr(absl::StrCat("index file ", path, ": index s1: authentication failed")));
  // An intact file under another session's name does not open either.
  ASSERT_TRUE(store_.Delete("index/s1.idx").ok());
  ASSERT_TRUE(WriteIndexFile(keys_, store_, "s2", {WritePack(3, 3)}).ok());
  ASSERT_TRUE(store_.Replace("index/s3.idx", *store_.Get("index/s2.idx")).ok());
  ASSERT_TRUE(store_.Delete("index/s2.idx").ok());
  EXPECT_THAT(std::string(LoadIndex(keys_, store_).status().message()),
              HasSubstr("authentication failed"));
}

TEST_F(IndexTest, AMillionChunksTakeUnder64BytesEach) {
  // Ids at random (HMAC outputs are): one pack entry each.
  std::mt19937_64 rng(42);
  ChunkIndex index;
  constexpr int kChunks = 1'000'000;
  PackInfo pack;
  pack.id = std::string(64, 'a');
  pack.chunks.resize(kChunks / 10);
  for (int p = 0; p < 10; ++p) {
    for (auto& c : pack.chunks) {
      for (size_t i = 0; i < c.id.size(); i += 8) {
        const uint64_t r = rng();
        std::memcpy(c.id.data() + i, &r, 8);
      }
    }
    index.AddPack(pack);
  }
  index.Compact();
  ASSERT_EQ(index.chunk_count(), static_cast<size_t>(kChunks));
  const double per_chunk = static_cast<double>(index.MemoryBytes()) / kChunks;
  std::cout << "index: " << per_chunk << " bytes per chunk after loading " << kChunks << "\n";
  EXPECT_LE(per_chunk, 64.0);
  EXPECT_TRUE(index.Contains(pack.chunks[123].id));
}

}  // namespace
}  // namespace dagvault::repository
