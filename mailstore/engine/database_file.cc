#include "mailstore/engine/database_file.h"

#include <fcntl.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fault_injection.h"
#include "common/status_macros.h"
#include "mailstore/engine/layout.h"
#include "mailstore/engine/memory_page_access.h"
#include "mailstore/engine/space_map.h"
#include "mailstore/format/page.h"

namespace dagvault::mailstore {

absl::StatusOr<std::unique_ptr<DatabaseFile>> DatabaseFile::Open(const std::string& path,
                                                                 bool writable,
                                                                 bool allow_partial_last_page) {
  ASSIGN_OR_RETURN(File file, File::Open(path, writable ? O_RDWR : O_RDONLY));
  ASSIGN_OR_RETURN(DbHeaderRead read, ReadDbHeader(file));
  ASSIGN_OR_RETURN(uint64_t size, file.Size());
  if (size % read.header.page_size != 0 && !allow_partial_last_page) {
    return absl::DataLossError(
        absl::StrFormat("%s: file size %u is not a multiple of the page size %u (truncated?)", path,
                        size, read.header.page_size));
  }
  return std::unique_ptr<DatabaseFile>(new DatabaseFile(std::move(file), read.header));
}

absl::Status DatabaseFile::Create(const std::string& path, const DbHeader& header) {
  if (!IsValidPageSize(header.page_size)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("page size %u is not 4, 8, 16 or 32 KiB", header.page_size));
  }
  ASSIGN_OR_RETURN(File file, File::Open(path, O_RDWR | O_CREAT | O_EXCL, 0644));
  MemoryPageAccess pages(header.page_size);
  RETURN_IF_ERROR(FormatNewDatabase(pages));
  DbHeader h = header;
  // The initial pages carry kInitialDbTime; the header reserves at least it.
  h.dbtime = std::max(h.dbtime, kInitialDbTime);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[h.page_size]);
  for (PageNo which = 0; which < 2; ++which) {
    EncodeDbHeader(h, which, buf.get());
    RETURN_IF_ERROR(file.WriteAt(uint64_t{which} * h.page_size, buf.get(), h.page_size));
  }
  for (const auto& [pgno, page] : pages.pages()) {
    SetPageDbTime(page->data(), kInitialDbTime);
    SealPage(page->data(), h.page_size);
    RETURN_IF_ERROR(file.WriteAt(uint64_t{pgno} * h.page_size, page->data(), h.page_size));
  }
  RETURN_IF_ERROR(file.Sync());
  return FsyncDir(DirName(path));
}

absl::StatusOr<uint64_t> DatabaseFile::PageCount() const {
  ASSIGN_OR_RETURN(uint64_t size, file_.Size());
  return size / page_size_;
}

absl::Status DatabaseFile::ReadPageRaw(PageNo pgno, uint8_t* out) const {
  ASSIGN_OR_RETURN(size_t got, file_.ReadAtMost(uint64_t{pgno} * page_size_, out, page_size_));
  if (got == 0) {
    std::memset(out, 0, page_size_);
  } else if (got != page_size_) {
    return absl::DataLossError(absl::StrFormat("%s: page %u is cut short (%u of %u bytes)", path(),
                                               pgno, got, page_size_));
  }
  return absl::OkStatus();
}

absl::Status DatabaseFile::ReadPageForRedo(PageNo pgno, uint8_t* out, bool* complete) const {
  ASSIGN_OR_RETURN(size_t got, file_.ReadAtMost(uint64_t{pgno} * page_size_, out, page_size_));
  if (got < page_size_) std::memset(out + got, 0, page_size_ - got);
  *complete = got == 0 || got == page_size_;
  return absl::OkStatus();
}

absl::StatusOr<bool> DatabaseFile::HasPartialLastPage() const {
  ASSIGN_OR_RETURN(uint64_t size, file_.Size());
  return size % page_size_ != 0;
}

absl::Status DatabaseFile::ReadPage(PageNo pgno, uint8_t* out) const {
  RETURN_IF_ERROR(ReadPageRaw(pgno, out));
  RETURN_IF_ERROR(Annotate(VerifyPage(out, page_size_, pgno), path()));
  // Cached pages carry no checksum; it is computed again on every write.
  StoreU32(out + page_offsets::kChecksum, 0);
  return absl::OkStatus();
}

absl::Status DatabaseFile::WritePage(PageNo pgno, const uint8_t* page) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[page_size_]);
  std::memcpy(copy.get(), page, page_size_);
  SealPage(copy.get(), page_size_);
  const uint64_t offset = uint64_t{pgno} * page_size_;
  // A kill can land between the 4 KiB folios of one buffered write; the
  // crash point reproduces that torn page on purpose.
  if (CrashPointWillFire("edb.write.torn")) {
    RETURN_IF_ERROR(file_.WriteAt(offset, copy.get(), page_size_ / 2));
  }
  DAGVAULT_CRASH_POINT("edb.write.torn");
  return file_.WriteAt(offset, copy.get(), page_size_);
}

absl::Status DatabaseFile::Sync() { return file_.DataSync(); }

DbHeader DatabaseFile::header() const {
  std::lock_guard<std::mutex> lock(header_mu_);
  return header_;
}

absl::Status DatabaseFile::UpdateHeader(const std::function<void(DbHeader&)>& change) {
  std::lock_guard<std::mutex> lock(header_mu_);
  DbHeader updated = header_;
  change(updated);
  RETURN_IF_ERROR(Annotate(WriteDbHeader(file_, updated), path()));
  header_ = updated;
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
