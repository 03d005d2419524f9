// Log files and log records (mailstore/format/log_format.h): a whole log
// file image is scanned as ScanLogFile does, then checked as the closed or
// open log, and every record's body is decoded as `mailstore-util check`
// and redo do.
//
// Input: one flags byte, then the file image. Flag 1 first fixes the
// header's file size and checksum, flag 2 every record's checksum, so that
// mutations reach past the checksums.
#include <cstring>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "mailstore/format/codec.h"
#include "mailstore/format/log_format.h"
#include "mailstore/format/page.h"
#include "tests/fuzz/fuzz_entry.h"

namespace dagvault::fuzz {
namespace {

using namespace dagvault::mailstore;

void FixRecordChecksums(std::string* image) {
  auto* p = reinterpret_cast<uint8_t*>(image->data());
  const size_t size = image->size();
  size_t offset = kLogHeaderSize;
  while (offset + kRecordHeaderSize <= size) {
    const uint32_t length = LoadU32(p + offset + 4);
    if (length < kRecordHeaderSize || length > size - offset) break;
    StoreU32(p + offset, Crc32c(p + offset + 4, length - 4));
    offset += RecordSpace(length - kRecordHeaderSize);
  }
}

void FixHeader(std::string* image) {
  if (image->size() < kLogHeaderSize) return;
  auto* p = reinterpret_cast<uint8_t*>(image->data());
  StoreU32(p + 20, static_cast<uint32_t>(image->size()));
  StoreU32(p + 12, 0);
  StoreU32(p + 12, Crc32c(p, kLogHeaderSize));
}

void CheckHeaderRoundTrip(const LogHeader& h) {
  const std::string encoded = EncodeLogHeader(h);
  FUZZ_CHECK(encoded.size() == kLogHeaderSize);
  auto again = DecodeLogHeader(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->format_version == h.format_version);
  FUZZ_CHECK(again->generation == h.generation);
  FUZZ_CHECK(again->file_size == h.file_size);
  FUZZ_CHECK(again->log_signature == h.log_signature);
  FUZZ_CHECK(again->created_us == h.created_us);
  FUZZ_CHECK(again->has_prev_link == h.has_prev_link);
  FUZZ_CHECK(!h.has_prev_link || again->prev_link == h.prev_link);
  FUZZ_CHECK(again->circular_logging == h.circular_logging);
  FUZZ_CHECK(again->page_size == h.page_size);
  FUZZ_CHECK(again->databases == h.databases);
}

void DecodeBody(const LogRecordView& r, uint32_t header_page_size) {
  switch (r.type) {
    case RecordType::kPageImage:
    case RecordType::kPageDelta:
    case RecordType::kPageImageSparse: {
      // As `mailstore-util check` does: with the page size the header gives.
      (void)CheckPageRecordBody(r, header_page_size);
      // As redo does: with the database's page size, always a valid one.
      const uint32_t page_size = IsValidPageSize(header_page_size) ? header_page_size : 8192;
      std::vector<uint8_t> page(page_size);
      if (r.type == RecordType::kPageImage) {
        auto image = DecodePageImage(r, page_size);
        if (image.ok()) {
          FUZZ_CHECK(uint64_t{r.body_size} == uint64_t{kPageImagePrefixSize} + page_size);
          std::memcpy(page.data(), image->page, page_size);
        }
      } else {
        auto delta = DecodePageDelta(r, page_size);
        if (delta.ok()) {
          FUZZ_CHECK(delta->ranges + delta->ranges_size == r.body + r.body_size);
          FUZZ_CHECK(ApplyPageDelta(*delta, page.data(), page_size).ok());
        }
      }
      break;
    }
    case RecordType::kCommit:
      (void)DecodeCommit(r);
      break;
    case RecordType::kSeal:
      (void)DecodeSeal(r);
      break;
    case RecordType::kTerm:
    case RecordType::kStart:
      (void)DecodeTerm(r);
      break;
  }
}

}  // namespace

int FuzzLogFormat(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  const uint8_t flags = data[0];
  std::string image(reinterpret_cast<const char*>(data + 1), size - 1);
  if (flags & 2) FixRecordChecksums(&image);
  if (flags & 1) FixHeader(&image);

  auto scan = ScanLogImage("fuzz.log", image);
  if (!scan.ok()) return 0;
  CheckHeaderRoundTrip(scan->header);
  FUZZ_CHECK(scan->data.size() == image.size());
  FUZZ_CHECK(scan->valid_end >= kLogHeaderSize);
  FUZZ_CHECK(scan->valid_end <= scan->data.size());
  const auto* base = reinterpret_cast<const uint8_t*>(scan->data.data());
  for (const LogRecordView& r : scan->records) {
    FUZZ_CHECK(r.lsn.generation == scan->header.generation);
    FUZZ_CHECK(r.body == base + r.lsn.offset + kRecordHeaderSize);
    FUZZ_CHECK(r.lsn.offset + uint64_t{kRecordHeaderSize} + r.body_size <= scan->data.size());
    // A record re-encoded from its view is the bytes it was read from.
    std::string again;
    AppendRecord(&again, r.lsn, r.type, r.db_index, {absl::MakeConstSpan(r.body, r.body_size)});
    FUZZ_CHECK(again.size() == r.space);
    const size_t n = std::min<size_t>(r.space, scan->data.size() - r.lsn.offset);
    FUZZ_CHECK(std::memcmp(again.data(), base + r.lsn.offset, n) == 0);
    DecodeBody(r, scan->header.page_size);
  }
  (void)CheckClosedLog(*scan);
  (void)CheckOpenLog(*scan);
  return 0;
}

}  // namespace dagvault::fuzz

DAGVAULT_FUZZ_TARGET(FuzzLogFormat)
