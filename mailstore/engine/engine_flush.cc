// The lazy writer and the checkpoint: writing dirty pages back to the
// database files (never before their log records are durable) and moving
// the checkpoint forward, with circular logging's deletions after it.
#include <algorithm>
#include <map>

#include "absl/strings/str_format.h"
#include "common/fault_injection.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/layout.h"

namespace dagvault::mailstore {

void Engine::StartLazyWriter() {
  lazy_writer_ = std::thread([this] { LazyWriterLoop(); });
}

void Engine::StopLazyWriter() {
  {
    std::lock_guard<std::mutex> lock(lw_mu_);
    lw_stop_ = true;
    lw_wake_.notify_all();
    lw_done_.notify_all();
  }
  if (lazy_writer_.joinable()) lazy_writer_.join();
}

void Engine::LazyWriterLoop() {
  std::unique_lock<std::mutex> lock(lw_mu_);
  while (!lw_stop_) {
    if (!lw_requested_) {
      lw_wake_.wait_for(lock, absl::ToChronoMilliseconds(options_.flush_interval));
    }
    if (lw_stop_) break;
    lw_requested_ = false;
    lock.unlock();
    absl::Status status = health().ok() ? FlushCycle() : absl::OkStatus();
    if (!status.ok()) Fail(status);
    lock.lock();
    lw_cycles_++;
    lw_done_.notify_all();
  }
}

absl::Status Engine::FlushNow() {
  RETURN_IF_ERROR(health());
  absl::Status s = FlushCycle();
  if (!s.ok()) Fail(s);
  return s;
}

absl::Status Engine::WaitForDirtyRoom() {
  const size_t limit = static_cast<size_t>(cache_->capacity() * options_.max_dirty_fraction);
  while (cache_->dirty_count() > limit) {
    RETURN_IF_ERROR(health());
    std::unique_lock<std::mutex> lock(lw_mu_);
    if (lw_stop_) return absl::OkStatus();
    const uint64_t seen = lw_cycles_;
    lw_requested_ = true;
    lw_wake_.notify_one();
    lw_done_.wait(lock, [&] { return lw_cycles_ != seen || lw_stop_; });
  }
  return absl::OkStatus();
}

absl::Status Engine::FlushCycle() {
  std::lock_guard<std::mutex> guard(flush_mu_);
  // Frozen for a snapshot: not a byte of the unit's files may change.
  if (flush_frozen_) return absl::OkStatus();
  // The cycle's redo point R. Taken with the snapshot of the dirty pages in
  // one step under the install lock, so that every page changed before R
  // is written in this cycle, every page still dirty afterwards changed
  // after R, and from R on the first change of each page is logged as an
  // image. The checkpoint is therefore exactly R, and after a crash every
  // page that may be torn on disk has an image at or after it.
  Lsn redo_point;
  std::vector<BufferCache::DirtyPage> pages;
  {
    std::unique_lock<std::shared_mutex> lock(install_mu_);
    redo_point = log_->append_lsn();
    image_epoch_++;
    pages = cache_->BeginFlush();
  }
  // The write-ahead rule: the snapshot's records, all placed before R, are
  // made durable before any page is written.
  RETURN_IF_ERROR(log_->WaitDurable(redo_point));
  const Lsn durable = log_->durable_lsn();
  if (!pages.empty()) {
    std::sort(pages.begin(), pages.end(), [](const auto& a, const auto& b) {
      return std::tie(a.db, a.pgno) < std::tie(b.db, b.pgno);
    });
    // Per database, the newest generation and the highest dbtime written.
    std::map<uint32_t, std::pair<Generation, DbTime>> newest;
    for (const auto& p : pages) {
      auto& [gen, dbtime] = newest[p.db];
      gen = std::max(gen, p.last_lsn.generation);
      dbtime = std::max(dbtime, PageDbTime(p.page->data()));
    }
    // The header's own write-ahead rule: before the file holds a change, its
    // header must name the logs that change needs (log_required_max) and
    // reserve its dbtime (no page above the header's dbtime, so that a
    // session after a crash numbers its changes above every page on disk).
    for (const auto& [db, high] : newest) {
      const DbHeader h = dbs_[db]->header();
      if (h.log_required_max < high.first || h.dbtime < high.second) {
        RETURN_IF_ERROR(dbs_[db]->UpdateHeader([&](DbHeader& hh) {
          hh.log_required_max = std::max(hh.log_required_max, durable.generation);
          hh.log_committed = durable.generation;
          hh.dbtime = std::max(hh.dbtime, dbtime_[db]->load() + kDbTimeReserve);
        }));
      }
    }
    for (size_t i = 0; i < pages.size(); ++i) {
      const auto& p = pages[i];
      RETURN_IF_ERROR(dbs_[p.db]->WritePage(p.pgno, p.page->data()));
      if (i == pages.size() / 2) DAGVAULT_CRASH_POINT("lazywriter.mid_flush");
    }
    for (const auto& [db, high] : newest) RETURN_IF_ERROR(dbs_[db]->Sync());
    cache_->EndFlush(pages);
  }
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    stats_.pages_flushed += pages.size();
    stats_.flush_cycles++;
  }

  // The checkpoint: everything logged before it is in the files, and no
  // later than R. A commit places its records and installs its pages under
  // the install lock, so holding it here means no transaction is half-way
  // between the two.
  Lsn candidate;
  {
    std::shared_lock<std::shared_mutex> lock(install_mu_);
    // Pages still dirty changed after R; min() only guards the invariant.
    const std::optional<Lsn> oldest = cache_->OldestDirtyLsn();
    candidate = oldest ? std::min(*oldest, redo_point) : redo_point;
  }
  RETURN_IF_ERROR(AdvanceCheckpoint(candidate));
  std::lock_guard<std::mutex> lock(state_mu_);
  stats_.last_redo_point = redo_point;
  stats_.checkpoint = checkpoint_.position;
  return absl::OkStatus();
}

// Called with flush_mu_ held.
absl::Status Engine::AdvanceCheckpoint(Lsn candidate) {
  if (candidate <= checkpoint_.position) return absl::OkStatus();
  const Generation gen = candidate.generation;
  const Generation durable_gen = log_->durable_lsn().generation;
  // Each database's header records the checkpoint first, so that it stays
  // right for the file even if the file is later restored on its own.
  for (size_t i = 0; i < dbs_.size(); ++i) {
    RETURN_IF_ERROR(dbs_[i]->UpdateHeader([&](DbHeader& h) {
      h.checkpoint = candidate;
      h.log_required_min = std::max(h.log_required_min, gen);
      h.log_required_max = std::max(h.log_required_max, gen);
      h.log_committed = durable_gen;
    }));
  }
  DAGVAULT_CRASH_POINT("checkpoint.before_chk");
  Checkpoint next = checkpoint_;
  next.position = candidate;
  next.time_us = options_.clock->NowMicros();
  RETURN_IF_ERROR(WriteCheckpointFile(unit_.CheckpointPath(), next));
  checkpoint_ = next;
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    stats_.checkpoint = candidate;
  }
  if (unit_.circular_logging && options_.circular_deletes) {
    DAGVAULT_CRASH_POINT("checkpoint.before_circular_delete");
    ASSIGN_OR_RETURN(LogStreamListing listing, ListLogStream(unit_.log_dir, unit_.log_prefix));
    for (const auto& [g, path] : listing.closed) {
      if (g < gen) RETURN_IF_ERROR(RemoveDurably(path));
    }
  }
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
