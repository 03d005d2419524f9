// Fixed-width integer encoding for mailstore's binary formats. Everything on
// disk is little-endian, except B-tree keys, which are big-endian so that
// memcmp orders them.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace dagvault::mailstore {

static_assert(std::endian::native == std::endian::little,
              "mailstore formats assume a little-endian host");

inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline uint64_t LoadU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void StoreU16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, sizeof(v)); }
inline void StoreU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, sizeof(v)); }
inline void StoreU64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, sizeof(v)); }

inline uint64_t LoadBigU64(const uint8_t* p) { return __builtin_bswap64(LoadU64(p)); }
inline void StoreBigU64(uint8_t* p, uint64_t v) { StoreU64(p, __builtin_bswap64(v)); }

}  // namespace dagvault::mailstore
