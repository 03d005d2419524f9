// A file's digest in a manifest (docs/repository-format.md, "Manifests"),
// derived from the SHA-256 digests of its 4 KiB leaves, which a backup
// computes anyway for chunk ids and block hashes: a backup reads and
// hashes each byte of a database once, not twice.
//
//   tree digest = SHA-256("dagvault file tree v1" ‖ 0x00 ‖
//                         SHA-256(leaf 1) ‖ SHA-256(leaf 2) ‖ …)
//
// Leaves are 4 KiB from the start of the file; only the last may be
// shorter. The leaf digests determine the leaves (short of a SHA-256
// collision), so the tree digest proves the whole file as a plain
// SHA-256 would. Logs keep their plain SHA-256 as well: a log's link hash
// (in the next log's header) is the application's plain SHA-256 of it.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/evp.h"
#include "dagvault/v1/repository.pb.h"

namespace dagvault::repository {

class FileTreeDigest {
 public:
  FileTreeDigest();
  // Leaf digests (AppendLeafDigests), in file order.
  void AddLeafDigests(absl::string_view digests) { sha_.Update(digests); }
  // The next bytes of the file, which start at a leaf boundary; only the
  // file's last call may end inside a leaf.
  void AddData(absl::string_view data);
  // The digests of `n` zero bytes at a leaf boundary (an unstored zero
  // block of a block map), without hashing them.
  void AddZeros(uint64_t n);
  Sha256Digest Finish() { return sha_.Finish(); }

 private:
  Sha256 sha_;
  std::string scratch_;
};

// Appends the leaf digests of `n` zero bytes (from a leaf boundary) to
// `digests`: full leaves share one precomputed digest.
void AppendZeroLeafDigests(uint64_t n, std::string* digests);

// Which digest a manifest's file is proved by, and its expected value:
// the tree digest when the manifest has one, else (format 1 manifests)
// the plain SHA-256. An error names the file when it has neither.
struct ExpectedFileDigest {
  bool tree = false;
  std::string digest;  // 32 bytes
};
absl::StatusOr<ExpectedFileDigest> ExpectedDigestOf(const dagvault::v1::ManifestFile& f,
                                                    absl::string_view where);

}  // namespace dagvault::repository
