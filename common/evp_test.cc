#include "common/evp.h"

#include "gtest/gtest.h"

namespace dagvault {
namespace {

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(DigestToHex(Sha256::Of("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(DigestToHex(Sha256::Of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalEqualsOneShotAndIsReusable) {
  Sha256 h;
  h.Update("ab");
  h.Update("c");
  EXPECT_EQ(h.Finish(), Sha256::Of("abc"));
  h.Update("abc");
  EXPECT_EQ(h.Finish(), Sha256::Of("abc"));
}

TEST(RandomBytes, FillsBuffer) {
  std::array<uint8_t, 32> a{}, b{};
  ASSERT_TRUE(RandomBytes(absl::MakeSpan(a)).ok());
  ASSERT_TRUE(RandomBytes(absl::MakeSpan(b)).ok());
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace dagvault
