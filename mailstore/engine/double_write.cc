#include "mailstore/engine/double_write.h"

#include <fcntl.h>

#include <cstring>

#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "mailstore/format/codec.h"
#include "mailstore/format/page.h"

namespace dagvault::mailstore {
namespace {

constexpr char kMagic[8] = {'M', 'S', 'T', 'O', 'R', 'D', 'W', 'B'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kHeaderSize = 64;
constexpr uint32_t kEntryHeaderSize = 8;

}  // namespace

absl::Status DoubleWriteBuffer::Write(const std::vector<Entry>& entries, uint32_t page_size) {
  std::string data(kHeaderSize, '\0');
  data.reserve(kHeaderSize + entries.size() * (kEntryHeaderSize + page_size));
  for (const Entry& e : entries) {
    uint8_t head[kEntryHeaderSize];
    StoreU32(head, e.db_index);
    StoreU32(head + 4, e.pgno);
    data.append(reinterpret_cast<const char*>(head), sizeof(head));
    const size_t at = data.size();
    data.append(reinterpret_cast<const char*>(e.page), page_size);
    SealPage(reinterpret_cast<uint8_t*>(data.data() + at), page_size);
  }
  auto* h = reinterpret_cast<uint8_t*>(data.data());
  std::memcpy(h, kMagic, 8);
  StoreU32(h + 8, kVersion);
  StoreU32(h + 12, page_size);
  StoreU32(h + 16, static_cast<uint32_t>(entries.size()));
  StoreU32(h + 20, Crc32c(data.data() + kHeaderSize, data.size() - kHeaderSize));
  ASSIGN_OR_RETURN(File f, File::Open(path_, O_RDWR | O_CREAT | O_TRUNC, 0644));
  RETURN_IF_ERROR(f.WriteAt(0, data.data(), data.size()));
  RETURN_IF_ERROR(f.DataSync());
  DAGVAULT_CRASH_POINT("dwb.written");
  return absl::OkStatus();
}

absl::Status DoubleWriteBuffer::Clear() {
  ASSIGN_OR_RETURN(File f, File::Open(path_, O_RDWR | O_CREAT, 0644));
  RETURN_IF_ERROR(f.Truncate(0));
  return f.DataSync();
}

absl::StatusOr<int> DoubleWriteBuffer::Repair(const std::vector<DatabaseFile*>& dbs) {
  if (!PathExists(path_)) return 0;
  ASSIGN_OR_RETURN(std::string data, ReadFileToString(path_));
  if (data.size() < kHeaderSize) return 0;  // empty: nothing was in flight
  const auto* h = reinterpret_cast<const uint8_t*>(data.data());
  if (std::memcmp(h, kMagic, 8) != 0 || LoadU32(h + 8) != kVersion) {
    return absl::DataLossError(absl::StrCat(path_, ": not a double-write buffer"));
  }
  const uint32_t page_size = LoadU32(h + 12);
  const uint32_t count = LoadU32(h + 16);
  const uint64_t expected = kHeaderSize + uint64_t{count} * (kEntryHeaderSize + page_size);
  if (data.size() != expected ||
      LoadU32(h + 20) != Crc32c(data.data() + kHeaderSize, data.size() - kHeaderSize)) {
    return 0;  // torn while being written: no page had been written in place yet
  }
  int repaired = 0;
  std::string current(page_size, '\0');
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* entry = h + kHeaderSize + uint64_t{i} * (kEntryHeaderSize + page_size);
    const uint32_t db = LoadU32(entry);
    const PageNo pgno = LoadU32(entry + 4);
    const uint8_t* page = entry + kEntryHeaderSize;
    if (db >= dbs.size() || dbs[db] == nullptr || dbs[db]->page_size() != page_size) continue;
    bool complete = true;
    RETURN_IF_ERROR(
        dbs[db]->ReadPageForRedo(pgno, reinterpret_cast<uint8_t*>(current.data()), &complete));
    // An intact page was written completely; a torn, cut-short or
    // never-written one is restored from the buffer.
    const bool intact =
        complete &&
        VerifyPage(reinterpret_cast<const uint8_t*>(current.data()), page_size, pgno).ok() &&
        !IsZeroPage(reinterpret_cast<const uint8_t*>(current.data()), page_size);
    if (intact) continue;
    RETURN_IF_ERROR(dbs[db]->WritePage(pgno, page));
    repaired++;
  }
  if (repaired > 0) {
    for (DatabaseFile* db : dbs) {
      if (db != nullptr) RETURN_IF_ERROR(db->Sync());
    }
  }
  return repaired;
}

}  // namespace dagvault::mailstore
