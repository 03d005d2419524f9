#include "repository/crypto.h"

#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::repository {
namespace {

using ::testing::HasSubstr;

std::string Text(size_t n) {
  std::string s;
  while (s.size() < n) s += "Subject: quarterly figures; the attachment follows. ";
  s.resize(n);
  return s;
}

std::string Random(size_t n, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class CryptoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto keys = RepositoryKeys::Generate();
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *std::move(keys);
  }
  RepositoryKeys keys_;
};

TEST_F(CryptoTest, RoundTripsAtEverySizeEdgeAndStoresIncompressibleDataRaw) {
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{65537}, size_t{1} << 20}) {
    for (const std::string& plain : {Text(n), Random(n)}) {
      const ChunkId id = keys_.Id(plain);
      auto sealed = SealChunk(keys_, id, plain);
      ASSERT_TRUE(sealed.ok()) << sealed.status();
      auto opened = OpenChunk(keys_, id, *sealed);
      ASSERT_TRUE(opened.ok()) << opened.status();
      EXPECT_EQ(*opened, plain) << n;
      if (n >= 4096 && plain[0] == 'S') {
        EXPECT_TRUE(SealedIsCompressed(*sealed));
        EXPECT_LT(sealed->size(), n / 4);
      }
      if (n >= 4096 && plain[0] != 'S') {
        // Random data does not compress: stored raw, overhead only.
        EXPECT_FALSE(SealedIsCompressed(*sealed)) << n;
        EXPECT_EQ(sealed->size(), n + kSealedOverhead);
      }
    }
  }
}

// Samples decide whether a large chunk is compressed at all: random data
// is sealed raw without being compressed whole, and one compressible
// sample is enough to try (a chunk is never stored raw for a sample's sake
// when it would compress).
TEST_F(CryptoTest, OnlyAChunkWhoseEverySampleIsIncompressibleIsSealedRawUntried) {
  const size_t n = 1 << 20;
  EXPECT_TRUE(LooksIncompressible(Random(n)));
  EXPECT_FALSE(LooksIncompressible(Text(n)));
  EXPECT_FALSE(LooksIncompressible(Random((256 << 10) - 1)));  // small: always tried
  // Text where the third sample is taken, random elsewhere.
  std::string mixed = Random(n);
  mixed.replace(n / 4 * 2, 16 << 10, Text(16 << 10));
  EXPECT_FALSE(LooksIncompressible(mixed));
  auto sealed = SealChunk(keys_, keys_.Id(mixed), mixed);
  ASSERT_TRUE(sealed.ok());
  EXPECT_TRUE(SealedIsCompressed(*sealed));
  // Compressible data between the samples is not seen: the chunk is sealed
  // raw, and opens to its bytes.
  std::string between = Random(n);
  between.replace(n / 8, 64 << 10, Text(64 << 10));
  EXPECT_TRUE(LooksIncompressible(between));
  sealed = SealChunk(keys_, keys_.Id(between), between);
  ASSERT_TRUE(sealed.ok());
  EXPECT_FALSE(SealedIsCompressed(*sealed));
  EXPECT_EQ(*OpenChunk(keys_, keys_.Id(between), *sealed), between);
}

TEST_F(CryptoTest, IdsAreKeyedAndSealingUsesAFreshNonce) {
  auto other = RepositoryKeys::Generate();
  ASSERT_TRUE(other.ok());
  const std::string plain = Text(1000);
  EXPECT_EQ(keys_.Id(plain), keys_.Id(plain));
  EXPECT_NE(keys_.Id(plain), other->Id(plain));  // ids leak nothing without the key
  const ChunkId id = keys_.Id(plain);
  EXPECT_NE(*SealChunk(keys_, id, plain), *SealChunk(keys_, id, plain));
}

TEST_F(CryptoTest, AChunkIdFromLeafDigestsEqualsTheIdOfItsBytes) {
  // Blocks are whole leaves, so a chunk of blocks has the id of their
  // leaf digests concatenated, whatever the blocks were hashed apart.
  const std::string a = Text(3 * kLeafSize), b = Text(2 * kLeafSize + 100);
  std::string digests;
  AppendLeafDigests(a, &digests);
  AppendLeafDigests(b, &digests);
  EXPECT_EQ(digests.size(), 6 * kLeafDigestSize);
  EXPECT_EQ(keys_.IdFromLeafDigests(digests), keys_.Id(a + b));
  // Every byte counts, the short last leaf's length too.
  std::string changed = a + b;
  changed[kLeafSize + 7] ^= 1;
  EXPECT_NE(keys_.Id(changed), keys_.Id(a + b));
  EXPECT_NE(keys_.Id(a + b + std::string(1, '\0')), keys_.Id(a + b));
  EXPECT_NE(keys_.Id(""), keys_.Id(std::string(1, '\0')));
  // The same bytes sealed through a reused buffer open the same.
  std::vector<char> scratch;
  for (const std::string& plain : {a + b, std::string("x"), Text(5 * kLeafSize)}) {
    auto sealed = SealChunkTo(keys_, keys_.Id(plain), plain, SealOptions{}, &scratch);
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    auto opened = OpenChunk(keys_, keys_.Id(plain), std::string(*sealed));
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, plain);
  }
}

TEST_F(CryptoTest, EveryAlterationIsRefusedNamingTheChunk) {
  const std::string plain = Text(20000);
  const ChunkId id = keys_.Id(plain);
  const std::string sealed = *SealChunk(keys_, id, plain);
  const std::string name = ChunkIdHex(id);
  // A flipped byte anywhere: the flags, the nonce, the body, the tag.
  for (size_t at : {size_t{1}, size_t{2}, size_t{20}, sealed.size() / 2, sealed.size() - 1}) {
    std::string bad = sealed;
    bad[at] ^= (at == 1 ? 0x01 : 0x40);
    auto opened = OpenChunk(keys_, id, bad);
    ASSERT_FALSE(opened.ok()) << at;
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << at;
    EXPECT_THAT(std::string(opened.status().message()), HasSubstr(name)) << at;
  }
  // Cut short, and too short to be a chunk at all.
  EXPECT_THAT(
      std::string(OpenChunk(keys_, id, sealed.substr(0, sealed.size() - 3)).status().message()),
      HasSubstr("authentication failed"));
  EXPECT_THAT(std::string(OpenChunk(keys_, id, "xy").status().message()),
              HasSubstr("too short for a sealed object"));
  // Another chunk's id (the associated data binds it), another key.
  const ChunkId other_id = keys_.Id("something else");
  EXPECT_THAT(std::string(OpenChunk(keys_, other_id, sealed).status().message()),
              HasSubstr("authentication failed"));
  auto other = RepositoryKeys::Generate();
  EXPECT_FALSE(OpenChunk(*other, id, sealed).ok());
  // Sealed under a wrong id by a buggy writer: caught on opening.
  const std::string wrong = *SealChunk(keys_, other_id, plain);
  EXPECT_THAT(std::string(OpenChunk(keys_, other_id, wrong).status().message()),
              HasSubstr("does not hash to the chunk's id"));
}

TEST_F(CryptoTest, ANewerChunkFormatIsNamed) {
  const std::string plain = Text(100);
  const ChunkId id = keys_.Id(plain);
  std::string sealed = *SealChunk(keys_, id, plain);
  sealed[0] = static_cast<char>(kChunkFormatVersion + 1);
  auto opened = OpenChunk(keys_, id, sealed);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr("is newer than this dagvault"));
}

TEST_F(CryptoTest, KeySlotsOpenWithTheirSecretOnly) {
  const ScryptParams fast{.n = 1 << 10, .r = 8, .p = 1};  // tests need not be slow
  auto by_passphrase = WrapWithPassphrase(keys_, "correct horse battery staple", fast);
  ASSERT_TRUE(by_passphrase.ok()) << by_passphrase.status();
  const std::string key_file = Random(64, 11);
  auto by_file = WrapWithKeyFile(keys_, key_file);
  ASSERT_TRUE(by_file.ok()) << by_file.status();
  EXPECT_NE(by_passphrase->slot(), by_file->slot());

  // Either slot opens the same repository key.
  auto a = Unwrap(*by_passphrase, "correct horse battery staple");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->key(), keys_.key());
  auto b = Unwrap(*by_file, key_file);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->key(), keys_.key());

  // A wrong secret names the slot and never the secret.
  auto wrong = Unwrap(*by_passphrase, "Tr0ub4dor&3");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(wrong.status().message()),
              HasSubstr(absl::StrCat("key slot ", by_passphrase->slot(),
                                     ": the passphrase does not open it")));
  EXPECT_THAT(std::string(wrong.status().message()), ::testing::Not(HasSubstr("Tr0ub4dor")));
  EXPECT_THAT(std::string(Unwrap(*by_file, Random(64, 12)).status().message()),
              HasSubstr("the key file does not open it"));

  // Damage, and a newer format.
  auto damaged = *by_file;
  damaged.mutable_ciphertext()->resize(5);
  EXPECT_THAT(std::string(Unwrap(damaged, key_file).status().message()), HasSubstr("is damaged"));
  auto newer = *by_file;
  newer.set_format_version(2);
  EXPECT_THAT(std::string(Unwrap(newer, key_file).status().message()),
              HasSubstr("is newer than this dagvault"));
  // Refused inputs.
  EXPECT_FALSE(WrapWithPassphrase(keys_, "", fast).ok());
  EXPECT_THAT(std::string(WrapWithKeyFile(keys_, "short").status().message()),
              HasSubstr("a key file holds at least 32 bytes"));
  EXPECT_FALSE(RepositoryKeys::FromKey("too short").ok());
}

}  // namespace
}  // namespace dagvault::repository
