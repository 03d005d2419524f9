#include "repository/pack.h"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "absl/time/clock.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/filesystem_object_store.h"

namespace dagvault::repository {
namespace {

using ::testing::HasSubstr;

class PackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto keys = RepositoryKeys::Generate();
    ASSERT_TRUE(keys.ok());
    keys_ = *std::move(keys);
  }

  // Writes a pack of `count` chunks, half text, half random.
  PackInfo WritePack(int count) {
    PackWriter writer(keys_, store_);
    std::mt19937 rng(count);
    for (int i = 0; i < count; ++i) {
      std::string plain(1000 + i * 37, '\0');
      for (auto& c : plain) c = i % 2 ? static_cast<char>(rng()) : static_cast<char>('a' + i % 26);
      const ChunkId id = keys_.Id(plain);
      auto sealed = SealChunk(keys_, id, plain);
      EXPECT_TRUE(sealed.ok());
      EXPECT_TRUE(writer.Add(id, *sealed, static_cast<uint32_t>(plain.size())).ok());
      plains_[ChunkIdHex(id)] = plain;
    }
    auto info = writer.Finish();
    EXPECT_TRUE(info.ok()) << info.status();
    return *info;
  }

  dagvault::testing::TempDir dir_{"pack"};
  FilesystemObjectStore store_{dir_.path()};
  RepositoryKeys keys_;
  std::map<std::string, std::string> plains_;
};

TEST_F(PackTest, ChunksComeBackFromTheTrailersIndex) {
  const PackInfo written = WritePack(40);
  EXPECT_EQ(written.key, PackKey(written.id));
  EXPECT_TRUE(store_.Head(written.key).ok());
  // Nothing but the pack in its folder: no temporary file left behind.
  EXPECT_EQ(*ListDirectory(DirName(store_.Name(written.key))),
            std::vector<std::string>{written.id});
  auto read = ReadPackIndex(keys_, store_, written.key);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->chunks.size(), 40u);
  for (const auto& c : read->chunks) {
    auto plain = ReadPackedChunk(keys_, store_, written.key, c);
    ASSERT_TRUE(plain.ok()) << plain.status();
    EXPECT_EQ(*plain, plains_[ChunkIdHex(c.id)]);
  }
  EXPECT_TRUE(CheckPack(keys_, store_, written.key, /*read_data=*/true).ok());
  // An empty pack is a pack too.
  PackWriter empty(keys_, store_);
  auto info = empty.Finish();
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(ReadPackIndex(keys_, store_, info->key).ok());
}

TEST_F(PackTest, DamageIsNamedByPackAndChunkAndSparesTheOtherChunks) {
  const PackInfo written = WritePack(10);
  const std::string good = *store_.Get(written.key);
  const PackedChunk& victim = written.chunks[3];
  std::string bad = good;
  bad[victim.offset + victim.length / 2] ^= 0x10;
  ASSERT_TRUE(store_.Replace(written.key, bad).ok());
  auto read = ReadPackIndex(keys_, store_, written.key);
  ASSERT_TRUE(read.ok()) << read.status();  // the trailer is intact
  for (const auto& c : read->chunks) {
    auto plain = ReadPackedChunk(keys_, store_, written.key, c);
    if (c.id == victim.id) {
      ASSERT_FALSE(plain.ok());
      EXPECT_THAT(
          std::string(plain.status().message()),
          HasSubstr(absl::StrCat("pack ", store_.Name(written.key), ": chunk ", ChunkIdHex(c.id))));
    } else {
      EXPECT_TRUE(plain.ok()) << plain.status();
    }
  }
  absl::Status checked = CheckPack(keys_, store_, written.key, /*read_data=*/true);
  EXPECT_THAT(std::string(checked.message()),
              HasSubstr(absl::StrCat("chunk ", ChunkIdHex(victim.id), ": authentication failed")));
  EXPECT_TRUE(CheckPack(keys_, store_, written.key, /*read_data=*/false).ok());

  // Truncated: no end marker.
  ASSERT_TRUE(store_.Replace(written.key, good.substr(0, good.size() - 5)).ok());
  EXPECT_THAT(std::string(ReadPackIndex(keys_, store_, written.key).status().message()),
              HasSubstr("truncated or damaged at its end"));
  // A damaged trailer.
  std::string trailer_bad = good;
  trailer_bad[good.size() - 20] ^= 0x01;
  ASSERT_TRUE(store_.Replace(written.key, trailer_bad).ok());
  EXPECT_THAT(std::string(ReadPackIndex(keys_, store_, written.key).status().message()),
              HasSubstr("its trailer does not hash to its name"));
  // Renamed to match its damaged trailer, it still fails authentication.
  {
    const size_t tail = 12;
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) {
      n |= uint32_t{static_cast<uint8_t>(good[good.size() - tail + i])} << (8 * i);
    }
    const std::string forged =
        PackKey(DigestToHex(Sha256::Of(trailer_bad.substr(good.size() - tail - n))));
    ASSERT_TRUE(store_.Replace(forged, trailer_bad).ok());
    EXPECT_THAT(std::string(ReadPackIndex(keys_, store_, forged).status().message()),
                HasSubstr("authentication failed"));
    ASSERT_TRUE(store_.Delete(forged).ok());
  }
  // A pack under another pack's name: even the plain check sees it.
  const std::string renamed = PackKey(std::string(64, 'a'));
  ASSERT_TRUE(store_.Replace(renamed, good).ok());
  EXPECT_THAT(std::string(CheckPack(keys_, store_, renamed, /*read_data=*/false).message()),
              HasSubstr(absl::StrCat("pack ", store_.Name(renamed),
                                     ": its trailer does not hash to its name")));
  // Another repository's key.
  ASSERT_TRUE(store_.Replace(written.key, good).ok());
  auto other = RepositoryKeys::Generate();
  EXPECT_FALSE(ReadPackIndex(*other, store_, written.key).ok());
  // Not a pack at all.
  ASSERT_TRUE(store_.Replace(written.key, "hello").ok());
  EXPECT_THAT(std::string(ReadPackIndex(keys_, store_, written.key).status().message()),
              HasSubstr("not a pack"));
}

// A folder whose ranged reads into a buffer come back short.
class ShortReadStore : public FilesystemObjectStore {
 public:
  using FilesystemObjectStore::FilesystemObjectStore;
  absl::StatusOr<absl::Span<char>> GetRangeInto(const std::string& key, uint64_t offset,
                                                uint64_t length,
                                                AlignedBuffer* buffer) const override {
    auto got = FilesystemObjectStore::GetRangeInto(key, offset, length, buffer);
    if (!got.ok() || got->size() < 100) return got;
    return got->subspan(0, got->size() - 100);
  }
};

// check --read-data reads a pack whole into a buffer its thread keeps: a
// pack that comes back shorter than its size is named, not parsed; the
// same pack read whole passes, twice in a row on one thread (the kept
// buffer reused), and so does a smaller pack after it.
TEST_F(PackTest, CheckingAPackReadsItWholeAndNamesOneThatComesBackShort) {
  const PackInfo big = WritePack(40);
  const PackInfo small = WritePack(3);
  ASSERT_TRUE(CheckPack(keys_, store_, big.key, /*read_data=*/true).ok());
  ASSERT_TRUE(CheckPack(keys_, store_, big.key, /*read_data=*/true).ok());
  ASSERT_TRUE(CheckPack(keys_, store_, small.key, /*read_data=*/true).ok());
  ShortReadStore short_reads(dir_.path());
  const absl::Status cut = CheckPack(keys_, short_reads, big.key, /*read_data=*/true);
  EXPECT_EQ(cut.code(), absl::StatusCode::kDataLoss) << cut;
  EXPECT_THAT(std::string(cut.message()),
              HasSubstr(absl::StrCat("pack ", store_.Name(big.key), ": read ", big.size - 100,
                                     " bytes of its ", big.size)));
}

// A folder whose puts wait at a gate, counting how many are in flight.
class GatedStore : public FilesystemObjectStore {
 public:
  using FilesystemObjectStore::FilesystemObjectStore;
  absl::Status PutIfAbsent(const std::string& key, absl::string_view data,
                           const PutOptions& options) const override {
    {
      std::unique_lock<std::mutex> l(mu_);
      ++in_flight_;
      max_in_flight_ = std::max(max_in_flight_, in_flight_);
      changed_.notify_all();
      changed_.wait(l, [&] { return open_; });
    }
    absl::Status s = FilesystemObjectStore::PutIfAbsent(key, data, options);
    std::lock_guard<std::mutex> l(mu_);
    --in_flight_;
    return s;
  }
  void Open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    changed_.notify_all();
  }
  bool WaitForInFlight(int n) {
    std::unique_lock<std::mutex> l(mu_);
    return changed_.wait_for(l, std::chrono::seconds(30), [&] { return in_flight_ == n; });
  }
  int max_in_flight() {
    std::lock_guard<std::mutex> l(mu_);
    return max_in_flight_;
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  mutable int in_flight_ = 0;
  mutable int max_in_flight_ = 0;
  bool open_ = false;
};

// Several writers put packs at once, and no more: with the puts held, three
// writers take three packs, one more waits in the queue, and the next
// Submit blocks (the memory bound: queue + writers packs). Released, every
// pack lands whole.
TEST_F(PackTest, BackgroundWritersPutSeveralPacksAtOnceWithinTheirBound) {
  GatedStore gated(dir_.Sub("gated"));
  BackgroundPackWriter writer(/*queue_limit=*/1, /*writers=*/3);
  std::atomic<int> submitted{0};
  std::thread producer([&] {
    for (int i = 0; i < 6; ++i) {
      auto pack = std::make_unique<PackWriter>(keys_, gated);
      const std::string plain(4096 + i, static_cast<char>('a' + i));
      const ChunkId id = keys_.Id(plain);
      auto sealed = SealChunk(keys_, id, plain);
      ASSERT_TRUE(sealed.ok());
      ASSERT_TRUE(pack->Add(id, *sealed, static_cast<uint32_t>(plain.size())).ok());
      ASSERT_TRUE(writer.Submit(std::move(pack)).ok());
      ++submitted;
    }
  });
  // (Before the writers told a waiting Submit that a pack left the queue,
  // only one put was ever in flight here.)
  const bool three = gated.WaitForInFlight(3);
  EXPECT_TRUE(three) << "at most " << gated.max_in_flight() << " puts at once";
  if (three) {
    // Three being put and one queued: the fifth Submit waits for room.
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_EQ(submitted.load(), 4);
  }
  gated.Open();
  producer.join();
  auto packs = writer.Close();
  ASSERT_TRUE(packs.ok()) << packs.status();
  EXPECT_EQ(packs->size(), 6u);
  EXPECT_EQ(gated.max_in_flight(), 3);
  for (const auto& p : *packs) {
    auto read = ReadPackIndex(keys_, gated, p.key);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->chunks.size(), 1u);
  }
}

}  // namespace
}  // namespace dagvault::repository
