// Pages like an .edb file's, for the repository's tests and benchmark:
// 8 KiB, half compressible text and half random bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace dagvault::testing {

inline constexpr uint32_t kEdbPage = 8192;

inline void FillEdbPage(std::mt19937_64& rng, char* page, uint32_t size = kEdbPage) {
  static const char kWords[] = "mailbox message subject from to date attachment body ";
  for (uint32_t i = 0; i < size / 2; ++i) page[i] = kWords[(rng() >> 7) % (sizeof(kWords) - 1)];
  for (uint32_t i = size / 2; i < size; i += 8) {
    const uint64_t r = rng();
    std::memcpy(page + i, &r, std::min<uint32_t>(8, size - i));
  }
}

// Picks `fraction` of `pages` pages to change, uniformly at random or in
// runs of 16, and calls change(page) once for each.
template <typename Change>
void ForEachChangedPage(uint64_t pages, double fraction, bool runs, std::mt19937_64& rng,
                        Change change) {
  const uint64_t want = static_cast<uint64_t>(pages * fraction);
  std::vector<bool> changed(pages);
  for (uint64_t done = 0; done < want;) {
    const uint64_t start = rng() % pages;
    const uint64_t len = runs ? std::min<uint64_t>(16, want - done) : 1;
    for (uint64_t p = start; p < std::min(pages, start + len); ++p) {
      if (changed[p]) continue;
      changed[p] = true;
      change(p);
      ++done;
    }
  }
}

}  // namespace dagvault::testing
