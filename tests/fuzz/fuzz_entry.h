// Shared by the fuzz targets (tests/fuzz/*_fuzz.cc).
//
// Each target defines `int Fuzz<Name>(const uint8_t*, size_t)` and names it
// with DAGVAULT_FUZZ_TARGET. Built with -fsanitize=fuzzer (DAGVAULT_FUZZ),
// that becomes libFuzzer's LLVMFuzzerTestOneInput; in the normal build the
// same function is called by fuzz_replay_test for every committed corpus
// and regression input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

// An invariant of the code under test: on failure it prints where and
// aborts, which libFuzzer reports as a crash and saves the input.
#define FUZZ_CHECK(cond)                                                                     \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

#ifdef DAGVAULT_LIBFUZZER
#define DAGVAULT_FUZZ_TARGET(fn)                                            \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    return dagvault::fuzz::fn(data, size);                                  \
  }
#else
#define DAGVAULT_FUZZ_TARGET(fn)
#endif

namespace dagvault::fuzz {

// Every target, for the replay test: directory name under corpus/ and
// regressions/, and its entry function.
int FuzzLogFormat(const uint8_t* data, size_t size);
int FuzzEdbPage(const uint8_t* data, size_t size);
int FuzzCheckpoint(const uint8_t* data, size_t size);
int FuzzRepoPlaintext(const uint8_t* data, size_t size);
int FuzzSealedBlob(const uint8_t* data, size_t size);
int FuzzTextConfig(const uint8_t* data, size_t size);
int FuzzCron(const uint8_t* data, size_t size);
int FuzzRestoreNames(const uint8_t* data, size_t size);

}  // namespace dagvault::fuzz

namespace dagvault::fuzz {
// The repository key of the sealed-blob target and of its seeds (32 bytes).
inline constexpr char kFuzzRepositoryKey[] = "dagvault fuzz key, tests only!!!";
static_assert(sizeof(kFuzzRepositoryKey) == 33);
// The binding the sealed-blob target opens blobs under.
inline constexpr char kFuzzBlobBinding[] = "manifest fuzz";
}  // namespace dagvault::fuzz
