// A temporary folder for fuzz targets that must go through the real file
// readers: on tmpfs when there is one, removed when the process exits.
#pragma once

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/strings/string_view.h"

namespace dagvault::fuzz {

inline const std::string& FuzzTempDir() {
  static const std::string* dir = [] {
    std::string pattern = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    pattern += "/dagvault-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    auto* d = new std::string(pattern);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(FuzzTempDir(), ec);
    });
    return d;
  }();
  return *dir;
}

// Plain write, no fsync: this is scratch space.
inline void WriteScratchFile(const std::string& path, absl::string_view bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
}

}  // namespace dagvault::fuzz
