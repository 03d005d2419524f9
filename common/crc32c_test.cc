#include "common/crc32c.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace dagvault {
uint32_t Crc32cSoftwareForTest(uint32_t crc, const void* data, size_t n);
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 test vectors.
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  std::string inc(32, '\0');
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<char>(i);
  EXPECT_EQ(Crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
}

TEST(Crc32c, HardwareAndSoftwareAgreeAtEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  std::string buf(300, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  for (size_t start = 0; start < 9; ++start) {
    for (size_t len = 0; len + start <= buf.size(); len += 7) {
      EXPECT_EQ(Crc32c(buf.data() + start, len), Crc32cSoftwareForTest(0, buf.data() + start, len))
          << "start " << start << " len " << len;
    }
  }
}

TEST(Crc32c, ExtendEqualsOneShot) {
  std::string s = "the quick brown fox jumps over the lazy dog";
  uint32_t a = Crc32cExtend(Crc32c(s.data(), 10), s.data() + 10, s.size() - 10);
  EXPECT_EQ(a, Crc32c(s.data(), s.size()));
}

}  // namespace
}  // namespace dagvault
