// What a running job reports while it runs (DESIGN.md §5: bytes done,
// bytes total, current file, rate), to the local command line now and to
// the coordinator's job stream later.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "repository/transfer_control.h"

namespace dagvault::agent {

struct JobProgress {
  std::string phase;  // "preparing", "snapshot", "transferring", "completing", "replaying", ...
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  std::string current_file;
  double bytes_per_second = 0;  // since the transfer began
};

using ProgressFn = std::function<void(const JobProgress&)>;

// Calls `report` every `every` while a transfer runs, from its own thread,
// with the bytes the transfer's control has counted; and once more, with
// everything done, when it stops.
class ProgressTicker {
 public:
  ProgressTicker(const ProgressFn& report, std::string phase, uint64_t total,
                 const repository::TransferControl& control,
                 std::function<std::string()> current_file, absl::Duration every)
      : report_(report),
        phase_(std::move(phase)),
        total_(total),
        control_(control),
        current_file_(std::move(current_file)),
        started_(absl::Now()) {
    if (!report_) return;
    thread_ = std::thread([this, every] {
      std::unique_lock<std::mutex> l(mu_);
      while (!cv_.wait_for(l, absl::ToChronoMilliseconds(every), [&] { return stop_; })) {
        report_(Now());
      }
    });
  }
  ~ProgressTicker() { Stop(); }
  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (report_) report_(Now());
  }

 private:
  JobProgress Now() const {
    JobProgress p;
    p.phase = phase_;
    p.bytes_done = control_.bytes_done;
    p.bytes_total = total_;
    if (current_file_) p.current_file = current_file_();
    const double seconds = absl::ToDoubleSeconds(absl::Now() - started_);
    p.bytes_per_second = seconds > 0 ? static_cast<double>(p.bytes_done) / seconds : 0;
    return p;
  }

  const ProgressFn& report_;
  std::string phase_;
  uint64_t total_;
  const repository::TransferControl& control_;
  std::function<std::string()> current_file_;
  absl::Time started_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace dagvault::agent
