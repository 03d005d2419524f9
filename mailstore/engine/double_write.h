// A double-write buffer: pages about to be written in place are first
// written, with checksums, to a side file and synced. If the in-place
// write is then torn by a crash, the intact copy in the side file repairs
// the page before replay resumes.
//
// The active engine does not need one: its log holds an image of every
// page written after the checkpoint (full-page writes). Page writes that
// the log does not cover the same way do: replay on a passive copy (the
// log's images follow the active's epochs, not the passive's flushes) and
// recovery itself.
//
// File layout: a 64-byte header {magic "MSTORDWB", version u32, page size
// u32, entry count u32, CRC32C of everything after the header u32, zeros},
// then per entry {database index u32, page u32} followed by the page.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mailstore/engine/database_file.h"

namespace dagvault::mailstore {

class DoubleWriteBuffer {
 public:
  explicit DoubleWriteBuffer(std::string path) : path_(std::move(path)) {}

  struct Entry {
    uint32_t db_index;
    PageNo pgno;
    const uint8_t* page;  // page_size bytes, checksum field zero
  };
  // Writes the entries and syncs. In-place writes may start afterwards.
  absl::Status Write(const std::vector<Entry>& entries, uint32_t page_size);
  // Empties the buffer (after the in-place writes are synced).
  absl::Status Clear();

  // Restores every page that the buffer holds and that is damaged or cut
  // short in its database. A buffer torn while being written (bad
  // checksum) is ignored: the in-place writes had not started. Returns how
  // many pages were repaired. dbs[i] is the database with index i (or null).
  absl::StatusOr<int> Repair(const std::vector<DatabaseFile*>& dbs);

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace dagvault::mailstore
