// The restore path's file-name check (repository/restore.h: IsSafeFileName,
// which Restore applies to every name of a manifest before it writes
// anything). A name it accepts, joined to the target folder as restore
// joins it, names a path strictly inside that folder, the one the C string
// names too; and the agent's mapping of a log file to the writer's log
// folder (node-agent/jobs/restore_job.cc: JoinPath(log_dir, BaseName(name)))
// names a file strictly inside the log folder.
//
// Input: the name.
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "repository/restore.h"
#include "tests/fuzz/fuzz_entry.h"

namespace dagvault::fuzz {
namespace {

// The components of `path` after resolving "." and ".." lexically (no
// symlinks: restore creates every folder under the target itself), or
// false when ".." climbs above the root.
bool Resolve(const std::string& path, std::vector<std::string>* out) {
  out->clear();
  for (absl::string_view c : absl::StrSplit(path, '/')) {
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (out->empty()) return false;
      out->pop_back();
      continue;
    }
    out->emplace_back(c);
  }
  return true;
}

// Whether `path` names something strictly inside `dir`.
bool StrictlyInside(const std::string& dir, const std::string& path) {
  std::vector<std::string> d, p;
  if (!Resolve(dir, &d) || !Resolve(path, &p)) return false;
  if (p.size() <= d.size()) return false;
  for (size_t i = 0; i < d.size(); ++i) {
    if (p[i] != d[i]) return false;
  }
  return true;
}

}  // namespace

int FuzzRestoreNames(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string name(reinterpret_cast<const char*>(data), size);
  if (!repository::IsSafeFileName(name)) return 0;
  // open(2) sees the C string: it must be the whole name.
  FUZZ_CHECK(name.find('\0') == std::string::npos);
  const std::string target = "/srv/restore/target";
  FUZZ_CHECK(StrictlyInside(target, JoinPath(target, name)));
  FUZZ_CHECK(StrictlyInside(target, JoinPath(target, name) + ".dagvault-partial"));
  const std::string log_dir = "/srv/mailstore/SG01/restore-logs";
  FUZZ_CHECK(StrictlyInside(log_dir, JoinPath(log_dir, BaseName(name))));
  return 0;
}

}  // namespace dagvault::fuzz

DAGVAULT_FUZZ_TARGET(FuzzRestoreNames)
