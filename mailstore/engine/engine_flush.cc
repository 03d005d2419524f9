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
  // Every installed page's records become durable, so all may be written.
  RETURN_IF_ERROR(log_->Flush());
  const Lsn durable = log_->durable_lsn();
  std::vector<BufferCache::DirtyPage> pages = cache_->BeginFlush(durable);
  if (!pages.empty()) {
    std::sort(pages.begin(), pages.end(), [](const auto& a, const auto& b) {
      return std::tie(a.db, a.pgno) < std::tie(b.db, b.pgno);
    });
    std::map<uint32_t, Generation> newest;  // per database, the newest generation written
    for (const auto& p : pages) newest[p.db] = std::max(newest[p.db], p.last_lsn.generation);
    // The header must say which logs the file needs before the file holds
    // changes from them (the header's own write-ahead rule).
    for (const auto& [db, gen] : newest) {
      if (dbs_[db]->header().log_required_max < gen) {
        RETURN_IF_ERROR(dbs_[db]->UpdateHeader([&](DbHeader& h) {
          h.log_required_max = std::max(h.log_required_max, durable.generation);
          h.log_committed = durable.generation;
          h.dbtime = std::max(h.dbtime, dbtime_[db]->load());
        }));
      }
    }
    for (size_t i = 0; i < pages.size(); ++i) {
      const auto& p = pages[i];
      RETURN_IF_ERROR(dbs_[p.db]->WritePage(p.pgno, p.page->data()));
      if (i == pages.size() / 2) DAGVAULT_CRASH_POINT("lazywriter.mid_flush");
    }
    for (const auto& [db, gen] : newest) RETURN_IF_ERROR(dbs_[db]->Sync());
    cache_->EndFlush(pages);
  }
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    stats_.pages_flushed += pages.size();
    stats_.flush_cycles++;
  }

  // The checkpoint: everything logged before it is in the files. A commit
  // places its records and installs its pages under the install lock, so
  // holding it here means no transaction is half-way between the two.
  Lsn candidate;
  {
    std::shared_lock<std::shared_mutex> lock(install_mu_);
    const std::optional<Lsn> oldest = cache_->OldestDirtyLsn();
    const Lsn flushed = log_->durable_lsn();
    candidate = oldest ? std::min(*oldest, flushed) : flushed;
  }
  return AdvanceCheckpoint(candidate);
}

// Called with flush_mu_ held.
absl::Status Engine::AdvanceCheckpoint(Lsn candidate) {
  if (candidate <= checkpoint_.position) return absl::OkStatus();
  const Generation gen = candidate.generation;
  const Generation durable_gen = log_->durable_lsn().generation;
  for (size_t i = 0; i < dbs_.size(); ++i) {
    const DbHeader h = dbs_[i]->header();
    if (h.log_required_min < gen) {
      RETURN_IF_ERROR(dbs_[i]->UpdateHeader([&](DbHeader& hh) {
        hh.log_required_min = gen;
        hh.log_required_max = std::max(hh.log_required_max, gen);
        hh.log_committed = durable_gen;
        hh.dbtime = std::max(hh.dbtime, dbtime_[i]->load());
      }));
    }
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
  if (unit_.circular_logging) {
    DAGVAULT_CRASH_POINT("checkpoint.before_circular_delete");
    ASSIGN_OR_RETURN(LogStreamListing listing, ListLogStream(unit_.log_dir, unit_.log_prefix));
    for (const auto& [g, path] : listing.closed) {
      if (g < gen) RETURN_IF_ERROR(RemoveDurably(path));
    }
  }
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
