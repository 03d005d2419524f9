#pragma once

#include <string>
#include <vector>

namespace dagvault::bench {

// Prints zstd's speed and stored size per level on the files' first 256
// MiB (tests/bench/zstd_table.cc); returns the exit code.
int ZstdTable(const std::string& label, const std::vector<std::string>& files);

}  // namespace dagvault::bench
