// Restoring a manifest's files into a folder (docs/repository-format.md,
// "Restoring"). Chunks that lie next to each other in a pack are fetched by
// one ranged read (at most the store's restore_read_bytes(): 8 MiB from a
// folder, 4 MiB from S3; memory for reads stays at most workers × that).
// Each chunk a file needs is read, authenticated and decrypted once,
// however many blocks of the map point into it, by `workers` threads; its
// blocks are written at their offsets, and blocks
// that are all zeros are left as holes. In a chain, a base chunk is
// written whole in a first pass and the newer pages over it in a second
// (PlanSpans in restore.cc). Each file is written under a
// temporary name, proved byte-identical by its digest (file_digest.h), and
// only then renamed into place: a restore that fails leaves no file with
// wrong bytes under a real name.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "repository/lock.h"
#include "repository/repository.h"
#include "repository/transfer_control.h"

namespace dagvault::repository {

struct RestoreOptions {
  int workers = 0;                 // 0: two per core (reads wait on the disk)
  std::vector<std::string> files;  // manifest names; empty: every file
  bool overwrite = false;          // replace files that exist in the target
  // Manifest name → the path to restore it to. When given, exactly these
  // files are restored, each to its own path, and `files` and the target
  // folder are not used: a unit's databases and logs live in different
  // folders.
  std::map<std::string, std::string> targets;
  LockOptions lock;
  TransferControl* control = nullptr;  // not owned; may be null
};

struct RestoreResult {
  uint64_t files = 0;
  uint64_t bytes = 0;        // logical
  uint64_t chunks_read = 0;  // each distinct chunk of each file, once
  uint64_t sealed_bytes_read = 0;
  // Ranged reads of packs: adjacent chunks are fetched together (one
  // request each on an object store).
  uint64_t pack_reads = 0;
  // Chunks written whole, over the places of newer pages that were then
  // written over them (a chain's base chunks).
  uint64_t span_writes = 0;
};

// Whether a manifest's file name may be restored: joined to a target
// folder (JoinPath), it names a path inside that folder.
bool IsSafeFileName(absl::string_view name);

absl::StatusOr<RestoreResult> Restore(const Repository& repo, const std::string& manifest_id,
                                      const std::string& target_dir,
                                      const RestoreOptions& options = {});

}  // namespace dagvault::repository
