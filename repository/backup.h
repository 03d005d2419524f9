// Backing up a set of files into a new manifest: the repository's
// parallel write path (docs/repository-format.md, "Writing a backup").
//
// Stages, over 4 MiB segments of the files: two reader threads read
// segments ahead by direct I/O (common/uncached_io.h: the page cache is
// left to the mail server); `workers` threads cut them (fixed chunks, or
// blocks for a block map) → hash each 4 KiB leaf once → look up in the
// index (and, for blocks, in the base manifest's map) → compress →
// encrypt → append to this session's pack. Each file's tree digest
// (file_digest.h) is taken over the leaf digests in file order by
// whichever worker finishes the next segment due, so reading and sealing
// run ahead of it by a bounded window.
//
// Memory: the window holds at most 2 × workers + 2 segments (4 MiB each;
// a log's until its plain SHA-256 has taken it, any other file's only
// until it is sealed); each worker its sealed output (~4 MiB); packs of up
// to the pack target (32 MiB by default, plus a chunk) each: the one being
// filled or handed to the writers (the worker handing it over waits under
// the pack lock, so no other worker fills another meanwhile), one queued
// and the U being written: with one writer on a folder 3 packs, about
// 111 MiB; with U = 3 uploads on an object store 5, about 185 MiB; plus an
// 8 MiB direct-I/O buffer per folder writer, the index (index.h) and the
// block maps (12 bytes per block).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/repository.pb.h"
#include "repository/lock.h"
#include "repository/repository.h"
#include "repository/transfer_control.h"

namespace dagvault::repository {

struct BackupFile {
  std::string path;  // where to read it
  std::string name;  // its name in the manifest (a relative path)
  std::string role;  // "database", "log", "checkpoint", ...
  std::string component;
  uint32_t generation = 0;
};

// Sees a backup's data as it is read: the inline verification of the
// application's files (the agent's consistency check).
class BackupObserver {
 public:
  virtual ~BackupObserver() = default;
  // Each segment as it is read, before it is stored. Called by several
  // worker threads at once, in no set order; `file` indexes the files
  // given to Backup. An error fails the backup, and no manifest is written.
  virtual absl::Status OnSegment(size_t file, uint64_t offset, absl::string_view data) = 0;
  // The manifest, complete but not yet written (every file hashed): the
  // last word before the commit. It may add to the manifest (labels, log
  // link hashes); an error stops the manifest from being written.
  virtual absl::Status BeforeCommit(dagvault::v1::Manifest* manifest) = 0;
};

struct BackupOptions {
  int workers = 0;      // 0: one per core
  int zstd_level = -1;  // -1: the repository's default
  // Packs written at once: 0 for the store's choice (1 on a folder, 3 on
  // S3); each is a pack target's memory.
  int uploads = 0;
  // Files with role "database", and any file at least this large, are
  // stored as block maps; the rest as fixed chunks.
  uint64_t block_map_min_size = 64 << 20;
  uint32_t page_size = 8192;
  uint32_t fixed_chunk_size = 4 << 20;  // a multiple of 4 KiB (kLeafSize)
  // The manifest whose block maps to compare against: "" for none,
  // "auto" for the newest manifest of the same unit.
  std::string base_manifest = "auto";
  LockOptions lock;
  // How long, at least, every pack, the index file and the manifest are
  // immutable on a repository with Object Lock (the unit's retention and a
  // margin); the repository's object_lock_days when longer.
  absl::Duration retain_at_least = absl::ZeroDuration();
  BackupObserver* observer = nullptr;  // not owned; may be null
  TransferControl* control = nullptr;  // not owned; may be null
};

// The manifest's descriptive fields (unit, type, source, writer,
// signatures, generations, labels) come from `header`; files, sizes,
// timings and the id are filled in. Returns the manifest as written.
absl::StatusOr<dagvault::v1::Manifest> Backup(const Repository& repo,
                                              const std::vector<BackupFile>& files,
                                              const dagvault::v1::Manifest& header,
                                              const BackupOptions& options = {});

}  // namespace dagvault::repository
