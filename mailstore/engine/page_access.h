// The seam between the page structures (B-tree, long values, space map) and
// where pages come from. A transaction implements all three calls over its
// private copies and the buffer cache; read-only views (live readers, the
// offline tools) implement Read only.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "mailstore/engine/page_buffer.h"
#include "mailstore/format/page.h"

namespace dagvault::mailstore {

class PageAccess {
 public:
  virtual ~PageAccess() = default;
  virtual uint32_t page_size() const = 0;
  // A view of the page as this access sees it (a transaction sees its own
  // changes). Valid while the returned reference is held.
  virtual absl::StatusOr<PageRef> Read(PageNo pgno) = 0;
  // A writable copy of an existing page, private to the transaction. The
  // pointer stays valid until the transaction ends.
  virtual absl::StatusOr<uint8_t*> Write(PageNo pgno) = 0;
  // A new, initialised page for a page number just allocated.
  virtual absl::StatusOr<uint8_t*> Create(PageNo pgno, PageType type) = 0;
};

}  // namespace dagvault::mailstore
