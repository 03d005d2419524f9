// The checks of a restore verification (issue 20 §2) on a Recovery
// Database that recovery has just made consistent, in the order an
// operator runs them by hand: first the files, page by page and deeply
// (mailstore-util check --deep: every page's checksum and number, the
// space map, the B-tree, every long value), then, once mounted, every
// item read through the engine for the content digest, the database's own
// item and byte counters against that walk, and a sample of items read by
// key. Each problem names the page, item, count or digest at fault.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/writer.pb.h"
#include "mailstore/engine/engine.h"

namespace dagvault::mailstore {

struct RecoveredFile {
  std::string database;  // its name in the unit
  std::string path;
};

// One DatabaseCheck per file, with its pages and the damage the deep check
// found. Never fails: a file that cannot be read is a problem of its own.
std::vector<dagvault::v1::DatabaseCheck> CheckRecoveredFiles(
    const std::vector<RecoveredFile>& files);

// On the mounted engine: database `index`'s content digest, its counters
// against the walk, and `checks.sample_items` items read by key. Adds what
// it finds to `check`.
void ReadMountedDatabase(Engine& engine, uint32_t index,
                         const dagvault::v1::RecoveryDatabaseChecks& checks,
                         dagvault::v1::DatabaseCheck* check);

}  // namespace dagvault::mailstore
