// CRC32C (Castagnoli). Uses the SSE4.2 crc32 instruction when the CPU has it,
// so that verifying every page of a database runs at memory speed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dagvault {

// Extends `crc` (the value of a previous call, or 0 to start) over n bytes.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

// True when the hardware instruction is in use (reported by benchmarks).
bool Crc32cIsHardware();

}  // namespace dagvault
