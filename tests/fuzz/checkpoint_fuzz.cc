// The checkpoint file (mailstore/format/checkpoint.h): decoded as
// ReadCheckpointFile does; a decoded checkpoint encodes and decodes back to
// itself.
//
// Input: one flags byte, then the file. Flag 1 first fixes both copies'
// checksums.
#include <cstring>
#include <string>

#include "common/crc32c.h"
#include "mailstore/format/checkpoint.h"
#include "mailstore/format/codec.h"
#include "tests/fuzz/fuzz_entry.h"

namespace dagvault::fuzz {

using namespace dagvault::mailstore;

int FuzzCheckpoint(const uint8_t* data, size_t size) {
  if (size < 1 || size > 4 * kCheckpointCopySize) return 0;
  const uint8_t flags = data[0];
  std::string file(reinterpret_cast<const char*>(data + 1), size - 1);
  if (flags & 1) {
    for (size_t i = 0; (i + 1) * kCheckpointCopySize <= file.size() && i < 2; ++i) {
      auto* p = reinterpret_cast<uint8_t*>(file.data()) + i * kCheckpointCopySize;
      StoreU32(p + 12, 0);
      StoreU32(p + 12, Crc32c(p, kCheckpointCopySize));
    }
  }
  auto read = DecodeCheckpointFile(file, "fuzz.chk");
  if (!read.ok()) return 0;
  FUZZ_CHECK(read->copy_status[0].ok() || read->copy_status[1].ok());
  const std::string encoded = EncodeCheckpointFile(read->checkpoint);
  FUZZ_CHECK(encoded.size() == 2 * kCheckpointCopySize);
  auto again = DecodeCheckpointFile(encoded, "again.chk");
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->BothValid());
  FUZZ_CHECK(again->checkpoint == read->checkpoint);
  return 0;
}

}  // namespace dagvault::fuzz

DAGVAULT_FUZZ_TARGET(FuzzCheckpoint)
