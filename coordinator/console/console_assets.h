// The web console's files, built into the coordinator binary from
// coordinator/console/assets/ by embed_assets.cmake: no CDN, nothing
// fetched at run time.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace dagvault::coordinator {

struct ConsoleAsset {
  std::string path;          // "/index.html", "/app.js", ...
  std::string content_type;  // "text/html; charset=utf-8", ...
  const char* data;
  size_t size;
};

const std::vector<ConsoleAsset>& ConsoleAssets();

}  // namespace dagvault::coordinator
