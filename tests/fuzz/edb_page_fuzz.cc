// .edb pages and the database header (mailstore/format/page.h,
// edb_header.h): the start of a database file is read as ReadDbHeader
// reads it (both shadow copies, page size found from either), and each
// page-sized piece is verified as a page.
//
// Input: one flags byte, then the file's first bytes. Flag 1 first seals
// both header copies (fixes their checksums) at the page size copy 0 names.
#include <cstring>
#include <string>
#include <vector>

#include "mailstore/format/codec.h"
#include "mailstore/format/edb_header.h"
#include "mailstore/format/page.h"
#include "tests/fuzz/fuzz_entry.h"

namespace dagvault::fuzz {

using namespace dagvault::mailstore;

int FuzzEdbPage(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  // Exactly the bytes read, no more: a read past them is an ASan report.
  const size_t got = std::min<size_t>(size - 1, 2 * kMaxPageSize);
  std::vector<uint8_t> head(data + 1, data + 1 + got);
  if ((flags & 1) && got >= kMinPageSize) {
    uint32_t ps = LoadU32(head.data() + 44);
    if (!IsValidPageSize(ps)) ps = kMinPageSize;
    for (uint32_t which = 0; which < 2; ++which) {
      if (got >= (which + 1) * size_t{ps}) SealPage(head.data() + which * ps, ps);
    }
  }

  auto read = DecodeDbHeaderCopies(head.data(), got, got, "fuzz.edb");
  if (read.ok()) {
    const DbHeader& h = read->header;
    FUZZ_CHECK(IsValidPageSize(h.page_size));
    FUZZ_CHECK(read->copy_status[0].ok() || read->copy_status[1].ok());
    FUZZ_CHECK(h.db_name.size() <= kMaxDbNameLength);
    FUZZ_CHECK(DbHeaderFieldDiffs(h, h).empty());
    (void)read->ShadowSummary();
    // Encoding a decoded header and decoding it again gives it back.
    std::vector<uint8_t> page(h.page_size);
    for (PageNo which = 0; which < 2; ++which) {
      EncodeDbHeader(h, which, page.data());
      auto again = DecodeDbHeader(page.data(), h.page_size, which);
      FUZZ_CHECK(again.ok());
      FUZZ_CHECK(*again == h);
    }
  }

  // Every page of every size that fits, at the number it claims and at its
  // position.
  for (uint32_t ps = kMinPageSize; ps <= kMaxPageSize; ps *= 2) {
    for (size_t at = 0; at + ps <= got; at += ps) {
      const uint8_t* page = head.data() + at;
      const PageNo position = static_cast<PageNo>(at / ps);
      const absl::Status s = VerifyPage(page, ps, position);
      if (s.ok() && !IsZeroPage(page, ps)) {
        FUZZ_CHECK(PagePgno(page) == position);
        FUZZ_CHECK(std::string(PageTypeName(PageTypeOf(page))) != "invalid");
      }
      (void)VerifyPage(page, ps, PagePgno(page));
    }
  }
  return 0;
}

}  // namespace dagvault::fuzz

DAGVAULT_FUZZ_TARGET(FuzzEdbPage)
