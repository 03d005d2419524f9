// A restore's end-to-end proof (docs/repository-format.md, "Restoring"):
// each restored file is read back, segment by segment as the restore
// completes them, and its digest (file_digest.h) compared with the
// manifest's before the file may be put in place.
//
// Segments are read back and hashed by several threads, so the proof
// keeps pace with the writers instead of adding a pass at the end: a
// tree digest's leaf digests are computed per segment in parallel and
// folded in file order; a format-1 file's plain SHA-256 takes each
// segment's bytes in order.
//
// A file kept out of the page cache (a database) is read back around
// the cache, so that what is hashed is what the disk holds, and pages
// written through the cache are dropped once proved and written out.
// A log is read back through the cache and stays there: replay reads it
// next.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "repository/file_digest.h"

namespace dagvault::repository {

class RestoreProof {
 public:
  static constexpr uint64_t kSegment = 4 << 20;

  struct Target {
    std::string path;  // the partial file being restored
    std::string name;  // in the manifest, for errors
    uint64_t size = 0;
    ExpectedFileDigest expected;
    bool stays_out_of_cache = false;
  };

  RestoreProof(std::string manifest_id, std::vector<Target> targets);

  // Before Run: the restore will write [offset, offset + length) of
  // target `file`. Bytes it never writes (zero blocks) stay holes.
  void Expect(size_t file, uint64_t offset, uint64_t length);
  // From any restoring thread: those bytes are written.
  void Written(size_t file, uint64_t offset, uint64_t length);
  // The restore failed: Run returns soon, with OK (the failure is the
  // restore's to report).
  void Abort();

  // Proves every target with `threads` threads (this one included),
  // returning when all are proved and synced, on the first mismatch or
  // error (named), or after Abort.
  absl::Status Run(int threads);

 private:
  struct FileState {
    std::vector<uint64_t> expected, written;  // bytes per segment
    uint64_t folded = 0;                      // segments taken into the digest, in order
    FileTreeDigest tree;
    Sha256 sha;
  };
  struct Job {
    size_t file;
    uint64_t segment;
  };

  void RunJobs();
  absl::Status ProveSegment(const Job& job);
  absl::Status Finish(size_t file);
  void Stop(absl::Status s);
  static void Add(std::vector<uint64_t>* counts, uint64_t offset, uint64_t length);

  const std::string manifest_id_;
  const std::vector<Target> targets_;
  std::vector<Job> jobs_;
  std::atomic<size_t> next_job_{0};

  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<FileState> files_;  // counts and `folded` guarded by mu_
  bool stopped_ = false;          // guarded by mu_
  absl::Status status_;           // guarded by mu_
};

}  // namespace dagvault::repository
