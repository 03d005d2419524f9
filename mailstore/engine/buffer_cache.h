// The buffer cache of a unit: page images keyed by (database, page), shared
// by readers, replaced whole by committing transactions, and written back by
// the lazy writer. Clean pages are evicted least-recently-used first; dirty
// pages stay until written.
//
// Write-ahead rule: a dirty page remembers the log position of its newest
// change (last_lsn), and the lazy writer asks only for pages whose changes
// are already durable in the log.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "mailstore/engine/page_buffer.h"
#include "mailstore/format/types.h"

namespace dagvault::mailstore {

class BufferCache {
 public:
  // Reads a page from its database file into `out`, verified.
  using Loader = std::function<absl::Status(uint32_t db, PageNo pgno, uint8_t* out)>;

  BufferCache(uint32_t page_size, size_t capacity_pages, Loader loader);

  absl::StatusOr<PageRef> Get(uint32_t db, PageNo pgno);

  // Replaces a page with a committed version. first_lsn is where the
  // committing transaction's records start (recovery must read from there),
  // last_lsn where they end.
  void Install(uint32_t db, PageNo pgno, PageRef page, Lsn first_lsn, Lsn last_lsn);

  struct DirtyPage {
    uint32_t db;
    PageNo pgno;
    PageRef page;
    Lsn last_lsn;
    uint64_t version;
  };
  // Snapshots every dirty page and marks them as being written. The caller
  // makes their log records durable before writing them.
  std::vector<DirtyPage> BeginFlush();
  // Marks written pages clean, unless they changed again meanwhile.
  void EndFlush(const std::vector<DirtyPage>& pages);

  // The oldest first_lsn of any dirty page: everything logged before it is
  // in the database files. nullopt when nothing is dirty.
  std::optional<Lsn> OldestDirtyLsn() const;

  size_t dirty_count() const;
  size_t size() const;
  size_t capacity() const { return capacity_; }

  // Drops every page of a database (used when a database file is replaced).
  void Clear();

 private:
  struct Frame {
    PageRef page;
    bool dirty = false;
    bool flushing = false;
    Lsn rec_lsn;          // first change since the page was last clean
    Lsn last_lsn;         // newest change
    Lsn rec_lsn_pending;  // first change made while a write was in flight
    bool changed_while_flushing = false;
    uint64_t version = 0;
    bool in_lru = false;
    std::list<uint64_t>::iterator lru_it;
  };
  static uint64_t Key(uint32_t db, PageNo pgno) { return (uint64_t{db} << 32) | pgno; }
  void TouchLocked(uint64_t key, Frame& frame);
  void RemoveFromLruLocked(Frame& frame);
  void EvictLocked();

  const uint32_t page_size_;
  const size_t capacity_;
  const Loader loader_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Frame> frames_;
  std::list<uint64_t> lru_;  // clean pages, most recent first
  size_t dirty_ = 0;
};

}  // namespace dagvault::mailstore
