// ParallelFor: the one work-sharing loop of the project's parallel passes
// (restore's chunks, check's packs).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace dagvault {

// Runs step(i) for every i in [0, count) on up to `workers` threads, each
// taking the next index in turn. Once `stop` (if given) returns true, no
// further index is handed out; the steps already running finish.
inline void ParallelFor(size_t count, size_t workers, const std::function<void(size_t)>& step,
                        const std::function<bool()>& stop = nullptr) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  const size_t n = std::min(std::max<size_t>(workers, 1), count);
  for (size_t w = 0; w < n; ++w) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < count && !(stop && stop()); i = next++) step(i);
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace dagvault
