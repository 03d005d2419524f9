// One open .edb file: positional page I/O with verification, and the
// in-memory copy of its header, written back under a mutex.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "common/file_util.h"
#include "mailstore/format/edb_header.h"

namespace dagvault::mailstore {

class DatabaseFile {
 public:
  // A file whose size is not a multiple of the page size is refused, unless
  // allow_partial_last_page: recovery of a DirtyShutdown database accepts
  // a last page cut short by a crash (its image is in the log).
  static absl::StatusOr<std::unique_ptr<DatabaseFile>> Open(const std::string& path, bool writable,
                                                            bool allow_partial_last_page = false);

  // Creates a new database file: both header copies and the fixed pages
  // (meta, empty root, space map 0), all fsynced. Fails if the file exists.
  static absl::Status Create(const std::string& path, const DbHeader& header);

  const std::string& path() const { return file_.path(); }
  uint32_t page_size() const { return page_size_; }
  absl::StatusOr<uint64_t> PageCount() const;

  // Reads and verifies a page. Pages past the end of the file, and pages
  // never written, read as zeros. Errors name the file and page.
  absl::Status ReadPage(PageNo pgno, uint8_t* out) const;
  // Reads without verifying (for tools that report damage themselves).
  absl::Status ReadPageRaw(PageNo pgno, uint8_t* out) const;
  // Reads for redo: a page cut short by a crash reads as its bytes followed
  // by zeros, and *complete is false.
  absl::Status ReadPageForRedo(PageNo pgno, uint8_t* out, bool* complete) const;
  // True when the file ends in part of a page (a crash cut its write short).
  absl::StatusOr<bool> HasPartialLastPage() const;
  // Writes a page image; the checksum is computed on a copy here.
  absl::Status WritePage(PageNo pgno, const uint8_t* page);
  absl::Status Sync();

  DbHeader header() const;
  // Applies `change` to the header and writes both copies durably.
  absl::Status UpdateHeader(const std::function<void(DbHeader&)>& change);

 private:
  DatabaseFile(File file, DbHeader header)
      : file_(std::move(file)), page_size_(header.page_size), header_(std::move(header)) {}

  File file_;
  const uint32_t page_size_;
  mutable std::mutex header_mu_;
  DbHeader header_;
};

}  // namespace dagvault::mailstore
