// What a running backup or restore shares with whoever watches it: its
// progress, and a way to stop it.
#pragma once

#include <atomic>
#include <cstdint>

namespace dagvault::repository {

// Shared between a running backup or restore and whoever watches it.
struct TransferControl {
  // Bytes read (backup) or written (restore) so far.
  std::atomic<uint64_t> bytes_done{0};
  // Set by the watcher: the workers stop at their next segment or chunk
  // and the call returns Cancelled, committing nothing.
  std::atomic<bool> cancel{false};
};

}  // namespace dagvault::repository
